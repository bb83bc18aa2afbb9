//! `GET /audits`: the audit trail of a record or of a whole resource, and
//! `GET /audits/{id}`: one entry, whole.
//!
//! Parameters: `resource` (required, a plural name the API serves),
//! `record` (an id: that record's entries, needs `view_<resource>`; without
//! it, every entry of the resource, which needs `view_any_<resource>` and
//! `view_audit`), `before` (an entry id: keyset paging, newest first) and
//! `page[size]` (1 to 100, default 50; `limit` is its older name, still
//! taken, and must agree with it when both are sent). Listings are bounded in bytes: values
//! longer than 1,000 characters are cut (ending in `…`, the entry's
//! `truncated` names the fields and `href` leads to the whole entry), and a
//! page stops at 256 KiB of values. Values of `pii` fields are masked
//! unless the caller has `view_pii`; `encrypted` fields are stored
//! redacted; hidden fields are left out; client addresses and user agents
//! are shown with `view_audit` only.

use axum::Json;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use platform_core::audit::{AuditFilter, AuditValues, Entry};
use platform_core::context::Actor;
use platform_core::error::FieldErrors;
use platform_core::permission::{Ability, VIEW_AUDIT};
use platform_core::repo::Records;
use platform_core::resource::ResourceMeta;
use platform_core::value::Value;
use serde::Serialize;

use super::context::ApiContext;
use super::extract::Params;
use super::link;
use super::resource::Links;
use crate::error::{Error, Result};

/// Entries per page when `limit` is not given.
const DEFAULT_LIMIT: usize = 50;
/// The largest `limit`.
const MAX_LIMIT: usize = 100;

#[derive(Serialize)]
struct AuditBody {
    data: Vec<AuditJson>,
    meta: AuditMeta,
    links: Links,
}

#[derive(Serialize)]
struct AuditMeta {
    has_more: bool,
    next_before: Option<i64>,
}

#[derive(Serialize)]
struct AuditJson {
    id: i64,
    event: String,
    resource: &'static str,
    record_id: String,
    old_values: AuditValues,
    new_values: AuditValues,
    actor: ActorJson,
    ip: Option<String>,
    user_agent: Option<String>,
    url: Option<String>,
    request_id: Option<String>,
    tags: Vec<String>,
    created_at: serde_json::Value,
    seq: Option<i64>,
    hash: Option<String>,
    /// Fields whose values were cut in this listing.
    truncated: Vec<String>,
    /// The whole entry.
    href: String,
}

#[derive(Serialize)]
struct EntryBody {
    data: AuditJson,
}

#[derive(Serialize)]
struct ActorJson {
    #[serde(rename = "type")]
    kind: String,
    id: Option<i64>,
    label: Option<String>,
}

fn positive(params: &Params, name: &str, max: i64, errors: &mut FieldErrors) -> Option<i64> {
    let v = params.get(name)?;
    match v.parse::<i64>() {
        Ok(n) if (1..=max).contains(&n) => Some(n),
        _ => {
            errors.add(name, "invalid", format!("must be a number from 1 to {max}"));
            None
        }
    }
}

/// `GET /audits`.
pub(super) async fn index(api: ApiContext, params: Params) -> Result<Response> {
    if matches!(api.context().actor(), Actor::Anonymous) {
        return Err(platform_core::Error::Unauthenticated.into());
    }
    let mut errors = FieldErrors::default();
    params.reject_unknown(
        &["resource", "record", "before", "page[size]", "limit"],
        &mut errors,
    );
    params.reject_nul(&mut errors);
    let records = match params.get("resource") {
        None => {
            errors.add("resource", "required", "is required");
            None
        }
        Some(name) => match api.records(name) {
            Ok(r) => Some(r),
            Err(_) => {
                errors.add("resource", "invalid", "is not a resource of the API");
                None
            }
        },
    };
    let record = params.get("record");
    if let Some(records) = &records {
        let ability = if record.is_some() {
            Ability::View
        } else {
            Ability::ViewAny
        };
        api.context()
            .authorize(records.entry().permission(ability))?;
        // Every record's history (deleted records' too) needs `view_audit`.
        if record.is_none() {
            api.context().authorize(VIEW_AUDIT)?;
        }
    }
    if record.is_some_and(|r| r.is_empty() || r.chars().count() > 64) {
        errors.add("record", "invalid", "must be a record id");
    }
    let before = positive(&params, "before", i64::MAX, &mut errors);
    // `page[size]`, as on the lists; `limit` is its older name.
    let size = positive(&params, "page[size]", MAX_LIMIT as i64, &mut errors);
    let limit = positive(&params, "limit", MAX_LIMIT as i64, &mut errors);
    if let (Some(s), Some(l)) = (size, limit)
        && s != l
    {
        errors.add(
            "page[size]",
            "invalid",
            "differs from `limit` (its older name): send one of them",
        );
    }
    let limit = size.or(limit).map_or(DEFAULT_LIMIT, |n| n as usize);
    errors.into_result()?;
    let Some(records) = records else {
        return Err(Error::RouteNotFound);
    };
    let meta = records.meta();
    // Under a record-level policy, the history of a record the actor cannot
    // reach does not exist for them, and neither does the whole resource's.
    let record_id = match record {
        Some(text) => Some(reachable_record(&records, text).await?),
        None => {
            if !records.reaches_everything()? {
                return Err(outside_policy(meta).into());
            }
            None
        }
    };
    let page = api
        .platform()
        .audit()
        .list(
            AuditFilter {
                resource: Some(meta.name()),
                record_id: record_id.as_deref(),
            },
            before,
            limit,
        )
        .await?;
    let next = page.next_before.map(|b| {
        let b = b.to_string();
        link::with_params(
            api.original_uri().path(),
            params.pairs(),
            &["before"],
            &[("before", b.as_str())],
        )
    });
    let base = entry_base(api.original_uri().path());
    let data = page
        .entries
        .into_iter()
        .map(|e| entry_json(&api, meta, &base, e))
        .collect();
    Ok(Json(AuditBody {
        data,
        meta: AuditMeta {
            has_more: page.has_more,
            next_before: page.next_before,
        },
        links: Links { next },
    })
    .into_response())
}

/// `GET /audits/{id}`: one entry with its whole values, under the rules of
/// its record's listing (`view_<resource>`, the record policy).
pub(super) async fn show(
    api: ApiContext,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response> {
    if matches!(api.context().actor(), Actor::Anonymous) {
        return Err(platform_core::Error::Unauthenticated.into());
    }
    let mut errors = FieldErrors::default();
    params.reject_unknown(&[], &mut errors);
    errors.into_result()?;
    let not_found = || platform_core::Error::NotFound {
        resource: "audit entry",
        id: id.chars().take(64).collect(),
    };
    let n: i64 = id.parse().ok().filter(|n| *n > 0).ok_or_else(not_found)?;
    let entry = api.platform().audit().get(n).await?.ok_or_else(not_found)?;
    let records = api
        .platform()
        .registry()
        .entries()
        .find(|e| e.meta().name() == entry.resource && e.meta().in_api())
        .and_then(|e| api.records(e.meta().plural()).ok())
        .ok_or_else(not_found)?;
    api.context()
        .authorize(records.entry().permission(Ability::View))?;
    reachable_record(&records, &entry.record_id).await?;
    let base = entry_base(api.original_uri().path());
    let data = entry_json(&api, records.meta(), &base, entry);
    Ok(Json(EntryBody { data }).into_response())
}

/// The record id as stored (canonical text: `7`, not `007`), after
/// checking that the actor's policy reaches the record (deleted or not).
async fn reachable_record(records: &Records, text: &str) -> Result<String> {
    if !records.reaches_everything()? {
        records.find_with_trashed(records.parse_id(text)?).await?;
    }
    Ok(records
        .parse_id(text)
        .map_or_else(|_| text.to_owned(), |v| v.display()))
}

fn outside_policy(meta: &ResourceMeta) -> platform_core::Error {
    platform_core::Error::PermissionDenied {
        ability: format!("the policy of {}", meta.plural()),
    }
}

/// `/api/audits/` from the request's path (`/api/audits` or
/// `/api/audits/7`), for entries' `href`.
fn entry_base(path: &str) -> String {
    let root = path
        .rfind("/audits")
        .map_or(path, |i| &path[..i + "/audits".len()]);
    format!("{root}/")
}

/// An entry as the actor may see it: hidden fields left out, personal data
/// masked without `view_pii`, addresses and user agents without
/// `view_audit` left out.
fn entry_json(api: &ApiContext, meta: &'static ResourceMeta, base: &str, e: Entry) -> AuditJson {
    let ctx = api.context();
    let see_audit = ctx.can(VIEW_AUDIT);
    let (old_values, new_values) = e.values_for(meta, ctx);
    AuditJson {
        id: e.id,
        old_values,
        new_values,
        tags: e.tag_list(),
        href: format!("{base}{}", e.id),
        event: e.event,
        resource: meta.plural(),
        record_id: e.record_id,
        actor: ActorJson {
            kind: e.actor_type,
            id: e.actor_id,
            label: e.actor_label,
        },
        ip: e.ip.filter(|_| see_audit),
        user_agent: e.user_agent.filter(|_| see_audit),
        url: e.url,
        request_id: e.request_id,
        created_at: Value::DateTime(e.created_at).to_json(),
        seq: e.seq,
        hash: e.hash,
        truncated: e.truncated,
    }
}
