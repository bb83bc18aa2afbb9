//! The notifications behind the bell: the latest ones of the signed-in
//! user, marked read one by one or all at once.

use axum::extract::Path;
use axum::response::Response;
use serde::Serialize;

use super::auth::is_relative_path;
use super::error::PanelError;
use super::flash::Flash;
use super::form::FormData;
use super::format;
use super::render::Panel;

/// Notifications shown.
const SHOWN: u32 = 50;

#[derive(Debug, Serialize)]
struct Item {
    title: String,
    body: String,
    level: &'static str,
    href: Option<String>,
    read: bool,
    at: String,
    read_action: Option<String>,
}

#[derive(Debug, Serialize)]
struct NotificationsPage {
    items: Vec<Item>,
    unread: usize,
    read_all_action: String,
}

/// A notification's link, when it is safe to follow: a path on this site
/// or an `http(s)` URL (never `javascript:` and the like).
fn safe_link(url: Option<&str>) -> Option<String> {
    let url = url?.trim();
    let lower = url.to_ascii_lowercase();
    (is_relative_path(url) || lower.starts_with("https://") || lower.starts_with("http://"))
        .then(|| url.to_owned())
}

/// `GET /notifications`.
pub(crate) async fn index(p: Panel) -> Result<Response, PanelError> {
    let base = p.base().to_owned();
    let list = p
        .platform
        .notifications()
        .latest(p.auth.user.id, SHOWN)
        .await?;
    let items: Vec<Item> = list
        .into_iter()
        .map(|n| Item {
            read_action: n
                .read_at
                .is_none()
                .then(|| format!("{base}/notifications/{}/read", n.id)),
            href: safe_link(n.url.as_deref()),
            title: n.title,
            body: n.body,
            level: n.level.as_str(),
            read: n.read_at.is_some(),
            at: format::time(&n.created_at),
        })
        .collect();
    let page = NotificationsPage {
        unread: items.iter().filter(|i| !i.read).count(),
        items,
        read_all_action: format!("{base}/notifications/read-all"),
    };
    p.render("notifications.html", "Notifications", &page).await
}

/// `POST /notifications/{id}/read`.
pub(crate) async fn read(
    p: Panel,
    Path(id): Path<String>,
    _form: FormData,
) -> Result<Response, PanelError> {
    let id: i64 = id.parse().map_err(|_| PanelError::NotFound)?;
    p.platform
        .notifications()
        .mark_read(p.auth.user.id, id)
        .await?;
    Ok(p.redirect(&format!("{}/notifications", p.base())))
}

/// `POST /notifications/read-all`.
pub(crate) async fn read_all(p: Panel, _form: FormData) -> Result<Response, PanelError> {
    let n = p
        .platform
        .notifications()
        .mark_all_read(p.auth.user.id)
        .await?;
    Ok(p.redirect_with(
        &format!("{}/notifications", p.base()),
        Flash::success(format!("Marked {n} notifications read.")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_links() {
        assert_eq!(
            safe_link(Some("/admin/invoices/1")).as_deref(),
            Some("/admin/invoices/1")
        );
        assert_eq!(
            safe_link(Some("https://x.example/")).as_deref(),
            Some("https://x.example/")
        );
        assert_eq!(safe_link(Some("javascript:alert(1)")), None);
        assert_eq!(safe_link(Some("//evil.example")), None);
        assert_eq!(safe_link(None), None);
    }
}
