//! Path items: each resource's operations with their parameters (list
//! filters, sort, include, ids) and responses, and the audit trail's.

use platform_core::query::{DEFAULT_PAGE_SIZE, MAX_IN_VALUES, MAX_PAGE_SIZE, MAX_SEARCH_LEN};
use platform_core::resource::ResourceMeta;
use platform_core::value::FieldType;
use serde_json::{Map, Value, json};

use super::super::include::{self, MAX_INCLUDE_LEN};
use super::schemas::*;

/// The pattern of text the platform takes: anything but NUL characters.
pub(super) const NO_NUL: &str = "^[^\\u0000]*$";

/// Adds [`NO_NUL`] to a free-text string schema.
pub(super) fn no_nul(mut schema: Value) -> Value {
    let free_text = schema["type"] == "string"
        && schema.get("enum").is_none()
        && schema.get("format").is_none();
    if free_text {
        schema["pattern"] = json!(NO_NUL);
    }
    schema
}

pub(super) fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": schema,
    })
}

/// The parameters of a list of `meta`.
pub(super) fn list_params(meta: &'static ResourceMeta) -> Vec<Value> {
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
pub(super) fn include_param(meta: &'static ResourceMeta, needs: &str) -> Option<Value> {
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

pub(super) fn id_param(meta: &ResourceMeta) -> Value {
    let pk = meta.primary_key();
    json!({
        "name": "id",
        "in": "path",
        "required": true,
        "description": format!("The {}'s `{}`.", meta.label_text(), pk.name()),
        "schema": Value::Object(type_schema(pk, false)),
    })
}

pub(super) fn responses(ok: (&str, Value), body: bool) -> Value {
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

pub(super) fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

pub(super) fn request_id_header() -> Value {
    json!({ "X-Request-Id": reference("headers", "X-Request-Id") })
}

pub(super) fn ok_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "headers": request_id_header(),
        "content": json_content(reference("schemas", schema)),
    })
}

pub(super) fn resource_paths(meta: &'static ResourceMeta, paths: &mut Map<String, Value>) {
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

pub(super) fn audit_path(resources: &[&ResourceMeta]) -> Value {
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

pub(super) fn audit_entry_path() -> Value {
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
