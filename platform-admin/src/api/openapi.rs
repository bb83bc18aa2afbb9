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
use platform_core::query::{DEFAULT_PAGE_SIZE, MAX_IN_VALUES, MAX_PAGE_SIZE, MAX_SEARCH_LEN};
use platform_core::resource::{FieldMeta, Registry, ResourceMeta};
use platform_core::value::FieldType;
use serde_json::{Map, Value, json};

use super::ApiConfig;
use super::include::{self, EMBEDDED_KEY, MAX_INCLUDE_LEN};
use platform_core::repo::HIDDEN_KEY;

/// Names of the shared component schemas (resource schemas must not clash).
const SHARED_SCHEMAS: [&str; 9] = [
    "ApiError",
    "FieldError",
    "Count",
    "ListMeta",
    "ListLinks",
    "AuditEntry",
    "AuditEntryBody",
    "AuditList",
    "AuditMeta",
];

/// The error responses every operation declares.
const ERROR_RESPONSES: [(&str, &str); 8] = [
    ("400", "BadRequest"),
    ("401", "Unauthorized"),
    ("403", "Forbidden"),
    ("404", "NotFound"),
    ("409", "Conflict"),
    ("422", "ValidationFailed"),
    ("500", "InternalError"),
    ("503", "Unavailable"),
];

fn reference(kind: &str, name: &str) -> Value {
    json!({ "$ref": format!("#/components/{kind}/{name}") })
}

/// `line_item` -> `LineItem`.
fn pascal(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn schema_name(meta: &ResourceMeta) -> String {
    let n = pascal(meta.name());
    let clashes = ["", "Create", "Update", "Document", "Written", "List"]
        .iter()
        .any(|suffix| SHARED_SCHEMAS.contains(&format!("{n}{suffix}").as_str()));
    if clashes { format!("{n}Resource") } else { n }
}

/// The plain type of a field's values (no nullability, no masking).
fn type_schema(f: &FieldMeta, with_length: bool) -> Map<String, Value> {
    let v = match f.ty() {
        FieldType::Bool => json!({ "type": "boolean" }),
        FieldType::I32 => json!({
            "type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX
        }),
        FieldType::I64 => json!({
            "type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX
        }),
        FieldType::F64 => json!({ "type": "number", "format": "double" }),
        FieldType::String | FieldType::Text => {
            let mut s = json!({ "type": "string" });
            if with_length && let Some(max) = f.max_len() {
                s["maxLength"] = json!(max);
            }
            s
        }
        FieldType::Date => json!({ "type": "string", "format": "date" }),
        FieldType::DateTime => json!({ "type": "string", "format": "date-time" }),
        FieldType::Uuid => json!({ "type": "string", "format": "uuid" }),
        _ => json!({ "description": "Any JSON value." }),
    };
    let Value::Object(mut m) = v else {
        return Map::new();
    };
    if !f.choice_list().is_empty() {
        m.remove("maxLength");
        m.insert("enum".into(), json!(f.choice_list()));
    }
    m
}

fn describe(f: &FieldMeta, m: &mut Map<String, Value>, extra: Option<&str>) {
    if f.label_text() != f.name() {
        m.insert("title".into(), json!(f.label_text()));
    }
    let mut notes: Vec<String> = Vec::new();
    if let Some(target) = f.belongs_to_meta() {
        notes.push(format!("The id of a {}.", target.label_text()));
    }
    if f.is_money() {
        notes.push("An amount in cents.".into());
    }
    if f.is_unique() {
        notes.push("Unique.".into());
    }
    if let Some(e) = extra {
        notes.push(e.to_owned());
    }
    if !notes.is_empty() {
        m.insert("description".into(), json!(notes.join(" ")));
    }
}

fn nullable(m: &mut Map<String, Value>) {
    m.insert("nullable".into(), json!(true));
    if let Some(Value::Array(choices)) = m.get_mut("enum") {
        choices.push(Value::Null);
    }
}

fn is_writable(f: &FieldMeta) -> bool {
    !(f.is_hidden() || f.is_read_only() || f.is_primary_key() || f.is_managed())
}

/// A field as the API shows it.
fn output_field(f: &FieldMeta) -> Value {
    let mut m;
    if f.is_pii() {
        m = Map::new();
        if f.ty().is_string() {
            m.insert("type".into(), json!("string"));
        }
        describe(
            f,
            &mut m,
            Some("Personal data: masked (`a***@example.com`) unless the caller has `view_pii`."),
        );
        if f.is_nullable() && f.ty().is_string() {
            nullable(&mut m);
        }
    } else {
        m = type_schema(f, true);
        if f.is_encrypted() {
            describe(
                f,
                &mut m,
                Some(
                    "Encrypted at rest: left out, and named in `_hidden`, unless the caller has `view_encrypted`.",
                ),
            );
            if f.is_nullable() && m.contains_key("type") {
                nullable(&mut m);
            }
        } else {
            describe(f, &mut m, None);
            if f.is_nullable() && m.contains_key("type") {
                nullable(&mut m);
            }
        }
    }
    if f.is_primary_key() || f.is_managed() || f.is_read_only() {
        m.insert("readOnly".into(), json!(true));
    }
    Value::Object(m)
}

/// A field as a client writes it.
fn input_field(f: &FieldMeta) -> Value {
    // The platform refuses NUL characters (no database stores them alike).
    let Value::Object(mut m) = no_nul(Value::Object(type_schema(f, true))) else {
        return Value::Null;
    };
    describe(f, &mut m, None);
    if f.is_nullable() && m.contains_key("type") {
        nullable(&mut m);
    }
    Value::Object(m)
}

fn resource_schemas(meta: &'static ResourceMeta, schemas: &mut Map<String, Value>) {
    let name = schema_name(meta);
    let visible: Vec<&FieldMeta> = meta
        .field_list()
        .iter()
        .filter(|f| !f.is_hidden())
        .collect();
    let writable: Vec<&FieldMeta> = visible.iter().copied().filter(|f| is_writable(f)).collect();

    let mut props = Map::new();
    for f in &visible {
        props.insert(f.name().into(), output_field(f));
    }
    let withheld: Vec<&str> = visible
        .iter()
        .filter(|f| f.is_encrypted())
        .map(|f| f.name())
        .collect();
    if !withheld.is_empty() {
        props.insert(
            HIDDEN_KEY.into(),
            json!({
                "type": "array",
                "description": "The encrypted fields left out because the caller may not see them (no `view_encrypted`); present only when it names one.",
                "items": { "type": "string", "enum": withheld },
                "minItems": 1,
                "uniqueItems": true,
            }),
        );
    }
    let rels = include::relations(meta);
    if !rels.is_empty() {
        let mut embedded = Map::new();
        for r in &rels {
            embedded.insert(
                r.name.into(),
                json!({
                    "nullable": true,
                    "description": format!(
                        "The {} `{}` refers to (with `include={}`): null when `{}` is null, left out when the caller may not see it.",
                        r.target.label_text(), r.field.name(), r.name, r.field.name()
                    ),
                    "allOf": [reference("schemas", &schema_name(r.target))],
                }),
            );
        }
        props.insert(
            EMBEDDED_KEY.into(),
            json!({
                "type": "object",
                "description": "The related records asked for with `include` (lists and show only).",
                "properties": embedded,
                "additionalProperties": false,
            }),
        );
    }
    let mut record = json!({ "type": "object", "title": meta.label_text(), "properties": props });
    // Encrypted fields are left out for callers without `view_encrypted`.
    let required: Vec<&str> = visible
        .iter()
        .filter(|f| !f.is_encrypted())
        .map(|f| f.name())
        .collect();
    if !required.is_empty() {
        record["required"] = json!(required);
    }
    schemas.insert(name.clone(), record);

    let mut input = Map::new();
    for f in &writable {
        input.insert(f.name().into(), input_field(f));
    }
    let mut create = json!({
        "type": "object",
        "description": format!("A new {}: every required field, no others.", meta.label_text()),
        "properties": input.clone(),
        "additionalProperties": false,
    });
    let required: Vec<&str> = writable
        .iter()
        .filter(|f| !f.is_nullable())
        .map(|f| f.name())
        .collect();
    if !required.is_empty() {
        create["required"] = json!(required);
    }
    schemas.insert(format!("{name}Create"), create);
    schemas.insert(
        format!("{name}Update"),
        json!({
            "type": "object",
            "description": format!("Changes to a {}: only the fields sent are written.", meta.label_text()),
            "properties": input,
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        format!("{name}Document"),
        json!({
            "type": "object",
            "required": ["data"],
            "properties": { "data": reference("schemas", &name) },
        }),
    );
    // What a write answers: the record, or its key alone for a caller
    // without `view_` (see api/resource.rs, `written`).
    let pk = meta.primary_key();
    schemas.insert(
        format!("{name}Written"),
        json!({
            "type": "object",
            "required": ["data"],
            "properties": { "data": { "anyOf": [
                reference("schemas", &name),
                {
                    "type": "object",
                    "description": format!("The key alone, for a caller without `view_{}`.", meta.name()),
                    "required": [pk.name()],
                    "properties": { pk.name(): output_field(pk) },
                    "additionalProperties": false,
                },
            ] } },
        }),
    );
    schemas.insert(
        format!("{name}List"),
        json!({
            "type": "object",
            "required": ["data", "meta", "links"],
            "properties": {
                "data": { "type": "array", "items": reference("schemas", &name) },
                "meta": reference("schemas", "ListMeta"),
                "links": reference("schemas", "ListLinks"),
            },
        }),
    );
}

/// The pattern of text the platform takes: anything but NUL characters.
const NO_NUL: &str = "^[^\\u0000]*$";

/// Adds [`NO_NUL`] to a free-text string schema.
fn no_nul(mut schema: Value) -> Value {
    let free_text = schema["type"] == "string"
        && schema.get("enum").is_none()
        && schema.get("format").is_none();
    if free_text {
        schema["pattern"] = json!(NO_NUL);
    }
    schema
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": schema,
    })
}

/// The parameters of a list of `meta`.
fn list_params(meta: &'static ResourceMeta) -> Vec<Value> {
    let mut out = Vec::new();
    if !meta.search_fields().is_empty() {
        out.push(query_param(
            "search",
            &format!(
                "Free text looked for in: {}.",
                meta.search_fields().join(", ")
            ),
            no_nul(json!({ "type": "string", "maxLength": MAX_SEARCH_LEN })),
        ));
    }
    let mut sorts = Vec::new();
    let pk = meta.primary_key();
    let sortable = std::iter::once(pk).chain(
        meta.field_list()
            .iter()
            .filter(|f| f.is_sortable() && !f.is_primary_key() && !f.is_hidden()),
    );
    for f in sortable {
        sorts.push(f.name().to_owned());
        sorts.push(format!("-{}", f.name()));
    }
    out.push(query_param(
        "sort",
        &format!(
            "Sort field, `-` first for descending (default `{}`).",
            pk.name()
        ),
        json!({ "type": "string", "enum": sorts }),
    ));
    let filterable = meta.field_list().iter().filter(|f| {
        (f.is_filter() || f.is_primary_key())
            && !f.is_hidden()
            && !f.is_encrypted()
            && f.ty() != FieldType::Json
    });
    for f in filterable {
        let value = no_nul(Value::Object(type_schema(f, false)));
        let n = f.name();
        out.push(query_param(
            &format!("filter[{n}]"),
            &format!("Only records whose `{n}` equals this."),
            value.clone(),
        ));
        let mut within = query_param(
            &format!("filter[{n}][in]"),
            &format!("Only records whose `{n}` is one of these (comma-separated)."),
            json!({ "type": "array", "items": value, "minItems": 1, "maxItems": MAX_IN_VALUES }),
        );
        within["style"] = json!("form");
        within["explode"] = json!(false);
        out.push(within);
        if f.ty().is_ordered() {
            for (op, what) in [
                ("gt", "greater than"),
                ("gte", "at least"),
                ("lt", "less than"),
                ("lte", "at most"),
            ] {
                out.push(query_param(
                    &format!("filter[{n}][{op}]"),
                    &format!("Only records whose `{n}` is {what} this."),
                    value.clone(),
                ));
            }
        }
        if f.is_nullable() {
            out.push(query_param(
                &format!("filter[{n}][null]"),
                &format!("`true`: only records without `{n}`; `false`: only records with one."),
                json!({ "type": "boolean" }),
            ));
        }
    }
    out.push(query_param(
        "page[size]",
        "Records per page.",
        json!({ "type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE }),
    ));
    out.push(query_param(
        "page[after]",
        "Keyset paging: the `meta.next_cursor` of the previous page (made for the same sort).",
        no_nul(json!({ "type": "string", "maxLength": 1024 })),
    ));
    out.push(query_param(
        "page[number]",
        "Offset paging: the page number, from 1 (not with `page[after]`).",
        json!({ "type": "integer", "minimum": 1, "maximum": 1_000_000 }),
    ));
    if meta.is_soft_delete() {
        out.push(query_param(
            "trashed",
            "Soft-deleted records: left out (`without`), included (`with`) or alone (`only`).",
            json!({ "type": "string", "enum": ["without", "with", "only"], "default": "without" }),
        ));
    }
    out.push(query_param(
        "count",
        "Whether to count the matching records (`meta.total`).",
        json!({ "type": "boolean", "default": false }),
    ));
    out.extend(include_param(meta, "view_any_"));
    out
}

/// The `include` parameter of `meta`'s list and show, when it has
/// relations to include; `needs` is the permission prefix on the target.
fn include_param(meta: &'static ResourceMeta, needs: &str) -> Option<Value> {
    let rels = include::relations(meta);
    if rels.is_empty() {
        return None;
    }
    let names: Vec<&str> = rels.iter().map(|r| r.name).collect();
    let targets: Vec<String> = rels
        .iter()
        .map(|r| format!("`{needs}{}`", r.target.name()))
        .collect();
    let mut p = query_param(
        "include",
        &format!(
            "Related records to embed in each record's `_embedded` (comma-separated, at most {MAX_INCLUDE_LEN} characters): one read per relation per page, as the caller. Needs {} on the related resource (else 403).",
            targets.join(" / ")
        ),
        json!({ "type": "array", "items": { "type": "string", "enum": names }, "minItems": 1 }),
    );
    p["style"] = json!("form");
    p["explode"] = json!(false);
    Some(p)
}

fn id_param(meta: &ResourceMeta) -> Value {
    let pk = meta.primary_key();
    json!({
        "name": "id",
        "in": "path",
        "required": true,
        "description": format!("The {}'s `{}`.", meta.label_text(), pk.name()),
        "schema": Value::Object(type_schema(pk, false)),
    })
}

fn responses(ok: (&str, Value), body: bool) -> Value {
    let mut m = Map::new();
    m.insert(ok.0.to_owned(), ok.1);
    for (status, name) in ERROR_RESPONSES {
        m.insert(status.to_owned(), reference("responses", name));
    }
    m.insert("414".into(), reference("responses", "UriTooLong"));
    if body {
        m.insert("413".into(), reference("responses", "PayloadTooLarge"));
        m.insert("415".into(), reference("responses", "UnsupportedMediaType"));
    }
    Value::Object(m)
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn request_id_header() -> Value {
    json!({ "X-Request-Id": reference("headers", "X-Request-Id") })
}

fn ok_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "headers": request_id_header(),
        "content": json_content(reference("schemas", schema)),
    })
}

fn resource_paths(meta: &'static ResourceMeta, paths: &mut Map<String, Value>) {
    let name = schema_name(meta);
    let (single, plural) = (meta.name(), meta.plural());
    let (label, labels) = (meta.label_text(), meta.plural_label());
    let tags = json!([plural]);
    let body = |schema: String| json!({ "required": true, "content": json_content(reference("schemas", &schema)) });
    let links = json!({
        "Show": { "operationId": format!("show_{single}"), "parameters": { "id": "$response.body#/data/id" } },
        "Update": { "operationId": format!("update_{single}"), "parameters": { "id": "$response.body#/data/id" } },
        "Delete": { "operationId": format!("delete_{single}"), "parameters": { "id": "$response.body#/data/id" } },
    });
    let mut created = ok_response(
        &format!("The {label}, as stored (its key alone without `view_{single}`)."),
        &format!("{name}Written"),
    );
    created["headers"]["Location"] = json!({
        "description": "The path of the new record.",
        "required": true,
        "schema": { "type": "string" },
    });
    created["links"] = links;

    paths.insert(
        format!("/{plural}"),
        json!({
            "get": {
                "operationId": format!("list_{plural}"),
                "summary": format!("List {labels}"),
                "description": format!("Needs `view_any_{single}`."),
                "tags": tags,
                "parameters": list_params(meta),
                "responses": responses(("200", ok_response(&format!("A page of {labels}."), &format!("{name}List"))), false),
            },
            "post": {
                "operationId": format!("create_{single}"),
                "summary": format!("Create a {label}"),
                "description": format!("Needs `create_{single}`."),
                "tags": tags,
                "requestBody": body(format!("{name}Create")),
                "responses": responses(("201", created), true),
            },
        }),
    );

    let shown = || ok_response(&format!("The {label}."), &format!("{name}Document"));
    let written = || {
        ok_response(
            &format!("The {label}, as stored (its key alone without `view_{single}`)."),
            &format!("{name}Written"),
        )
    };
    let update = |id: &str, summary: String| {
        json!({
            "operationId": id,
            "summary": summary,
            "description": format!("Writes only the fields sent (`PUT` and `PATCH` alike). Needs `update_{single}`."),
            "tags": tags,
            "requestBody": body(format!("{name}Update")),
            "responses": responses(("200", written()), true),
        })
    };
    let mut deleted = json!({ "description": "Deleted.", "headers": request_id_header() });
    if meta.is_soft_delete() {
        deleted["links"] = json!({
            "Restore": { "operationId": format!("restore_{single}"), "parameters": { "id": "$request.path.id" } },
        });
    }
    let delete_note = if meta.is_soft_delete() {
        format!(
            "Soft-deletes (restore with `POST /{plural}/{{id}}/restore`); `force=true` deletes for good. Needs `delete_{single}` (`force_delete_{single}` with `force`)."
        )
    } else {
        format!("Deletes for good. Needs `delete_{single}` (`force_delete_{single}` with `force`).")
    };
    paths.insert(
        format!("/{plural}/{{id}}"),
        json!({
            "parameters": [id_param(meta)],
            "get": {
                "operationId": format!("show_{single}"),
                "summary": format!("Show a {label}"),
                "description": format!("Needs `view_{single}`."),
                "tags": tags,
                "parameters": include_param(meta, "view_").into_iter().collect::<Vec<_>>(),
                "responses": responses(("200", shown()), false),
            },
            "patch": update(&format!("update_{single}"), format!("Update a {label}")),
            "put": update(&format!("replace_{single}"), format!("Update a {label} (same as PATCH)")),
            "delete": {
                "operationId": format!("delete_{single}"),
                "summary": format!("Delete a {label}"),
                "description": delete_note,
                "tags": tags,
                "parameters": [query_param("force", "Delete for good.", json!({ "type": "boolean", "default": false }))],
                "responses": responses(("204", deleted), false),
            },
        }),
    );
    if meta.is_soft_delete() {
        paths.insert(
            format!("/{plural}/{{id}}/restore"),
            json!({
                "parameters": [id_param(meta)],
                "post": {
                    "operationId": format!("restore_{single}"),
                    "summary": format!("Restore a deleted {label}"),
                    "description": format!("Needs `restore_{single}`."),
                    "tags": tags,
                    "responses": responses(("200", written()), false),
                },
            }),
        );
    }
}

fn audit_path(resources: &[&ResourceMeta]) -> Value {
    let names: Vec<&str> = resources.iter().map(|m| m.plural()).collect();
    let mut resource = query_param(
        "resource",
        "The resource (plural name).",
        json!({ "type": "string", "enum": names }),
    );
    resource["required"] = json!(true);
    json!({
        "get": {
            "operationId": "list_audits",
            "summary": "Audit entries of a record or a resource",
            "description": "Newest first. With `record`: that record's entries since it was created (needs `view_<resource>`); without: every entry of the resource (needs `view_any_<resource>` and `view_audit`). Values longer than 1,000 characters are cut (`truncated` names the fields, `href` is the whole entry) and a page stops at 256 KiB of values. Personal data is masked without `view_pii`; encrypted fields are stored redacted; `ip` and `user_agent` are null without `view_audit`.",
            "tags": ["audits"],
            "parameters": [
                resource,
                query_param("record", "A record id.", no_nul(json!({ "type": "string", "minLength": 1, "maxLength": 64 }))),
                query_param("before", "Keyset paging: entries older than this entry id (`meta.next_before`).", json!({ "type": "integer", "format": "int64", "minimum": 1, "maximum": i64::MAX })),
                query_param("page[size]", "Entries per page.", json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 50 })),
                query_param("limit", "The same as `page[size]` (the older name, still taken; when both are sent they must agree).", json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 50 })),
            ],
            "responses": responses(("200", ok_response("Audit entries.", "AuditList")), false),
        }
    })
}

fn audit_entry_path() -> Value {
    json!({
        "get": {
            "operationId": "show_audit",
            "summary": "One audit entry, whole",
            "description": "Under the rules of its record's entries (`view_<resource>`, the record policy).",
            "tags": ["audits"],
            "parameters": [{
                "name": "id",
                "in": "path",
                "required": true,
                "description": "The entry's id.",
                "schema": { "type": "integer", "format": "int64", "minimum": 1 },
            }],
            "responses": responses(("200", ok_response("The entry.", "AuditEntryBody")), false),
        }
    })
}

fn shared_schemas(schemas: &mut Map<String, Value>) {
    let nullable_string = json!({ "type": "string", "nullable": true });
    let values = json!({ "type": "object", "additionalProperties": true, "description": "Field name to value (changed fields only)." });
    let entries = [
        (
            "FieldError",
            json!({
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string", "description": "`required`, `type`, `too_long`, `choice`, `email`, `unique`, `exists`, `unknown_field`, `read_only`, `forbidden`, `unknown_parameter`, `unknown_relation`, `invalid`." },
                    "message": { "type": "string" },
                },
            }),
        ),
        (
            "ApiError",
            json!({
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": { "type": "string", "description": "A stable machine code: `malformed_query`, `malformed_json`, `unsupported`, `unauthenticated`, `invalid_token`, `permission_denied`, `not_found`, `method_not_allowed`, `conflict`, `payload_too_large`, `unsupported_media_type`, `validation_failed`, `internal_error`, `unavailable`." },
                            "message": { "type": "string", "description": "A human message." },
                            "fields": {
                                "type": "object",
                                "description": "Validation messages per field or parameter.",
                                "additionalProperties": { "type": "array", "items": reference("schemas", "FieldError") },
                            },
                        },
                    },
                },
            }),
        ),
        (
            "Count",
            json!({
                "type": "object",
                "required": ["kind", "value"],
                "properties": {
                    "kind": { "type": "string", "enum": ["exact", "estimated", "at_least"] },
                    "value": { "type": "integer", "format": "int64", "minimum": 0 },
                },
            }),
        ),
        (
            "ListMeta",
            json!({
                "type": "object",
                "required": ["has_more", "next_cursor"],
                "properties": {
                    "has_more": { "type": "boolean" },
                    "next_cursor": nullable_string,
                    "total": reference("schemas", "Count"),
                },
            }),
        ),
        (
            "ListLinks",
            json!({
                "type": "object",
                "required": ["next"],
                "properties": {
                    "next": { "type": "string", "nullable": true, "description": "Path and query of the next page, or null on the last." },
                },
            }),
        ),
        (
            "AuditEntry",
            json!({
                "type": "object",
                "required": ["id", "event", "resource", "record_id", "old_values", "new_values", "actor", "ip", "user_agent", "url", "request_id", "tags", "created_at", "seq", "hash", "truncated", "href"],
                "properties": {
                    "id": { "type": "integer", "format": "int64" },
                    "event": { "type": "string", "description": "`created`, `updated`, `deleted`, `restored`, `force_deleted`, ..." },
                    "resource": { "type": "string" },
                    "record_id": { "type": "string" },
                    "old_values": values,
                    "new_values": values,
                    "actor": {
                        "type": "object",
                        "required": ["type", "id", "label"],
                        "properties": {
                            "type": { "type": "string", "description": "`user`, `token`, `job`, `console`, `system` or `anonymous`." },
                            "id": { "type": "integer", "format": "int64", "nullable": true },
                            "label": nullable_string,
                        },
                    },
                    "ip": nullable_string,
                    "user_agent": nullable_string,
                    "url": nullable_string,
                    "request_id": nullable_string,
                    "tags": { "type": "array", "items": { "type": "string" } },
                    "created_at": { "type": "string", "format": "date-time" },
                    "seq": { "type": "integer", "format": "int64", "nullable": true, "description": "Position in the hash chain (null until sealed)." },
                    "hash": nullable_string,
                    "truncated": { "type": "array", "items": { "type": "string" }, "description": "Fields whose values this listing cut to 1,000 characters." },
                    "href": { "type": "string", "description": "Path of the whole entry." },
                },
            }),
        ),
        (
            "AuditEntryBody",
            json!({
                "type": "object",
                "required": ["data"],
                "properties": { "data": reference("schemas", "AuditEntry") },
            }),
        ),
        (
            "AuditMeta",
            json!({
                "type": "object",
                "required": ["has_more", "next_before"],
                "properties": {
                    "has_more": { "type": "boolean" },
                    "next_before": { "type": "integer", "format": "int64", "nullable": true },
                },
            }),
        ),
        (
            "AuditList",
            json!({
                "type": "object",
                "required": ["data", "meta", "links"],
                "properties": {
                    "data": { "type": "array", "items": reference("schemas", "AuditEntry") },
                    "meta": reference("schemas", "AuditMeta"),
                    "links": reference("schemas", "ListLinks"),
                },
            }),
        ),
    ];
    for (k, v) in entries {
        schemas.insert(k.to_owned(), v);
    }
}

fn error_responses() -> Value {
    let error = |description: &str| {
        json!({
            "description": description,
            "headers": request_id_header(),
            "content": json_content(reference("schemas", "ApiError")),
        })
    };
    let mut unauthorized = error(
        "No credentials (`unauthenticated`) or a malformed, unknown, expired or revoked token (`invalid_token`).",
    );
    unauthorized["headers"]["WWW-Authenticate"] =
        json!({ "required": true, "schema": { "type": "string" } });
    let mut unavailable = error("A back end is unavailable (`unavailable`); nothing was written.");
    unavailable["headers"]["Retry-After"] = json!({
        "required": true,
        "description": "Seconds to wait before retrying.",
        "schema": { "type": "integer" },
    });
    json!({
        "BadRequest": error("Malformed query string (`malformed_query`) or JSON body (`malformed_json`), or an operation this resource does not support (`unsupported`)."),
        "Unauthorized": unauthorized,
        "Forbidden": error("The caller lacks the permission (`permission_denied`)."),
        "NotFound": error("No such record, resource or route (`not_found`)."),
        "Conflict": error("The change conflicts with other data, such as a record still referenced (`conflict`)."),
        "UriTooLong": { "description": "The URL is longer than the HTTP server reads (64 KiB): answered by the server before the API sees the request, without a body." },
        "PayloadTooLarge": error("The body is larger than the limit, 1 MiB by default (`payload_too_large`)."),
        "UnsupportedMediaType": error("The body is not sent as `application/json` (`unsupported_media_type`)."),
        "ValidationFailed": error("Invalid fields or parameters (`validation_failed`), with messages per field in `error.fields`."),
        "InternalError": error("An internal error (`internal_error`); the detail is logged, never sent."),
        "Unavailable": unavailable,
    })
}

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
