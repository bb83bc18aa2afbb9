//! The frame around every page: navigation grouped as the resources declare
//! it (only what the user may `view_any_`), the user menu, the
//! notifications bell, the theme and the global search box.

use platform_core::Platform;
use platform_core::access::User;
use platform_core::permission::{Ability, permission_name};
use serde::Serialize;

use super::auth::PanelAuth;
use super::flash::Flash;
use super::render::{Panel, Shared};

/// The layout's data, as templates see it (`layout.*`).
#[derive(Debug, Serialize)]
pub(crate) struct Layout {
    pub(crate) base: String,
    /// The dashboard's URL (`base`, or `/` when mounted at the root).
    pub(crate) home: String,
    pub(crate) brand: String,
    pub(crate) title: String,
    pub(crate) user: Option<UserView>,
    pub(crate) nav: Vec<NavGroup>,
    pub(crate) csrf: String,
    pub(crate) flash: Option<Flash>,
    pub(crate) bell: u64,
    pub(crate) theme: &'static str,
    pub(crate) css: String,
    pub(crate) js: String,
    pub(crate) path: String,
    pub(crate) search: String,
    /// The public key of the live-updates server, when there is one.
    pub(crate) live: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct UserView {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) email: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct NavGroup {
    pub(crate) label: Option<String>,
    pub(crate) items: Vec<NavItem>,
}

#[derive(Debug, Serialize)]
pub(crate) struct NavItem {
    pub(crate) label: String,
    pub(crate) href: String,
    pub(crate) icon: Option<&'static str>,
    pub(crate) active: bool,
}

/// The number of unread notifications of `user`, for the bell (0 when it
/// cannot be read: the bell never breaks a page).
pub(crate) async fn notification_count(platform: &Platform, user: &User) -> u64 {
    match platform.notifications().count_unread(user.id).await {
        Ok(n) => u64::try_from(n).unwrap_or(0),
        Err(e) => {
            tracing::debug!(error = %e, "unread notifications could not be counted");
            0
        }
    }
}

/// The dashboard's URL for a panel mounted at `base`.
pub(crate) fn home(base: &str) -> String {
    if base.is_empty() {
        "/".to_owned()
    } else {
        base.to_owned()
    }
}

/// The theme chosen in the `platform_theme` cookie (`""`: follow the
/// system).
pub(crate) fn theme(cookie: Option<&str>) -> &'static str {
    match cookie {
        Some("dark") => "dark",
        Some("light") => "light",
        _ => "",
    }
}

fn user_view(u: &User) -> UserView {
    UserView {
        id: u.id,
        name: u.name.clone(),
        email: u.email.clone(),
    }
}

/// The navigation: the panel's resources the user may list, in the
/// registry's order (group, sort, label), grouped; then the access pages.
fn navigation(p: &Panel) -> Vec<NavGroup> {
    let base = p.base();
    let mut groups: Vec<NavGroup> = Vec::new();
    let is_active = |href: &str| {
        p.path == href
            || p.path
                .strip_prefix(href)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    for entry in p.platform.registry().entries() {
        let meta = entry.meta();
        if !meta.in_admin() || !p.can(entry.permission(Ability::ViewAny)) {
            continue;
        }
        let nav = meta.navigation_entry();
        let href = format!("{base}/{}", meta.plural());
        let item = NavItem {
            label: meta.plural_label().to_owned(),
            active: is_active(&href),
            href,
            icon: nav.icon,
        };
        let label = nav.group.map(str::to_owned);
        match groups.last_mut() {
            Some(g) if g.label == label => g.items.push(item),
            _ => groups.push(NavGroup {
                label,
                items: vec![item],
            }),
        }
    }
    // The capabilities' pages, by their group (or none), after the
    // resources.
    for page in &p.shared.config.pages {
        let Some((group, label)) = page.nav_entry() else {
            continue;
        };
        if page.required_permission().is_some_and(|perm| !p.can(perm)) {
            continue;
        }
        let href = format!("{base}/{}", page.slug());
        let item = NavItem {
            label: label.to_owned(),
            active: is_active(&href),
            href,
            icon: None,
        };
        let label = group.map(str::to_owned);
        match groups.iter_mut().find(|g| g.label == label) {
            Some(g) => g.items.push(item),
            None => groups.push(NavGroup {
                label,
                items: vec![item],
            }),
        }
    }
    let mut access = Vec::new();
    for (resource, label, path) in [("user", "Users", "users"), ("role", "Roles", "roles")] {
        if p.can(&permission_name(Ability::ViewAny, resource)) {
            let href = format!("{base}/access/{path}");
            access.push(NavItem {
                label: label.to_owned(),
                active: is_active(&href),
                href,
                icon: None,
            });
        }
    }
    if !access.is_empty() {
        groups.push(NavGroup {
            label: Some("Access".to_owned()),
            items: access,
        });
    }
    groups
}

/// The layout of a page of `p`.
pub(crate) async fn build(p: &Panel, title: &str) -> Layout {
    let shared = &p.shared;
    Layout {
        base: p.base().to_owned(),
        home: home(p.base()),
        brand: shared.config.title.clone(),
        title: title.to_owned(),
        user: Some(user_view(&p.auth.user)),
        nav: navigation(p),
        csrf: p.auth.csrf_token.clone(),
        flash: p.flash.clone(),
        bell: notification_count(&p.platform, &p.auth.user).await,
        theme: theme(p.cookie(super::prefs::THEME_COOKIE)),
        css: shared.assets.css_url(p.base()),
        js: shared.assets.js_url(p.base()),
        path: p.path.clone(),
        search: String::new(),
        live: p
            .platform
            .contributions::<super::LiveUpdates>()
            .first()
            .map(|l| l.key().to_owned()),
    }
}

/// The layout of an error page: no navigation (the error middleware has no
/// platform), the user menu when someone is signed in.
pub(crate) fn minimal(shared: &Shared, auth: Option<&PanelAuth>, title: &str) -> Layout {
    let base = shared.config.base_path.clone();
    Layout {
        css: shared.assets.css_url(&base),
        js: shared.assets.js_url(&base),
        brand: shared.config.title.clone(),
        title: title.to_owned(),
        user: auth.map(|a| user_view(&a.user)),
        nav: Vec::new(),
        csrf: auth.map(|a| a.csrf_token.clone()).unwrap_or_default(),
        flash: None,
        bell: 0,
        theme: "",
        path: String::new(),
        search: String::new(),
        live: None,
        home: home(&base),
        base,
    }
}
