//! `GET /`: the dashboard, a grid of widgets. Two are built in: a count per
//! resource (exact, estimated `~N`, or a lower bound `N+`, never a full
//! `COUNT(*)` of a big table) and the recent activity of the audit trail.

use axum::response::Response;
use futures::StreamExt;
use minijinja::value::Serde;
use platform_core::permission::{Ability, permission_name};
use platform_core::query::ListQuery;
use serde::Serialize;
use serde_json::json;

use super::error::PanelError;
use super::format::{self, encode_component};
use super::render::Panel;
use super::widget::{Widget, WidgetContext, WidgetFuture};

/// Recent activity entries shown.
const ACTIVITY_SIZE: usize = 10;
/// Counts run at the same time.
const CONCURRENCY: usize = 4;

/// The built-in widgets.
pub(crate) const BUILT_IN: [Widget; 2] = [
    Widget::new("counts", "Records", "", counts).sort(-20),
    Widget::new("activity", "Recent activity", "", activity)
        .sort(-10)
        .wide(),
];

fn counts(cx: &WidgetContext) -> WidgetFuture<'_> {
    Box::pin(async move {
        let ctx = &cx.auth.ctx;
        let targets: Vec<_> = cx
            .platform
            .registry()
            .entries()
            .filter(|e| e.meta().in_admin() && ctx.can(e.permission(Ability::ViewAny)))
            .filter_map(|e| cx.platform.records(e.meta().plural(), ctx))
            .collect();
        let items: Vec<serde_json::Value> = futures::stream::iter(targets)
            .map(|records| async move {
                let meta = records.meta();
                let count = records.count(&ListQuery::new()).await;
                json!({
                    "label": meta.plural_label(),
                    "href": format!("{}/{}", cx.base, meta.plural()),
                    "count": count.map_or_else(|_| "—".to_owned(), format::count),
                })
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        Ok(json!({ "items": items }))
    })
}

fn activity(cx: &WidgetContext) -> WidgetFuture<'_> {
    Box::pin(async move {
        let ctx = &cx.auth.ctx;
        let registry = cx.platform.registry();
        let entries = cx
            .platform
            .audit()
            .list(
                platform_core::audit::AuditFilter::default(),
                None,
                ACTIVITY_SIZE * 5,
            )
            .await?
            .entries;
        let mut items = Vec::new();
        for e in entries {
            // Only what the user may list anyway; never entries of records
            // a policy hides from them.
            let (label, href) = match registry.by_name(&e.resource) {
                Some(entry) => {
                    let meta = entry.meta();
                    if !ctx.can(entry.permission(Ability::ViewAny)) {
                        continue;
                    }
                    let Some(records) = cx.platform.records(meta.name(), ctx) else {
                        continue;
                    };
                    if !records.reaches_everything().unwrap_or(false) {
                        continue;
                    }
                    let href = (meta.in_admin()
                        && ctx.can(entry.permission(Ability::View))
                        && e.event != "force_deleted")
                        .then(|| {
                            format!(
                                "{}/{}/{}",
                                cx.base,
                                meta.plural(),
                                encode_component(&e.record_id)
                            )
                        });
                    (meta.label_text().to_owned(), href)
                }
                None if matches!(e.resource.as_str(), "user" | "role") => {
                    if !ctx.can(&permission_name(Ability::ViewAny, &e.resource)) {
                        continue;
                    }
                    let href = (e.resource == "user").then(|| {
                        format!(
                            "{}/access/users/{}",
                            cx.base,
                            encode_component(&e.record_id)
                        )
                    });
                    (e.resource.clone(), href)
                }
                None => continue,
            };
            items.push(json!({
                "event": e.event,
                "actor": e.actor_label.clone().unwrap_or_else(|| e.actor_type.clone()),
                "resource": label,
                "record": e.record_id,
                "href": href,
                "at": format::time(&e.created_at),
            }));
            if items.len() == ACTIVITY_SIZE {
                break;
            }
        }
        Ok(json!({ "items": items }))
    })
}

#[derive(Debug, Serialize)]
struct WidgetView {
    name: &'static str,
    title: &'static str,
    html: String,
    wide: bool,
    failed: bool,
}

#[derive(Debug, Serialize)]
struct DashboardPage {
    widgets: Vec<WidgetView>,
}

/// `GET /`.
pub(crate) async fn show(p: Panel) -> Result<Response, PanelError> {
    let cx = WidgetContext {
        platform: p.platform.clone(),
        auth: p.auth.clone(),
        base: p.base().to_owned(),
    };
    let visible: Vec<&Widget> = p
        .shared
        .widgets
        .iter()
        .filter(|w| w.required_permission().is_none_or(|perm| p.can(perm)))
        .collect();
    let data = futures::future::join_all(visible.iter().map(|w| w.data(&cx))).await;
    let mut widgets = Vec::with_capacity(visible.len());
    for (w, data) in visible.into_iter().zip(data) {
        let rendered = match data {
            Ok(data) => {
                let ctx = minijinja::context! {
                    widget => minijinja::context! { name => w.name(), title => w.title() },
                    data => minijinja::Value::from(Serde(&data)),
                    base => p.base(),
                };
                p.shared
                    .render(&w.template_name(), ctx)
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let (html, failed) = match rendered {
            Ok(html) => (html, false),
            Err(e) => {
                tracing::warn!(widget = w.name(), error = %e, "dashboard widget failed");
                (String::new(), true)
            }
        };
        widgets.push(WidgetView {
            name: w.name(),
            title: w.title(),
            html,
            wide: w.is_wide(),
            failed,
        });
    }
    p.render("dashboard.html", "Dashboard", &DashboardPage { widgets })
        .await
}
