//! `GET /audits`: the audit trail of a record or of a whole resource.
//!
//! Parameters: `resource` (required, a plural name the API serves),
//! `record` (an id: that record's entries, needs `view_<resource>`; without
//! it, the resource's recent entries, needs `view_any_<resource>`), `before`
//! (an entry id: keyset paging, newest first) and `limit` (1 to 100,
//! default 50). Values of `pii` fields are masked unless the caller has
//! `view_pii`; `encrypted` fields are stored redacted; hidden fields are
//! left out.

use axum::Json;
use axum::response::{IntoResponse, Response};
use platform_core::audit::{AuditValues, Entry, mask_values};
use platform_core::context::Actor;
use platform_core::error::FieldErrors;
use platform_core::permission::{Ability, VIEW_PII};
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
    params.reject_unknown(&["resource", "record", "before", "limit"], &mut errors);
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
    }
    if record.is_some_and(|r| r.is_empty() || r.chars().count() > 64) {
        errors.add("record", "invalid", "must be a record id");
    }
    let before = positive(&params, "before", i64::MAX, &mut errors);
    let limit = positive(&params, "limit", MAX_LIMIT as i64, &mut errors)
        .map_or(DEFAULT_LIMIT, |n| n as usize);
    errors.into_result()?;
    let Some(records) = records else {
        return Err(Error::RouteNotFound);
    };
    let meta = records.meta();
    let log = api.platform().audit();
    let fetch = limit as i64 + 1;
    // Under a record-level policy, the history of a record the actor cannot
    // reach does not exist for them, and neither does the whole resource's.
    let restricted = !records.reaches_everything()?;
    if restricted {
        match record {
            None => {
                return Err(platform_core::Error::PermissionDenied {
                    ability: format!("the policy of {}", meta.plural()),
                }
                .into());
            }
            Some(text) => {
                let id = records.parse_id(text)?;
                records.find_with_trashed(id).await?;
            }
        }
    }
    let mut entries: Vec<Entry> = match record {
        Some(text) => {
            // Ids are stored in their canonical text form (`7`, not `007`).
            let id = records
                .parse_id(text)
                .map_or_else(|_| text.to_owned(), |v| v.display());
            log.for_record_before(meta.name(), &id, before, fetch)
                .await?
        }
        None => log.recent(Some(meta.name()), before, fetch).await?,
    };
    let has_more = entries.len() > limit;
    entries.truncate(limit);
    let next_before = if has_more {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    let next = next_before.map(|b| {
        let b = b.to_string();
        link::with_params(
            api.original_uri().path(),
            params.pairs(),
            &["before"],
            &[("before", b.as_str())],
        )
    });

    let see_pii = api.context().can(VIEW_PII);
    let pii: Vec<&str> = meta
        .field_list()
        .iter()
        .filter(|f| f.is_pii())
        .map(|f| f.name())
        .collect();
    let hidden: Vec<&str> = meta
        .field_list()
        .iter()
        .filter(|f| f.is_hidden())
        .map(|f| f.name())
        .collect();
    let clean = |mut values: AuditValues| {
        for h in &hidden {
            values.remove(*h);
        }
        if !see_pii {
            mask_values(&mut values, &pii);
        }
        values
    };
    let data = entries
        .into_iter()
        .map(|e| AuditJson {
            id: e.id,
            old_values: clean(e.old()),
            new_values: clean(e.new_values_map()),
            tags: e.tag_list(),
            event: e.event,
            resource: meta.plural(),
            record_id: e.record_id,
            actor: ActorJson {
                kind: e.actor_type,
                id: e.actor_id,
                label: e.actor_label,
            },
            ip: e.ip,
            user_agent: e.user_agent,
            url: e.url,
            request_id: e.request_id,
            created_at: Value::DateTime(e.created_at).to_json(),
            seq: e.seq,
            hash: e.hash,
        })
        .collect();
    Ok(Json(AuditBody {
        data,
        meta: AuditMeta {
            has_more,
            next_before,
        },
        links: Links { next },
    })
    .into_response())
}
