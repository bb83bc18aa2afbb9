//! The OpenAPI 3.0.3 document of the JSON API, generated from the registry.
//!
//! Every resource the API serves gets a path item per operation, a response
//! schema (`Invoice`), input schemas for create (`InvoiceCreate`, with the
//! required fields) and update (`InvoiceUpdate`, all optional; both with
//! `additionalProperties: false`), its list parameters (`filter[...]` per
//! filterable field, `sort` as an enum) and every error response. The
//! capabilities' API routes are described by the
//! [`ApiDoc`]s they contribute (export, import,
//! media, webhooks, the queue's figures...): present exactly when the
//! capability is added. The document is built once per process for each
//! registry, set of capabilities and mount point, and served from memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use platform_core::Platform;
use platform_core::capability::{ApiDoc, ResourceDoc};
use platform_core::resource::{Registry, ResourceMeta};
use serde_json::{Map, Value, json};

use super::ApiConfig;

mod paths;
mod schemas;

use paths::*;
use schemas::*;

/// The OpenAPI document of the resources of `registry` that the API
/// serves, for an API mounted at `server_url` (`/api`), without any
/// capability's routes (see [`document_with`]).
pub fn document(registry: &Registry, server_url: &str, title: &str) -> Value {
    document_with(registry, &[], server_url, title)
}

/// Inserts `item`'s operations into the path item of `path` (an operation
/// described twice keeps the first description).
fn merge_path(paths: &mut Map<String, Value>, path: String, item: Value) {
    let Value::Object(item) = item else {
        return;
    };
    match paths.get_mut(&path) {
        Some(Value::Object(existing)) => {
            for (k, v) in item {
                existing.entry(k).or_insert(v);
            }
        }
        _ => {
            paths.insert(path, Value::Object(item));
        }
    }
}

/// The OpenAPI document of the resources of `registry` that the API
/// serves and of the capabilities' routes described by `docs` (a
/// platform's [`ApiDoc`] contributions), for an API mounted at
/// `server_url` (`/api`).
pub fn document_with(
    registry: &Registry,
    docs: &[Arc<ApiDoc>],
    server_url: &str,
    title: &str,
) -> Value {
    let resources: Vec<&'static ResourceMeta> = registry
        .entries()
        .map(|e| e.meta())
        .filter(|m| m.in_api() && m.plural() != "audits")
        .collect();
    let mut paths = Map::new();
    let mut schemas = Map::new();
    shared_schemas(&mut schemas);
    for m in &resources {
        resource_schemas(m, &mut schemas);
        resource_paths(m, &mut paths);
    }
    let mut extra_tags: Vec<Value> = Vec::new();
    for doc in docs {
        for (name, schema) in doc.schemas() {
            schemas
                .entry(name.clone())
                .or_insert_with(|| schema.clone());
        }
        for (path, item) in doc.paths() {
            merge_path(&mut paths, path.clone(), item.clone());
        }
        for m in &resources {
            let list = list_params(m);
            let schema = schema_name(m);
            for (path, item) in doc.resource_paths(&ResourceDoc::new(m, &list, &schema)) {
                merge_path(&mut paths, path, item);
            }
        }
        for (name, description) in doc.tags() {
            if !extra_tags.iter().any(|t| t["name"] == name.as_str()) {
                extra_tags.push(json!({ "name": name, "description": description }));
            }
        }
    }
    paths.insert("/audits".into(), audit_path(&resources));
    paths.insert("/audits/{id}".into(), audit_entry_path());
    paths.insert(
        "/openapi.json".into(),
        json!({
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["meta"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "headers": request_id_header(),
                        "content": json_content(json!({ "type": "object" })),
                    },
                },
            },
        }),
    );
    let mut tags: Vec<Value> = resources
        .iter()
        .map(|m| json!({ "name": m.plural(), "description": m.plural_label() }))
        .collect();
    tags.push(json!({ "name": "audits", "description": "The audit trail" }));
    tags.extend(extra_tags);
    tags.push(json!({ "name": "meta", "description": "About the API" }));
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Send `Authorization: Bearer <token>`. Errors are `{\"error\": {\"code\", \"message\", \"fields\"}}`. Every response carries `X-Request-Id` (an incoming safe `X-Request-Id` of up to 64 characters is kept).",
        },
        "servers": [{ "url": server_url }],
        "security": [{ "bearerAuth": [] }],
        "tags": tags,
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": { "type": "http", "scheme": "bearer", "description": "An API token (`plt_...`)." },
            },
            "headers": {
                "X-Request-Id": {
                    "description": "The request id (the client's, when safe, else a new UUID v7).",
                    "required": true,
                    "schema": { "type": "string", "maxLength": 64 },
                },
            },
            "schemas": schemas,
            "responses": error_responses(),
        },
    })
}

type CacheKey = (Vec<usize>, Vec<usize>, String, String);

/// A built document, with the descriptions it was built from: holding
/// them keeps their addresses (part of the key) from being reused by
/// another platform's.
type Cached = (Bytes, Vec<Arc<ApiDoc>>);

/// Built documents, by registry (its metadata addresses), capability
/// descriptions (their addresses), mount point and title.
static CACHE: OnceLock<Mutex<HashMap<CacheKey, Cached>>> = OnceLock::new();

fn cached(platform: &Platform, server_url: &str, title: &str) -> Bytes {
    let registry = platform.registry();
    let docs = platform.contributions::<ApiDoc>();
    let key: CacheKey = (
        registry
            .entries()
            .map(|e| std::ptr::from_ref(e.meta()) as usize)
            .collect(),
        docs.iter().map(|d| Arc::as_ptr(d) as usize).collect(),
        server_url.to_owned(),
        title.to_owned(),
    );
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(b) = cache
        .lock()
        .ok()
        .and_then(|c| c.get(&key).map(|c| c.0.clone()))
    {
        return b;
    }
    let bytes = Bytes::from(
        serde_json::to_vec(&document_with(registry, &docs, server_url, title)).unwrap_or_default(),
    );
    if let Ok(mut c) = cache.lock() {
        c.insert(key, (bytes.clone(), docs));
    }
    bytes
}

/// `GET /openapi.json`.
pub(super) async fn serve(
    State(platform): State<Platform>,
    OriginalUri(uri): OriginalUri,
    config: Option<Extension<Arc<ApiConfig>>>,
) -> Response {
    let prefix = uri
        .path()
        .strip_suffix("/openapi.json")
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let title = config
        .as_ref()
        .map_or("Platform API", |Extension(c)| c.title.as_str());
    let bytes = cached(&platform, prefix, title);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(pascal("line_item"), "LineItem");
        assert_eq!(pascal("invoice"), "Invoice");
    }
}
