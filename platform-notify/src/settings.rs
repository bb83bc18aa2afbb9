//! The signed-in user's notification settings: a panel page with one row
//! per kind of notification and one box per channel, read and written
//! through the preferences [`Notifier::send`] minds
//! ([`platform_core::notification::Notifications::channel_enabled`]).

use platform_admin::capability::SetupExt;
use platform_admin::panel::page::{ActionFuture, PageAction, PageContext, PageFuture, PanelPage};
use platform_core::Platform;
use platform_core::capability::Setup;
use platform_core::error::{Error, FieldErrors, Result};
use serde::Serialize;

use crate::Notifier;

const PAGE: &str = include_str!("../templates/settings.html");

/// The page's slug (`/admin/notification-settings`).
pub(crate) const SLUG: &str = "notification-settings";

/// Channels that are not a user's choice: `log` writes to the server's log.
const NOT_A_CHOICE: &[&str] = &["log"];

/// At most this many boxes are read from one form (a hostile form cannot
/// make the action write without bound).
const MAX_BOXES: usize = 10_000;

pub(crate) fn contribute(setup: &mut Setup) {
    setup.panel_page(
        PanelPage::new(SLUG, "Notification settings", PAGE, page_data)
            .nav_group("Account")
            .action(PageAction::new("save", save_action)),
    );
}

#[derive(Serialize)]
struct Channel {
    name: String,
    label: String,
}

#[derive(Serialize)]
struct Choice {
    name: String,
    on: bool,
}

#[derive(Serialize)]
struct Kind {
    name: &'static str,
    label: String,
    channels: Vec<Choice>,
}

fn notifier(platform: &Platform) -> Result<std::sync::Arc<Notifier>> {
    platform
        .get::<Notifier>()
        .ok_or_else(|| Error::Configuration("the notifications capability is not added".into()))
}

fn channels(n: &Notifier) -> Vec<String> {
    n.channel_names()
        .into_iter()
        .filter(|c| !NOT_A_CHOICE.contains(c))
        .map(str::to_owned)
        .collect()
}

/// `invoice_sent` -> `Invoice sent`.
fn label(name: &str) -> String {
    let spaced = name.replace(['_', '-', '.'], " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn page_data(cx: &PageContext) -> PageFuture<'_> {
    Box::pin(async move {
        let n = notifier(&cx.platform)?;
        let user = cx.auth.user.id;
        let prefs = cx.platform.notifications();
        let names = channels(&n);
        let mut kinds = Vec::new();
        for kind in n.type_names() {
            let mut choices = Vec::with_capacity(names.len());
            for c in &names {
                choices.push(Choice {
                    name: c.clone(),
                    on: prefs.channel_enabled(user, kind, c).await?,
                });
            }
            kinds.push(Kind {
                name: kind,
                label: label(kind),
                channels: choices,
            });
        }
        let channels: Vec<Channel> = names
            .iter()
            .map(|c| Channel {
                name: c.clone(),
                label: label(c),
            })
            .collect();
        Ok(serde_json::json!({ "channels": channels, "kinds": kinds }))
    })
}

fn invalid(message: String) -> Error {
    let mut errors = FieldErrors::default();
    errors.add("on", "invalid", message);
    Error::Validation(errors)
}

/// Saves the form: every kind the form showed (`kinds`) gets each channel
/// on when its box (`on=kind|channel`) was sent, off otherwise. An unknown
/// kind or channel refuses the whole form; nothing is written then.
fn save_action(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        let n = notifier(&cx.platform)?;
        let known_kinds = n.type_names();
        let known_channels = channels(&n);
        let shown: Vec<&str> = cx
            .param("kinds")
            .unwrap_or_default()
            .split(',')
            .filter(|k| !k.is_empty())
            .collect();
        let mut on = std::collections::BTreeSet::new();
        for value in cx
            .params
            .iter()
            .filter_map(|(k, v)| (k == "on").then_some(v))
        {
            if on.len() >= MAX_BOXES {
                return Err(invalid(format!("at most {MAX_BOXES} boxes")));
            }
            let (kind, channel) = value
                .split_once('|')
                .ok_or_else(|| invalid("a box is not `kind|channel`".into()))?;
            on.insert((kind.to_owned(), channel.to_owned()));
        }
        for kind in shown
            .iter()
            .copied()
            .chain(on.iter().map(|(k, _)| k.as_str()))
        {
            if !known_kinds.contains(&kind) {
                return Err(invalid(format!(
                    "no kind of notification is called `{}`",
                    kind.chars().take(64).collect::<String>()
                )));
            }
        }
        if let Some((_, c)) = on.iter().find(|(_, c)| !known_channels.contains(c)) {
            return Err(invalid(format!(
                "no channel is called `{}`",
                c.chars().take(64).collect::<String>()
            )));
        }
        let user = cx.auth.user.id;
        let prefs = cx.platform.notifications();
        for kind in shown {
            for c in &known_channels {
                let enabled = on.contains(&(kind.to_owned(), c.clone()));
                if prefs.channel_enabled(user, kind, c).await? != enabled {
                    prefs.set_channel_enabled(user, kind, c, enabled).await?;
                }
            }
        }
        Ok("Notification settings saved.".to_owned())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_read_as_words() {
        assert_eq!(super::label("invoice_sent"), "Invoice sent");
        assert_eq!(super::label("database"), "Database");
        assert_eq!(super::label(""), "");
    }
}
