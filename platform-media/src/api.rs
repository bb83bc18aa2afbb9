//! The media routes of the JSON API (under `/api`):
//!
//! | method | path | requires | what |
//! |---|---|---|---|
//! | `POST` | `/{plural}/{id}/media/{collection}` | `update_<resource>` | multipart upload (the part named `file`); `201` with the file |
//! | `GET` | `/{plural}/{id}/media[?collection=c]` | `view_<resource>` | the record's files, with signed URLs |
//! | `DELETE` | `/media/{id}` | `update_<resource>` of its record | `204` |
//! | `POST` | `/media/reorder` | `update_<resource>` of their record | `{"ids": [...]}`: that order; `204` |

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use axum::Json;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use bytes::Bytes;
use futures::SinkExt;
use platform_admin::api::ApiContext;
use platform_admin::capability::ApiRoutes;
use platform_admin::error::Error as ApiError;
use platform_core::Platform;
use platform_core::capability::ApiDoc;
use platform_core::context::Actor;
use platform_core::error::Error;
use platform_core::permission::{Ability, permission_name};
use platform_core::storage::{ByteStream, StorageError};
use serde::Deserialize;
use uuid::Uuid;

use crate::CollectionDecl;
use crate::library::MediaLibrary;
use crate::{RecordRef, Upload};

/// What a multipart body may carry besides the file (boundaries, headers,
/// other small fields).
pub(crate) const MULTIPART_OVERHEAD: u64 = 64 << 10;

/// Interns a string built once per declaration (route paths and
/// permission names must be `&'static str`): one leak per distinct text,
/// whatever the number of platforms built.
fn intern(s: String) -> &'static str {
    static TABLE: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut t = TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(s) = t.get(&s) {
        return s;
    }
    let leaked: &'static str = Box::leak(s.clone().into_boxed_str());
    t.insert(s, leaked);
    leaked
}

/// The routes, declared per resource for the permission matrix.
pub(crate) fn routes(collections: &[CollectionDecl]) -> ApiRoutes {
    let largest = collections
        .iter()
        .map(|c| c.spec.max_size)
        .max()
        .unwrap_or(0)
        .saturating_add(MULTIPART_OVERHEAD);
    let limit = usize::try_from(largest).unwrap_or(usize::MAX);
    let router = axum::Router::<Platform>::new()
        .route(
            "/{resource}/{id}/media/{collection}",
            post(upload).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/{resource}/{id}/media", get(index))
        .route("/media/reorder", post(reorder))
        .route("/media/{id}", delete(destroy));
    let mut routes = ApiRoutes::new(router);
    let mut seen = Vec::new();
    for c in collections {
        if seen.contains(&c.plural) {
            continue;
        }
        seen.push(c.plural);
        routes = routes
            .post(intern(format!("/{}/{{id}}/media/{{collection}}", c.plural)))
            .requires(intern(permission_name(Ability::Update, c.resource)))
            .get(intern(format!("/{}/{{id}}/media", c.plural)))
            .requires(intern(permission_name(Ability::View, c.resource)));
    }
    routes.delete("/media/{id}").post("/media/reorder")
}

fn library(api: &ApiContext) -> Result<std::sync::Arc<MediaLibrary>, ApiError> {
    api.platform()
        .get::<MediaLibrary>()
        .ok_or(ApiError::RouteNotFound)
}

/// The resource's permission for `ability`, checked before anything is
/// looked up (a caller without it learns nothing, not even whether the
/// collection exists).
fn authorize(
    api: &ApiContext,
    lib: &MediaLibrary,
    plural: &str,
    ability: Ability,
) -> Result<(), ApiError> {
    if lib
        .collections_of(plural)
        .iter()
        .all(|c| c.plural != plural)
    {
        return Err(ApiError::UnknownResource(plural.chars().take(64).collect()));
    }
    let records = api.records(plural)?;
    api.context()
        .authorize(records.entry().permission(ability))
        .map_err(ApiError::from)
}

fn signed_in(api: &ApiContext) -> Result<(), ApiError> {
    if matches!(api.context().actor(), Actor::Anonymous) {
        return Err(Error::Unauthenticated.into());
    }
    Ok(())
}

async fn upload(
    api: ApiContext,
    Path((resource, id, collection)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let lib = library(&api)?;
    authorize(&api, &lib, &resource, Ability::Update)?;
    let decl = lib
        .collection(&resource, &collection)
        .ok_or_else(|| Error::NotFound {
            resource: "media collection",
            id: collection.chars().take(64).collect(),
        })?
        .clone();
    let limit = decl.spec.max_size.saturating_add(MULTIPART_OVERHEAD);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        });
    }
    let record = RecordRef::new(resource, id);
    // The record, before reading the body.
    lib.find(
        api.platform(),
        api.context(),
        &record,
        Ability::Update,
        false,
    )
    .await?;
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|e| Error::invalid("file", "multipart", e.body_text()))?;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| Error::invalid("file", "multipart", e.body_text()))?
            .ok_or_else(|| {
                Error::invalid(
                    "file",
                    "required",
                    "send the file as the multipart part `file`",
                )
            })?;
        if field.name() != Some("file") {
            continue;
        }
        let item = attach_field(
            &lib,
            api.platform(),
            api.context(),
            &record,
            &collection,
            field,
        )
        .await;
        let item = item?;
        return Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({ "data": lib.to_json(&item) })),
        )
            .into_response());
    }
}

async fn index(
    api: ApiContext,
    Path((resource, id)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let lib = library(&api)?;
    authorize(&api, &lib, &resource, Ability::View)?;
    let mut collection: Option<String> = None;
    for (k, v) in params {
        if k != "collection" {
            return Err(Error::invalid(
                k.replace('\0', "").chars().take(64).collect::<String>(),
                "unknown_parameter",
                "unknown parameter (known: collection)",
            )
            .into());
        }
        if collection.replace(v).is_some() {
            return Err(Error::invalid("collection", "invalid", "given more than once").into());
        }
    }
    if let Some(c) = &collection
        && lib.collection(&resource, c).is_none()
    {
        return Err(Error::invalid(
            "collection",
            "unknown",
            format!(
                "not a collection of {resource} (they are: {})",
                lib.collections_of(&resource)
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into());
    }
    let items = lib
        .list(
            api.platform(),
            api.context(),
            &RecordRef::new(resource, id),
            collection.as_deref(),
        )
        .await?;
    let data: Vec<serde_json::Value> = items.iter().map(|i| lib.to_json(i)).collect();
    Ok(Json(serde_json::json!({ "data": data })))
}

fn media_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::from(Error::NotFound {
            resource: "media",
            id: text.chars().take(64).collect(),
        })
    })
}

async fn destroy(api: ApiContext, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    signed_in(&api)?;
    let lib = library(&api)?;
    lib.delete(api.platform(), api.context(), media_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct ReorderBody {
    ids: Vec<String>,
}

async fn reorder(api: ApiContext, body: Bytes) -> Result<StatusCode, ApiError> {
    signed_in(&api)?;
    let lib = library(&api)?;
    let body: ReorderBody = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid("ids", "invalid", format!("send {{\"ids\": [...]}}: {e}")))?;
    let ids = body
        .ids
        .iter()
        .map(|s| media_id(s))
        .collect::<Result<Vec<_>, _>>()?;
    lib.reorder(api.platform(), api.context(), &ids).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Streams one multipart field into [`MediaLibrary::attach`] (the field
/// borrows its form, so a pump feeds a channel the upload reads).
pub(crate) async fn attach_field(
    lib: &MediaLibrary,
    platform: &Platform,
    ctx: &platform_core::Context,
    record: &RecordRef,
    collection: &str,
    field: axum::extract::multipart::Field<'_>,
) -> platform_core::Result<crate::MediaItem> {
    let name = field.file_name().unwrap_or("file").to_owned();
    let (tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, StorageError>>(4);
    let body: ByteStream = Box::pin(rx);
    let pump = async move {
        let (mut tx, mut field) = (tx, field);
        loop {
            let next = match field.chunk().await {
                Ok(Some(c)) => Ok(c),
                Ok(None) => break,
                Err(e) => Err(StorageError::backend("upload", e.body_text())),
            };
            let failed = next.is_err();
            if tx.send(next).await.is_err() || failed {
                break;
            }
        }
    };
    let attach = lib.attach(
        platform,
        ctx,
        record,
        collection,
        Upload::stream(name, body),
    );
    let ((), item) = tokio::join!(pump, attach);
    item
}

/// The OpenAPI description of the media routes, for the resources with
/// collections.
pub(crate) fn api_doc(collections: &[CollectionDecl]) -> ApiDoc {
    let nullable_string = serde_json::json!({ "type": "string", "nullable": true });
    let media_id = serde_json::json!([{
        "name": "id",
        "in": "path",
        "required": true,
        "description": "The file's id.",
        "schema": { "type": "string", "format": "uuid" },
    }]);
    let mut doc = ApiDoc::new()
        .tag("media", "Files attached to records")
        .schema(
            "MediaItem",
            serde_json::json!({
                "type": "object",
                "required": ["id", "collection", "file_name", "mime", "size", "position", "custom_properties", "created_at", "url", "conversions", "conversion_error"],
                "properties": {
                    "id": { "type": "string", "format": "uuid" },
                    "collection": { "type": "string" },
                    "file_name": { "type": "string" },
                    "mime": { "type": "string", "description": "Sniffed from the content, not taken from the client." },
                    "size": { "type": "integer", "format": "int64", "minimum": 0 },
                    "position": { "type": "integer", "format": "int64" },
                    "custom_properties": { "description": "The host's properties of the file." },
                    "created_at": { "type": "string", "format": "date-time" },
                    "url": { "type": "string", "nullable": true, "description": "A signed URL of the file (null when its disk cannot make one)." },
                    "conversions": {
                        "type": "object",
                        "description": "The conversions made so far, by name.",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {
                                "url": nullable_string,
                                "width": { "type": "integer", "nullable": true },
                                "height": { "type": "integer", "nullable": true },
                                "mime": nullable_string,
                            },
                        },
                    },
                    "conversion_error": { "nullable": true, "description": "Why the conversions failed, if they did." },
                },
            }),
        )
        .schema(
            "MediaItemDocument",
            serde_json::json!({ "type": "object", "required": ["data"], "properties": { "data": ApiDoc::schema_ref("MediaItem") } }),
        )
        .schema(
            "MediaItemList",
            serde_json::json!({ "type": "object", "required": ["data"], "properties": { "data": { "type": "array", "items": ApiDoc::schema_ref("MediaItem") } } }),
        )
        .path_parameters("/media/{id}", media_id)
        .delete(
            "/media/{id}",
            serde_json::json!({
                "operationId": "delete_media",
                "summary": "Remove a file",
                "description": "Removes the file and its conversions. Needs `update_<resource>` of its record (and the record inside the caller's policy; else `404`).",
                "tags": ["media"],
                "responses": ApiDoc::responses([("204", ApiDoc::empty_response("Removed."))], [401, 403, 404]),
            }),
        )
        .post(
            "/media/reorder",
            serde_json::json!({
                "operationId": "reorder_media",
                "summary": "Order a record's files",
                "description": "Puts the files named (all of one record's collection) in this order; the collection's others follow. Needs `update_<resource>` of their record.",
                "tags": ["media"],
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "required": ["ids"],
                        "properties": { "ids": {
                            "type": "array",
                            "items": { "type": "string", "format": "uuid" },
                            "minItems": 1,
                            "maxItems": 1000,
                        } },
                    } } },
                },
                "responses": ApiDoc::responses([("204", ApiDoc::empty_response("Ordered."))], [400, 401, 403, 404, 413, 415, 422]),
            }),
        );
    let mut seen: Vec<&str> = Vec::new();
    for c in collections {
        if seen.contains(&c.plural) {
            continue;
        }
        seen.push(c.plural);
        let of_resource: Vec<&CollectionDecl> = collections
            .iter()
            .filter(|d| d.plural == c.plural)
            .collect();
        let names: Vec<&str> = of_resource.iter().map(|d| d.name.as_str()).collect();
        let record_id = serde_json::json!({
            "name": "id",
            "in": "path",
            "required": true,
            "description": "The record's key.",
            "schema": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000/]+$" },
        });
        let limits: Vec<String> = of_resource
            .iter()
            .map(|d| {
                let accept = if d.spec.accept.is_empty() {
                    "any type".to_owned()
                } else {
                    d.spec.accept.join(", ")
                };
                format!("`{}`: {accept}, at most {} bytes", d.name, d.spec.max_size)
            })
            .collect();
        let (single, plural) = (c.resource, c.plural);
        let upload = format!("/{plural}/{{id}}/media/{{collection}}");
        let list = format!("/{plural}/{{id}}/media");
        doc = doc
            .path_parameters(
                &upload,
                serde_json::json!([
                    record_id,
                    {
                        "name": "collection",
                        "in": "path",
                        "required": true,
                        "description": "The collection.",
                        "schema": { "type": "string", "enum": names },
                    },
                ]),
            )
            .post(
                &upload,
                serde_json::json!({
                    "operationId": format!("upload_{single}_media"),
                    "summary": "Attach a file",
                    "description": format!(
                        "Sends the file as the multipart part `file` (other parts are ignored). Its type is sniffed from its first bytes; the collections take {}. A body declared larger than the limit is refused with `413` before it is read; a file found larger while read, empty, or of a type not accepted, with `422` (`error.fields.file`). Needs `update_{single}` (and the record inside the caller's policy; else `404`).",
                        limits.join("; ")
                    ),
                    "tags": ["media"],
                    "requestBody": {
                        "required": true,
                        "content": { "multipart/form-data": { "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": { "file": { "type": "string", "format": "binary" } },
                        } } },
                    },
                    "responses": ApiDoc::responses(
                        [("201", ApiDoc::json_response("The file, stored.", ApiDoc::schema_ref("MediaItemDocument")))],
                        [401, 403, 404, 413, 422],
                    ),
                }),
            )
            .path_parameters(&list, serde_json::json!([record_id]))
            .get(
                &list,
                serde_json::json!({
                    "operationId": format!("list_{single}_media"),
                    "summary": "A record's files",
                    "description": format!("By collection, then position, with signed URLs. Needs `view_{single}` (and the record inside the caller's policy; else `404`)."),
                    "tags": ["media"],
                    "parameters": [{
                        "name": "collection",
                        "in": "query",
                        "required": false,
                        "description": "Only this collection's files.",
                        "schema": { "type": "string", "enum": names },
                    }],
                    "responses": ApiDoc::responses(
                        [("200", ApiDoc::json_response("The files.", ApiDoc::schema_ref("MediaItemList")))],
                        [400, 401, 403, 404, 422],
                    ),
                }),
            );
    }
    doc
}
