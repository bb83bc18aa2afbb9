//! Component schemas: each resource's output and input schemas from its
//! fields, the shared ones (errors, lists, the audit trail) and the error
//! responses every operation declares.

use platform_core::repo::HIDDEN_KEY;
use platform_core::resource::{FieldMeta, ResourceMeta};
use platform_core::value::FieldType;
use serde_json::{Map, Value, json};

use super::super::include::{self, EMBEDDED_KEY};
use super::paths::*;

/// Names of the shared component schemas (resource schemas must not clash).
pub(super) const SHARED_SCHEMAS: [&str; 9] = [
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
pub(super) const ERROR_RESPONSES: [(&str, &str); 8] = [
    ("400", "BadRequest"),
    ("401", "Unauthorized"),
    ("403", "Forbidden"),
    ("404", "NotFound"),
    ("409", "Conflict"),
    ("422", "ValidationFailed"),
    ("500", "InternalError"),
    ("503", "Unavailable"),
];

pub(super) fn reference(kind: &str, name: &str) -> Value {
    json!({ "$ref": format!("#/components/{kind}/{name}") })
}

/// `line_item` -> `LineItem`.
pub(super) fn pascal(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

pub(super) fn schema_name(meta: &ResourceMeta) -> String {
    let n = pascal(meta.name());
    let clashes = ["", "Create", "Update", "Document", "Written", "List"]
        .iter()
        .any(|suffix| SHARED_SCHEMAS.contains(&format!("{n}{suffix}").as_str()));
    if clashes { format!("{n}Resource") } else { n }
}

/// The plain type of a field's values (no nullability, no masking).
pub(super) fn type_schema(f: &FieldMeta, with_length: bool) -> Map<String, Value> {
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

pub(super) fn describe(f: &FieldMeta, m: &mut Map<String, Value>, extra: Option<&str>) {
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

pub(super) fn nullable(m: &mut Map<String, Value>) {
    m.insert("nullable".into(), json!(true));
    if let Some(Value::Array(choices)) = m.get_mut("enum") {
        choices.push(Value::Null);
    }
}

pub(super) fn is_writable(f: &FieldMeta) -> bool {
    !(f.is_hidden() || f.is_read_only() || f.is_primary_key() || f.is_managed())
}

/// A field as the API shows it.
pub(super) fn output_field(f: &FieldMeta) -> Value {
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
pub(super) fn input_field(f: &FieldMeta) -> Value {
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

pub(super) fn resource_schemas(meta: &'static ResourceMeta, schemas: &mut Map<String, Value>) {
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

pub(super) fn shared_schemas(schemas: &mut Map<String, Value>) {
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

pub(super) fn error_responses() -> Value {
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
