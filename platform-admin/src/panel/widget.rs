//! Dashboard widgets: a template plus the data it renders, registered like
//! resources.
//!
//! A widget has a name, a title, a template (minijinja source; it sees
//! `widget`, `data` and `layout`) and an async function producing its data
//! as JSON. Register it from any crate with
//! [`register_widget!`](crate::register_widget), or add it explicitly with
//! [`PanelConfig::widget`](super::PanelConfig::widget). A host template
//! `widgets/<name>.html` in the templates directory overrides the source.
//!
//! The dashboard renders each widget the user may see (its `permission`,
//! if any) in `sort` order; a failing widget shows a short notice instead
//! of breaking the page.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use platform_core::Platform;

use super::auth::PanelAuth;

/// The data a widget renders.
pub type WidgetFuture<'a> =
    Pin<Box<dyn Future<Output = platform_core::Result<serde_json::Value>> + Send + 'a>>;

/// Produces a widget's data.
pub type WidgetDataFn = for<'a> fn(&'a WidgetContext) -> WidgetFuture<'a>;

/// What a widget's data function gets: the platform and the signed-in user
/// (whose context any `Records` call should use).
#[derive(Debug, Clone)]
pub struct WidgetContext {
    /// The platform.
    pub platform: Platform,
    /// The signed-in user.
    pub auth: PanelAuth,
    /// Where the panel is mounted (`/admin`), for links.
    pub base: String,
}

/// A dashboard widget.
#[derive(Clone, Copy)]
pub struct Widget {
    name: &'static str,
    title: &'static str,
    template: &'static str,
    sort: i32,
    wide: bool,
    permission: Option<&'static str>,
    data: WidgetDataFn,
}

impl fmt::Debug for Widget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Widget")
            .field("name", &self.name)
            .field("title", &self.title)
            .field("sort", &self.sort)
            .field("permission", &self.permission)
            .finish_non_exhaustive()
    }
}

impl Widget {
    /// A widget called `name` (an identifier, unique on the dashboard)
    /// titled `title`, rendering `template` (minijinja source; empty: the
    /// template `widgets/<name>.html`) with the JSON `data` returns.
    pub const fn new(
        name: &'static str,
        title: &'static str,
        template: &'static str,
        data: WidgetDataFn,
    ) -> Self {
        Self {
            name,
            title,
            template,
            sort: 0,
            wide: false,
            permission: None,
            data,
        }
    }
    /// Position on the dashboard (lower first; the built-in counts and
    /// activity widgets are at -20 and -10).
    pub const fn sort(mut self, sort: i32) -> Self {
        self.sort = sort;
        self
    }
    /// Takes the dashboard's full width.
    pub const fn wide(mut self) -> Self {
        self.wide = true;
        self
    }
    /// Shown only to users holding `permission`.
    pub const fn permission(mut self, permission: &'static str) -> Self {
        self.permission = Some(permission);
        self
    }
    /// The name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
    /// The title.
    pub const fn title(&self) -> &'static str {
        self.title
    }
    /// The template source given at registration (may be empty).
    pub const fn template_source(&self) -> &'static str {
        self.template
    }
    /// The template's name in the environment: `widgets/<name>.html`.
    pub fn template_name(&self) -> String {
        format!("widgets/{}.html", self.name)
    }
    /// The position.
    pub const fn sort_key(&self) -> i32 {
        self.sort
    }
    /// Whether it takes the full width.
    pub const fn is_wide(&self) -> bool {
        self.wide
    }
    /// The permission needed to see it.
    pub const fn required_permission(&self) -> Option<&'static str> {
        self.permission
    }
    /// Produces the data.
    pub fn data<'a>(&self, cx: &'a WidgetContext) -> WidgetFuture<'a> {
        (self.data)(cx)
    }
}

inventory::collect!(Widget);

/// The built-in widgets, the registered ones and `extra`, by sort then
/// name; a later widget replaces an earlier one of the same name.
pub(crate) fn collect(extra: &[Widget]) -> Vec<Widget> {
    let mut all: Vec<Widget> = super::dashboard::BUILT_IN.to_vec();
    all.extend(inventory::iter::<Widget>.into_iter().copied());
    all.extend(extra.iter().copied());
    let mut out: Vec<Widget> = Vec::with_capacity(all.len());
    for w in all {
        if let Some(i) = out.iter().position(|o| o.name == w.name) {
            out[i] = w;
        } else {
            out.push(w);
        }
    }
    out.sort_by(|a, b| (a.sort, a.name).cmp(&(b.sort, b.name)));
    out
}

/// The label a person reads for an audit event name: `recovery_code_used`
/// is "Recovery code used", `two_factor_enabled` "Two-factor enabled",
/// `created` "Created". The one mapping the panel uses wherever it shows
/// an event (the dashboard's recent activity, a record's activity log; the
/// templates' `event_label` filter); an event it does not know reads as its
/// words (`login_failed`: "Login failed").
pub fn event_label(event: &str) -> String {
    let known = match event {
        "force_deleted" => "Deleted permanently",
        "login" => "Signed in",
        "logout" => "Signed out",
        "enabled" => "Account enabled",
        "disabled" => "Account disabled",
        "token_created" => "API token created",
        "token_revoked" => "API token revoked",
        "email_verified" => "E-mail address verified",
        "sessions_revoked" => "Sessions signed out",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    let words = event
        .trim()
        .replace('_', " ")
        .replace("two factor", "two-factor")
        .replace("email", "e-mail");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::event_label;

    #[test]
    fn event_labels() {
        for (event, label) in [
            ("created", "Created"),
            ("updated", "Updated"),
            ("force_deleted", "Deleted permanently"),
            ("recovery_code_used", "Recovery code used"),
            ("two_factor_enabled", "Two-factor enabled"),
            ("two_factor_setup_started", "Two-factor setup started"),
            ("role_assigned", "Role assigned"),
            ("password_reset_requested", "Password reset requested"),
            ("login", "Signed in"),
            ("login_failed", "Login failed"),
            ("", ""),
        ] {
            assert_eq!(event_label(event), label);
        }
    }
}
