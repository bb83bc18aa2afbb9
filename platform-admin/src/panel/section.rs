//! Record sections: a block of HTML a capability adds to a record's view
//! page (and, if it asks, under its edit form), with forms that post back to
//! the capability (the media library's gallery and upload form).
//!
//! ```
//! use platform_admin::panel::section::{RecordSection, SectionContext, SectionForm};
//!
//! # fn setup(setup: &mut platform_core::capability::Setup) {
//! setup.contribute(
//!     RecordSection::new("notes", |cx: SectionContext| {
//!         Box::pin(async move {
//!             Ok(Some(format!(
//!                 "<p>Record {}</p>",
//!                 platform_admin::panel::section::escape(&cx.record_id)
//!             )))
//!         })
//!     })
//!     .on_post(|_cx: SectionContext, _form: SectionForm| Box::pin(async { Ok("Saved.".to_owned()) })),
//! );
//! # }
//! ```
//!
//! The panel calls the renderer for every record page of every resource
//! (it returns `None` for the resources it does not serve). Its HTML is
//! inserted as is: escape every value with [`escape`]. A section's forms
//! post `multipart/form-data` to [`SectionContext::action`], with the
//! hidden field `_csrf` ([`SectionContext::csrf`]) **first**: the panel
//! checks it before the section's handler sees the rest, and answers 403
//! without it. The handler's message comes back as a flash on the page the
//! form was on. Without JavaScript, all of it works.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path, Request};
use axum::response::Response;
use platform_core::Platform;
use platform_core::context::Context;

use super::error::PanelError;
use super::flash::Flash;
use super::format::encode_component;
use super::render::Panel;

/// What a section's renderer or handler returns.
pub type SectionFuture<T> = Pin<Box<dyn Future<Output = platform_core::Result<T>> + Send>>;

type RenderFn = Arc<dyn Fn(SectionContext) -> SectionFuture<Option<String>> + Send + Sync>;
type PostFn = Arc<dyn Fn(SectionContext, SectionForm) -> SectionFuture<String> + Send + Sync>;

/// Escapes text for HTML (`&`, `<`, `>`, `"`, `'`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A section of record pages, contributed by a capability with
/// [`Setup::contribute`](platform_core::capability::Setup::contribute).
#[derive(Clone)]
pub struct RecordSection {
    name: &'static str,
    render: RenderFn,
    post: Option<PostFn>,
    on_edit: bool,
    body_limit: usize,
}

impl fmt::Debug for RecordSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordSection")
            .field("name", &self.name)
            .field("on_edit", &self.on_edit)
            .finish_non_exhaustive()
    }
}

impl RecordSection {
    /// The section `name` (unique; part of its form's URL), drawn by
    /// `render` on view pages.
    pub fn new<F>(name: &'static str, render: F) -> Self
    where
        F: Fn(SectionContext) -> SectionFuture<Option<String>> + Send + Sync + 'static,
    {
        Self {
            name,
            render: Arc::new(render),
            post: None,
            on_edit: false,
            body_limit: 1 << 20,
        }
    }
    /// Handles the section's forms; returns the message shown after.
    #[must_use]
    pub fn on_post<F>(mut self, handler: F) -> Self
    where
        F: Fn(SectionContext, SectionForm) -> SectionFuture<String> + Send + Sync + 'static,
    {
        self.post = Some(Arc::new(handler));
        self
    }
    /// Drawn under the edit form too.
    #[must_use]
    pub fn on_edit(mut self) -> Self {
        self.on_edit = true;
        self
    }
    /// The largest form body accepted (default 1 MiB).
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// Where a section is drawn.
#[derive(Debug, Clone)]
pub struct SectionContext {
    /// The platform.
    pub platform: Platform,
    /// The signed-in user's context.
    pub context: Context,
    /// The resource's plural name (`products`).
    pub resource: &'static str,
    /// The record's id, as text.
    pub record_id: String,
    /// The record's page (`/admin/products/7`).
    pub href: String,
    /// Where the section's forms post.
    pub action: String,
    /// The session's CSRF token: the first field of every form.
    pub csrf: String,
    /// Whether it is drawn on the edit page.
    pub editing: bool,
}

/// A section form's fields after `_csrf`, as they arrive (files streamed).
#[derive(Debug)]
pub struct SectionForm(pub Multipart);

fn context(
    p: &Panel,
    resource: &'static str,
    record_id: &str,
    name: &str,
    editing: bool,
) -> SectionContext {
    let href = format!("{}/{resource}/{}", p.base(), encode_component(record_id));
    SectionContext {
        platform: p.platform.clone(),
        context: p.ctx().clone(),
        resource,
        action: format!("{href}/sections/{name}"),
        href,
        record_id: record_id.to_owned(),
        csrf: p.auth.csrf_token.clone(),
        editing,
    }
}

/// The sections' HTML for a record page.
pub(crate) async fn render_all(
    p: &Panel,
    resource: &'static str,
    record_id: &str,
    editing: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for s in p.platform.contributions::<RecordSection>() {
        if editing && !s.on_edit {
            continue;
        }
        match (s.render)(context(p, resource, record_id, s.name, editing)).await {
            Ok(Some(html)) => out.push(html),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(section = s.name, error = %e, "a record section failed to render");
            }
        }
    }
    out
}

/// `POST /{resource}/{id}/sections/{name}`.
pub(crate) async fn post(
    p: Panel,
    Path((resource, id, name)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, PanelError> {
    let section = p
        .platform
        .contributions::<RecordSection>()
        .into_iter()
        .find(|s| s.name == name)
        .ok_or(PanelError::NotFound)?;
    let handler = section.post.clone().ok_or(PanelError::NotFound)?;
    let records = p.records(&resource)?;
    let plural = records.meta().plural();
    let expected = req
        .extensions()
        .get::<super::session::ExpectedCsrf>()
        .cloned();
    let (parts, body) = req.into_parts();
    let editing = parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "from=edit"));
    let limit = section.body_limit;
    let mut seen = 0usize;
    let limited = futures::StreamExt::map(body.into_data_stream(), move |chunk| {
        let chunk = chunk?;
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            return Err(axum::Error::new(format!("the form is over {limit} bytes")));
        }
        Ok(chunk)
    });
    let req = Request::from_parts(parts, axum::body::Body::from_stream(limited));
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|_| PanelError::Csrf)?;
    let first = form.next_field().await.map_err(|_| PanelError::Csrf)?;
    let token = match first {
        Some(f) if f.name() == Some("_csrf") => f.text().await.ok(),
        _ => None,
    };
    if !super::session::csrf_ok(expected.as_ref(), token.as_deref()) {
        return Err(PanelError::Csrf);
    }
    let cx = context(&p, plural, &id, &name, editing);
    let back = if editing {
        format!("{}/edit", cx.href)
    } else {
        cx.href.clone()
    };
    Ok(match handler(cx, SectionForm(form)).await {
        Ok(msg) => p.redirect_with(&back, Flash::success(msg)),
        Err(
            e @ (platform_core::Error::PermissionDenied { .. }
            | platform_core::Error::Unauthenticated
            | platform_core::Error::NotFound { .. }),
        ) => return Err(e.into()),
        Err(e) => p.redirect_with(&back, Flash::error(e.to_string())),
    })
}
