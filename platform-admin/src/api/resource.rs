//! The handlers of `/{resource}` and `/{resource}/{id}`: extract, check the
//! permission (so an anonymous or unprivileged caller learns nothing from
//! validation messages), call the core's one write path, map the answer.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform_core::error::FieldErrors;
use platform_core::permission::Ability;
use platform_core::query::{Count, ListQuery, Paging};
use platform_core::repo::{Changes, Records};
use serde::Serialize;

use super::context::ApiContext;
use super::extract::{JsonBody, Params, RecordPath, ResourcePath};
use super::{include, link};
use crate::error::{Error, Result};

/// `{"data": ...}`.
#[derive(Serialize)]
pub(super) struct DataBody<T> {
    pub(super) data: T,
}

#[derive(Serialize)]
struct ListBody {
    data: Vec<serde_json::Value>,
    meta: ListMeta,
    links: Links,
}

#[derive(Serialize)]
struct ListMeta {
    has_more: bool,
    next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<Count>,
}

#[derive(Serialize)]
pub(super) struct Links {
    pub(super) next: Option<String>,
}

fn authorize(records: &Records, ability: Ability) -> Result<()> {
    records
        .context()
        .authorize(records.entry().permission(ability))
        .map_err(Error::from)
}

/// The body of a record a write returned: the whole record when the caller
/// may view it (`view_<resource>`), only its primary key otherwise, so a
/// write-only caller (an import token with `create_` alone, say) learns no
/// more than it sent. The panel asks for `view_` on its edit pages; the API
/// lets such callers write but never reads back to them.
fn written(
    records: &Records,
    rec: &platform_core::repo::Record,
    ctx: &platform_core::Context,
) -> serde_json::Value {
    if ctx.can(records.entry().permission(Ability::View)) {
        return rec.to_json(ctx);
    }
    let pk = records.meta().primary_key();
    let mut map = serde_json::Map::with_capacity(1);
    map.insert(pk.name().to_owned(), rec.id().to_json());
    serde_json::Value::Object(map)
}

/// Reads a boolean parameter: `true`/`1` or `false`/`0`.
fn flag(params: &Params, name: &str, errors: &mut FieldErrors) -> bool {
    match params.get(name) {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(_) => {
            errors.add(name, "invalid", "must be true or false");
            false
        }
    }
}

fn no_params(params: &Params) -> Result<()> {
    let mut errors = FieldErrors::default();
    params.reject_unknown(&[], &mut errors);
    errors.into_result().map_err(Error::from)
}

/// The list query of the request's parameters and the relations to
/// include, every problem reported.
fn list_query(records: &Records, params: &Params) -> Result<(ListQuery, Vec<include::Relation>)> {
    let mut errors = FieldErrors::default();
    flag(params, "count", &mut errors);
    params.reject_nul(&mut errors);
    let rels = include::parse(records.meta(), params, &mut errors);
    match ListQuery::from_params(params.pairs().filter(|(k, _)| *k != "include")) {
        Ok(q) if errors.is_empty() => return Ok((q, rels)),
        Ok(_) => {}
        Err(e) => {
            for f in e.iter() {
                errors.add(f.field.clone(), f.code, f.message.clone());
            }
        }
    }
    Err(platform_core::Error::Validation(errors).into())
}

/// `GET /{resource}`.
pub(super) async fn index(
    api: ApiContext,
    ResourcePath(resource): ResourcePath,
    params: Params,
) -> Result<Response> {
    let records = api.records(&resource)?;
    authorize(&records, Ability::ViewAny)?;
    let (query, rels) = list_query(&records, &params)?;
    let targets = include::targets(&api, &rels, false)?;
    let page = records.list(&query).await?;
    let next = if page.has_more {
        let path = api.original_uri().path();
        match &query.paging {
            Paging::Cursor { .. } => page.next_cursor.as_deref().map(|c| {
                link::with_params(
                    path,
                    params.pairs(),
                    &["page[after]"],
                    &[("page[after]", c)],
                )
            }),
            Paging::Offset { number, .. } => {
                let n = (number + 1).to_string();
                Some(link::with_params(
                    path,
                    params.pairs(),
                    &["page[number]"],
                    &[("page[number]", n.as_str())],
                ))
            }
        }
    } else {
        None
    };
    let ctx = api.context();
    let mut data: Vec<serde_json::Value> = page.items.iter().map(|r| r.to_json(ctx)).collect();
    include::embed(&targets, &page.items, &mut data, false).await?;
    let body = ListBody {
        data,
        meta: ListMeta {
            has_more: page.has_more,
            next_cursor: page.next_cursor,
            total: page.total,
        },
        links: Links { next },
    };
    Ok(Json(body).into_response())
}

/// `POST /{resource}`.
pub(super) async fn create(
    api: ApiContext,
    ResourcePath(resource): ResourcePath,
    params: Params,
    body: Result<JsonBody, Error>,
) -> Result<Response> {
    let records = api.records(&resource)?;
    authorize(&records, Ability::Create)?;
    no_params(&params)?;
    let JsonBody(body) = body?;
    let changes = Changes::read_json(records.meta(), &body)?;
    let rec = records.create(changes).await?;
    let location = link::child(api.original_uri().path(), &rec.id().display());
    let mut res = (
        StatusCode::CREATED,
        Json(DataBody {
            data: written(&records, &rec, api.context()),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::try_from(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// `GET /{resource}/{id}`.
pub(super) async fn show(
    api: ApiContext,
    RecordPath(resource, id): RecordPath,
    params: Params,
) -> Result<Response> {
    let records = api.records(&resource)?;
    authorize(&records, Ability::View)?;
    let mut errors = FieldErrors::default();
    params.reject_unknown(&["include"], &mut errors);
    params.reject_nul(&mut errors);
    let rels = include::parse(records.meta(), &params, &mut errors);
    errors.into_result()?;
    let targets = include::targets(&api, &rels, true)?;
    let rec = records.find(records.parse_id(&id)?).await?;
    let mut data = [rec.to_json(api.context())];
    include::embed(&targets, std::slice::from_ref(&rec), &mut data, true).await?;
    let [data] = data;
    Ok(Json(DataBody { data }).into_response())
}

/// `PATCH` and `PUT /{resource}/{id}`: writes the fields sent.
pub(super) async fn update(
    api: ApiContext,
    RecordPath(resource, id): RecordPath,
    params: Params,
    body: Result<JsonBody, Error>,
) -> Result<Response> {
    let records = api.records(&resource)?;
    authorize(&records, Ability::Update)?;
    no_params(&params)?;
    let id = records.parse_id(&id)?;
    let JsonBody(body) = body?;
    let changes = Changes::read_json(records.meta(), &body)?;
    let rec = records.update(id, changes).await?;
    Ok(Json(DataBody {
        data: written(&records, &rec, api.context()),
    })
    .into_response())
}

/// `DELETE /{resource}/{id}[?force=true]`.
pub(super) async fn destroy(
    api: ApiContext,
    RecordPath(resource, id): RecordPath,
    params: Params,
) -> Result<Response> {
    let records = api.records(&resource)?;
    let mut errors = FieldErrors::default();
    let force = flag(&params, "force", &mut errors);
    authorize(
        &records,
        if force {
            Ability::ForceDelete
        } else {
            Ability::Delete
        },
    )?;
    params.reject_unknown(&["force"], &mut errors);
    errors.into_result()?;
    let id = records.parse_id(&id)?;
    if force {
        records.force_delete(id).await?;
    } else {
        records.delete(id).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /{resource}/{id}/restore` (soft-deleting resources only).
pub(super) async fn restore(
    api: ApiContext,
    RecordPath(resource, id): RecordPath,
    params: Params,
) -> Result<Response> {
    let records = api.records(&resource)?;
    if !records.meta().is_soft_delete() {
        return Err(Error::RouteNotFound);
    }
    authorize(&records, Ability::Restore)?;
    no_params(&params)?;
    let id = records.parse_id(&id)?;
    // A record that exists but is not deleted is a conflict (409).
    let rec = records.restore(id).await?;
    Ok(Json(DataBody {
        data: written(&records, &rec, api.context()),
    })
    .into_response())
}
