//! The panel pages: subscriptions (list, create, edit, (de)activate), the
//! call log with attempts and replay, incoming calls with re-run.

use platform_admin::capability::SetupExt;
use platform_admin::panel::page::{ActionFuture, PageAction, PageContext, PageFuture, PanelPage};
use platform_core::capability::Setup;
use platform_core::error::{Error, Result};

use crate::service::{NewSubscription, SubscriptionUpdate};
use crate::{MANAGE, VIEW, webhooks_of};

const SUBSCRIPTIONS: &str = include_str!("../templates/subscriptions.html");
const CALLS: &str = include_str!("../templates/calls.html");
const INCOMING: &str = include_str!("../templates/incoming.html");

fn events_of(text: &str) -> Vec<String> {
    text.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn id_of(rest: &str) -> Result<i64> {
    rest.parse().map_err(|_| Error::NotFound {
        resource: "webhook subscription",
        id: rest.chars().take(64).collect(),
    })
}

fn subscriptions_data(cx: &PageContext) -> PageFuture<'_> {
    Box::pin(async move {
        let w = webhooks_of(&cx.platform)?;
        if cx.rest.is_empty() {
            return Ok(serde_json::json!({ "subscriptions": w.subscriptions().await? }));
        }
        let id = id_of(&cx.rest)?;
        let s = w.subscription(id).await?.ok_or(Error::NotFound {
            resource: "webhook subscription",
            id: id.to_string(),
        })?;
        Ok(serde_json::json!({ "subscription": s, "calls": w.calls(Some(id), 50).await? }))
    })
}

fn create_action(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        let w = webhooks_of(&cx.platform)?;
        let mut new = NewSubscription::new(
            cx.param("url").unwrap_or_default(),
            events_of(cx.param("events").unwrap_or_default()),
        )
        .description(cx.param("description").unwrap_or_default());
        new.owner_id = cx.auth.ctx.actor().user_id();
        let (s, secret) = w.subscribe(new).await?;
        Ok(format!(
            "Subscription {} created. Its signing secret, shown this once: {secret}",
            s.id
        ))
    })
}

fn update_action(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        let w = webhooks_of(&cx.platform)?;
        let id = id_of(&cx.rest)?;
        w.update(
            id,
            SubscriptionUpdate {
                url: cx.param("url").map(str::to_owned),
                events: cx.param("events").map(events_of),
                description: cx.param("description").map(str::to_owned),
                active: None,
            },
        )
        .await?;
        Ok(format!("Subscription {id} saved."))
    })
}

fn deactivate_action(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        let id = id_of(&cx.rest)?;
        webhooks_of(&cx.platform)?.deactivate(id).await?;
        Ok(format!("Subscription {id} deactivated."))
    })
}

fn activate_action(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        let id = id_of(&cx.rest)?;
        webhooks_of(&cx.platform)?
            .update(
                id,
                SubscriptionUpdate {
                    active: Some(true),
                    ..SubscriptionUpdate::default()
                },
            )
            .await?;
        Ok(format!("Subscription {id} activated."))
    })
}

fn calls_data(cx: &PageContext) -> PageFuture<'_> {
    Box::pin(async move {
        let w = webhooks_of(&cx.platform)?;
        if cx.rest.is_empty() {
            let sub = cx.param("subscription").and_then(|s| s.parse().ok());
            return Ok(serde_json::json!({ "calls": w.calls(sub, 200).await? }));
        }
        let (call, attempts) = w.call(&cx.rest).await?.ok_or_else(|| Error::NotFound {
            resource: "webhook call",
            id: cx.rest.chars().take(64).collect(),
        })?;
        Ok(serde_json::json!({ "call": call, "attempts": attempts }))
    })
}

fn replay_action(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        webhooks_of(&cx.platform)?.replay(&cx.rest).await?;
        Ok(format!("Call {} queued again.", cx.rest))
    })
}

fn incoming_data(cx: &PageContext) -> PageFuture<'_> {
    Box::pin(async move {
        let w = webhooks_of(&cx.platform)?;
        let sources: Vec<&str> = w.sources().collect();
        if cx.rest.is_empty() {
            let source = cx.param("source");
            return Ok(
                serde_json::json!({ "sources": sources, "calls": w.incoming_calls(source, 200).await? }),
            );
        }
        let call = w
            .incoming_call(&cx.rest)
            .await?
            .ok_or_else(|| Error::NotFound {
                resource: "incoming webhook call",
                id: cx.rest.chars().take(64).collect(),
            })?;
        Ok(serde_json::json!({ "sources": sources, "call": call }))
    })
}

fn rerun_action(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        webhooks_of(&cx.platform)?.rerun(&cx.rest).await?;
        Ok(format!("Incoming call {} queued again.", cx.rest))
    })
}

pub(crate) fn contribute(setup: &mut Setup) {
    setup
        .panel_page(
            PanelPage::new("webhooks", "Webhooks", SUBSCRIPTIONS, subscriptions_data)
                .permission(VIEW)
                .nav_group("System")
                .action(PageAction::new("create", create_action).permission(MANAGE))
                .action(PageAction::new("update", update_action).permission(MANAGE))
                .action(PageAction::new("deactivate", deactivate_action).permission(MANAGE))
                .action(PageAction::new("activate", activate_action).permission(MANAGE)),
        )
        .panel_page(
            PanelPage::new("webhook-calls", "Webhook calls", CALLS, calls_data)
                .permission(VIEW)
                .nav_group("System")
                .action(PageAction::new("replay", replay_action).permission(MANAGE)),
        )
        .panel_page(
            PanelPage::new(
                "webhooks-incoming",
                "Incoming webhooks",
                INCOMING,
                incoming_data,
            )
            .permission(VIEW)
            .nav_group("System")
            .action(PageAction::new("rerun", rerun_action).permission(MANAGE)),
        );
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_split_on_commas_and_spaces() {
        assert_eq!(
            super::events_of("invoices.*, order.shipped\n *"),
            vec!["invoices.*", "order.shipped", "*"]
        );
    }
}
