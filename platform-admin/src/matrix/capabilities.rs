//! Capability panel pages and declared API routes: what the matrix
//! requests of them and the rows they give.

use axum::http::{Method, StatusCode};
use platform_core::Result;

use super::fixtures::{Run, Subject};
use super::probe::{Probe, ReqBody};
use super::report::{Actual, Expected, MatrixRow, RowKind, Surface};
use crate::capability::{ApiRoute, ApiRoutes, ResourceApiRoute, RouteAccess};
use crate::panel::PanelPage;

impl Run {
    /// Whether any capability page or declared API route is mounted.
    pub(super) fn has_capability_targets(&self) -> bool {
        !self.capability_targets().is_empty()
    }

    /// The capabilities' panel pages (each page, its item route, each
    /// action with and without an item) and declared API routes, as far as
    /// their router is mounted.
    pub(super) fn capability_targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        if let Some(panel) = &self.panel {
            for page in self.platform.contributions::<PanelPage>() {
                let slug = page.slug();
                let needs: Vec<&'static str> = page.required_permission().into_iter().collect();
                let href = format!("{panel}/{slug}");
                out.push(Target::page(
                    slug,
                    Method::GET,
                    format!("GET {href}"),
                    href.clone(),
                    &needs,
                ));
                out.push(Target::page(
                    slug,
                    Method::GET,
                    format!("GET {href}/{{item}}"),
                    format!("{href}/matrix"),
                    &needs,
                ));
                for action in page.actions() {
                    let needs = page.action_permissions(action.name()).unwrap_or_default();
                    let at = format!("{href}/actions/{}", action.name());
                    out.push(Target::page(
                        slug,
                        Method::POST,
                        format!("POST {at}"),
                        at.clone(),
                        &needs,
                    ));
                    out.push(Target::page(
                        slug,
                        Method::POST,
                        format!("POST {at}/{{item}}"),
                        format!("{at}/matrix"),
                        &needs,
                    ));
                }
            }
        }
        if let Some(api) = &self.api {
            for routes in self.platform.contributions::<ApiRoutes>() {
                for route in routes.declared() {
                    out.push(Target::api(api, route));
                }
                for route in routes.resource_routes() {
                    for entry in self.platform.registry().entries() {
                        let meta = entry.meta();
                        if meta.in_api() && route.applies_to(meta) {
                            let needs = route
                                .abilities()
                                .iter()
                                .map(|a| entry.permission(*a).to_owned())
                                .collect();
                            out.push(Target::resource_api(api, route, meta, needs));
                        }
                    }
                }
            }
        }
        out
    }

    /// One capability route as one subject.
    pub(super) async fn capability(
        &self,
        si: usize,
        subject: &Subject,
        first: usize,
        k: usize,
        target: &Target,
    ) -> Result<MatrixRow> {
        let surface = target.surface;
        let ctx = subject.ctx(surface);
        let signed_in = subject.auth.is_some();
        let expected = match target.access {
            RouteAccess::Public => Expected::Allowed,
            RouteAccess::Authenticated if signed_in => Expected::Allowed,
            RouteAccess::Permission(_) if signed_in && target.needs.iter().all(|p| ctx.can(p)) => {
                Expected::Allowed
            }
            _ => Expected::Denied,
        };
        let probe = Probe {
            method: target.method.clone(),
            label: target.label.clone(),
            path: target.path.clone(),
            body: match (surface, &target.method) {
                (Surface::Panel, &Method::POST) => ReqBody::Form(Vec::new()),
                (Surface::Api, m) if *m != Method::GET && *m != Method::DELETE => {
                    ReqBody::Json(serde_json::json!({}))
                }
                _ => ReqBody::Empty,
            },
            needle: None,
            update: None,
        };
        let (status, location, _) = self.send(subject, surface, &probe).await?;
        let mut actual = self.classify(surface, status, location.as_deref());
        let mut note = None;
        // The matrix sends no input: an answer that refuses the input (or
        // finds no item of that id) got past the permission check.
        if actual != Actual::Allowed
            && actual != Actual::Denied
            && (status == StatusCode::NOT_FOUND && target.has_params
                || matches!(
                    status,
                    StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
                ))
        {
            note = Some(format!("reached the handler ({})", status.as_u16()));
            actual = Actual::Allowed;
        }
        Ok(MatrixRow {
            kind: target.kind,
            resource: target.owner,
            surface,
            route: target.label.clone(),
            role: subject.label.clone(),
            requires: target.requires(),
            expected,
            actual,
            status: status.as_u16(),
            note,
            order: (first + k, 0, si),
        })
    }
}

/// A capability's route the matrix requests.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) kind: RowKind,
    /// The page's slug, or the API path's first segment.
    pub(super) owner: &'static str,
    pub(super) surface: Surface,
    pub(super) method: Method,
    pub(super) label: String,
    pub(super) path: String,
    /// Permission routes: every permission in `needs`.
    pub(super) access: RouteAccess,
    pub(super) needs: Vec<String>,
    /// Whether the path had `{param}` segments (filled with `0`).
    has_params: bool,
}

impl Target {
    pub(super) fn page(
        slug: &'static str,
        method: Method,
        label: String,
        path: String,
        needs: &[&'static str],
    ) -> Self {
        // Only the routes with an `{item}` may answer 404 for it: a page or
        // an action that is not found at all is a mismatch.
        let has_params = path.ends_with("/matrix");
        Self {
            kind: RowKind::Page,
            owner: slug,
            surface: Surface::Panel,
            method,
            label,
            path,
            // A page without a permission is for every signed-in user.
            access: needs
                .first()
                .map_or(RouteAccess::Authenticated, |p| RouteAccess::Permission(p)),
            needs: needs.iter().map(|p| (*p).to_owned()).collect(),
            has_params,
        }
    }

    pub(super) fn api(base: &str, route: &ApiRoute) -> Self {
        let template = route.path();
        let owner = template
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("api");
        let mut has_params = false;
        let path: Vec<String> = template
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') && seg.ends_with('}') {
                    has_params = true;
                    "0".to_owned()
                } else {
                    seg.to_owned()
                }
            })
            .collect();
        let needs = match route.access() {
            RouteAccess::Permission(p) => vec![p.to_owned()],
            _ => Vec::new(),
        };
        Self {
            kind: RowKind::ApiRoute,
            owner,
            surface: Surface::Api,
            method: route.method().clone(),
            label: format!("{} {base}{template}", route.method()),
            path: format!("{base}{}", path.join("/")),
            access: route.access(),
            needs,
            has_params,
        }
    }

    /// A route declared for every resource, as `meta`'s: it requires
    /// every permission of `needs` (other `{param}` segments are filled
    /// with `0`).
    pub(super) fn resource_api(
        base: &str,
        route: &ResourceApiRoute,
        meta: &'static platform_core::resource::ResourceMeta,
        needs: Vec<String>,
    ) -> Self {
        let template = route.path_for(meta.plural());
        let mut has_params = false;
        let path: Vec<String> = template
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') && seg.ends_with('}') {
                    has_params = true;
                    "0".to_owned()
                } else {
                    seg.to_owned()
                }
            })
            .collect();
        Self {
            kind: RowKind::ApiRoute,
            owner: meta.plural(),
            surface: Surface::Api,
            method: route.method().clone(),
            label: format!("{} {base}{template}", route.method()),
            path: format!("{base}{}", path.join("/")),
            // The resource's permission (not `'static`) is in `needs`.
            access: RouteAccess::Permission(""),
            needs,
            has_params,
        }
    }

    pub(super) fn requires(&self) -> String {
        match self.access {
            RouteAccess::Permission(_) => self.needs.join(" + "),
            other => other.to_string(),
        }
    }
}
