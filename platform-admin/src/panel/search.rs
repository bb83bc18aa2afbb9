//! `GET /search?q=`: global search across every resource the user may
//! list, through each resource's search fields, a few results each.

use axum::response::Response;
use futures::StreamExt;
use platform_core::permission::Ability;
use platform_core::query::{ListQuery, MAX_SEARCH_LEN};
use serde::Serialize;

use super::error::PanelError;
use super::fields::Viewer;
use super::format::{encode_component, query_string, with_query};
use super::render::Panel;

/// Results shown per resource.
const PER_RESOURCE: u32 = 5;
/// Resources searched at the same time.
const CONCURRENCY: usize = 4;

#[derive(Debug, Serialize)]
struct Hit {
    title: String,
    href: String,
}

#[derive(Debug, Serialize)]
struct Group {
    label: &'static str,
    more_href: String,
    more: bool,
    hits: Vec<Hit>,
}

#[derive(Debug, Serialize)]
struct SearchPage {
    q: String,
    groups: Vec<Group>,
    error: Option<String>,
    searched: bool,
}

/// `GET /search?q=`.
pub(crate) async fn show(p: Panel) -> Result<Response, PanelError> {
    let q: String = p
        .query_pairs()?
        .into_iter()
        .rev()
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let mut error = None;
    let mut groups = Vec::new();
    if q.chars().count() > MAX_SEARCH_LEN {
        error = Some(format!("Search for at most {MAX_SEARCH_LEN} characters."));
    } else if q.contains('\0') {
        error = Some("The search must not contain NUL characters.".to_owned());
    } else if !q.is_empty() {
        let targets: Vec<_> = p
            .platform
            .registry()
            .entries()
            .filter(|e| {
                let m = e.meta();
                m.in_admin()
                    && !m.search_fields().is_empty()
                    && p.can(e.permission(Ability::ViewAny))
            })
            .filter_map(|e| p.platform.records(e.meta().plural(), p.ctx()))
            .collect();
        let viewer = Viewer::of(&p);
        let base = p.base();
        let query = ListQuery::new().search(q.clone()).page_size(PER_RESOURCE);
        let results: Vec<_> = futures::stream::iter(targets)
            .map(|records| {
                let query = query.clone();
                async move {
                    let page = records.list(&query).await;
                    (records, page)
                }
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        for (records, page) in results {
            let meta = records.meta();
            let page = match page {
                Ok(page) => page,
                Err(platform_core::Error::Validation(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            if page.items.is_empty() {
                continue;
            }
            let list = format!("{base}/{}", meta.plural());
            groups.push(Group {
                label: meta.plural_label(),
                more_href: with_query(&list, &query_string([("search", q.as_str())])),
                more: page.has_more,
                hits: page
                    .items
                    .iter()
                    .map(|r| Hit {
                        title: viewer.title(r),
                        href: format!("{list}/{}", encode_component(&r.id().display())),
                    })
                    .collect(),
            });
        }
    }
    let page = SearchPage {
        searched: !q.is_empty() && error.is_none(),
        q,
        groups,
        error,
    };
    p.render("search.html", "Search", &page).await
}
