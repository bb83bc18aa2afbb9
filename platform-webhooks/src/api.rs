//! `/api/webhooks/...`: subscriptions, the call log, replay, incoming
//! calls. Every route is declared with its permission (the permission
//! matrix checks them) and checks it before reading its input.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use platform_admin::api::ApiContext;
use platform_admin::capability::{ApiRoutes, SetupExt};
use platform_core::capability::{ApiDoc, Setup};
use platform_core::error::Error;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::service::{NewSubscription, SubscriptionUpdate};
use crate::{MANAGE, VIEW, webhooks_of};

type ApiResult<T> = std::result::Result<T, platform_admin::Error>;

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Error> {
    let invalid = |e: serde_json::Error| {
        Error::invalid("body", "invalid", format!("the body is not valid: {e}"))
    };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    if has_nul(&value) {
        return Err(Error::invalid(
            "body",
            "invalid",
            "text must not contain NUL characters",
        ));
    }
    serde_json::from_value(value).map_err(invalid)
}

/// Whether a string in `v` holds a NUL character (no database stores it
/// alike).
fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(has_nul),
        serde_json::Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The body of `PATCH /webhooks/subscriptions/{id}` (unknown fields are
/// refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    active: Option<bool>,
}

fn not_found(what: &'static str, id: &str) -> Error {
    Error::NotFound {
        resource: what,
        id: id.chars().take(64).collect(),
    }
}

async fn list(api: ApiContext) -> ApiResult<Json<serde_json::Value>> {
    api.context().authorize(VIEW)?;
    let subs = webhooks_of(api.platform())?.subscriptions().await?;
    Ok(Json(serde_json::json!({ "data": subs })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    description: String,
}

async fn create(api: ApiContext, body: Bytes) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    api.context().authorize(MANAGE)?;
    let c: Create = parse(&body)?;
    let mut new = NewSubscription::new(c.url, c.events).description(c.description);
    new.secret = c.secret;
    new.owner_id = api.context().actor().user_id();
    let (s, secret) = webhooks_of(api.platform())?.subscribe(new).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "data": s, "secret": secret })),
    ))
}

/// A subscription id from the path: anything but a positive integer names
/// no subscription (`404`, like an unknown one).
fn subscription_id(id: &str) -> Result<i64, Error> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| not_found("webhook subscription", id))
}

/// A call id from the path: one with a NUL character or longer than 64
/// characters names no call (`404`; no database stores NUL alike).
fn call_id<'a>(what: &'static str, id: &'a str) -> Result<&'a str, Error> {
    if id.is_empty() || id.len() > 64 || id.contains('\0') {
        return Err(not_found(what, &id.replace('\0', "")));
    }
    Ok(id)
}

/// The query's parameters, each name at most once, every one known.
fn query_params(
    params: &[(String, String)],
    known: &[&str],
) -> Result<std::collections::HashMap<String, String>, Error> {
    let mut errors = platform_core::error::FieldErrors::default();
    let mut out = std::collections::HashMap::new();
    for (k, v) in params {
        if !known.contains(&k.as_str()) {
            errors.add(
                k.chars().take(64).collect::<String>(),
                "unknown_parameter",
                format!("unknown parameter (known: {})", known.join(", ")),
            );
        } else if v.contains('\0') {
            errors.add(k.clone(), "invalid", "must not contain NUL");
        } else if out.insert(k.clone(), v.clone()).is_some() {
            errors.add(k.clone(), "invalid", "given more than once");
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::Validation(errors))
    }
}

/// The integer parameter `name` within `min..=max`, if given.
fn int_param(
    params: &std::collections::HashMap<String, String>,
    name: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, Error> {
    params
        .get(name)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    Error::invalid(
                        name,
                        "invalid",
                        format!("must be an integer from {min} to {max}"),
                    )
                })
        })
        .transpose()
}

async fn show(api: ApiContext, Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    api.context().authorize(VIEW)?;
    let id = subscription_id(&id)?;
    let s = webhooks_of(api.platform())?
        .subscription(id)
        .await?
        .ok_or_else(|| not_found("webhook subscription", &id.to_string()))?;
    Ok(Json(serde_json::json!({ "data": s })))
}

async fn update(
    api: ApiContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    api.context().authorize(MANAGE)?;
    let id = subscription_id(&id)?;
    let u: Update = parse(&body)?;
    let change = SubscriptionUpdate {
        url: u.url,
        events: u.events,
        description: u.description,
        active: u.active,
    };
    let s = webhooks_of(api.platform())?.update(id, change).await?;
    Ok(Json(serde_json::json!({ "data": s })))
}

async fn delete(api: ApiContext, Path(id): Path<String>) -> ApiResult<StatusCode> {
    api.context().authorize(MANAGE)?;
    let id = subscription_id(&id)?;
    if webhooks_of(api.platform())?.delete(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found("webhook subscription", &id.to_string()).into())
    }
}

async fn calls(
    api: ApiContext,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult<Json<serde_json::Value>> {
    api.context().authorize(VIEW)?;
    let q = query_params(&params, &["subscription", "limit"])?;
    let subscription = int_param(&q, "subscription", 1, i64::MAX)?;
    let limit = int_param(&q, "limit", 1, 1000)?;
    let calls = webhooks_of(api.platform())?
        .calls(subscription, limit.unwrap_or(100))
        .await?;
    Ok(Json(serde_json::json!({ "data": calls })))
}

async fn call(api: ApiContext, Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    api.context().authorize(VIEW)?;
    let id = call_id("webhook call", &id)?;
    let (call, attempts) = webhooks_of(api.platform())?
        .call(id)
        .await?
        .ok_or_else(|| not_found("webhook call", id))?;
    Ok(Json(
        serde_json::json!({ "data": call, "attempts": attempts }),
    ))
}

async fn replay(api: ApiContext, Path(id): Path<String>) -> ApiResult<StatusCode> {
    api.context().authorize(MANAGE)?;
    let id = call_id("webhook call", &id)?;
    webhooks_of(api.platform())?.replay(id).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn incoming(
    api: ApiContext,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult<Json<serde_json::Value>> {
    api.context().authorize(VIEW)?;
    let q = query_params(&params, &["source", "limit"])?;
    let limit = int_param(&q, "limit", 1, 1000)?;
    let calls = webhooks_of(api.platform())?
        .incoming_calls(q.get("source").map(String::as_str), limit.unwrap_or(100))
        .await?;
    Ok(Json(serde_json::json!({ "data": calls })))
}

async fn rerun(api: ApiContext, Path(id): Path<String>) -> ApiResult<StatusCode> {
    api.context().authorize(MANAGE)?;
    let id = call_id("incoming webhook call", &id)?;
    webhooks_of(api.platform())?.rerun(id).await?;
    Ok(StatusCode::ACCEPTED)
}

pub(crate) fn contribute(setup: &mut Setup) {
    let router = Router::new()
        .route("/webhooks/subscriptions", get(list).post(create))
        .route(
            "/webhooks/subscriptions/{id}",
            get(show).patch(update).delete(delete),
        )
        .route("/webhooks/calls", get(calls))
        .route("/webhooks/calls/{id}", get(call))
        .route("/webhooks/calls/{id}/replay", post(replay))
        .route("/webhooks/incoming", get(incoming))
        .route("/webhooks/incoming/{id}/rerun", post(rerun));
    setup.api(
        ApiRoutes::new(router)
            .get("/webhooks/subscriptions")
            .requires(VIEW)
            .post("/webhooks/subscriptions")
            .requires(MANAGE)
            .get("/webhooks/subscriptions/{id}")
            .requires(VIEW)
            .patch("/webhooks/subscriptions/{id}")
            .requires(MANAGE)
            .delete("/webhooks/subscriptions/{id}")
            .requires(MANAGE)
            .get("/webhooks/calls")
            .requires(VIEW)
            .get("/webhooks/calls/{id}")
            .requires(VIEW)
            .post("/webhooks/calls/{id}/replay")
            .requires(MANAGE)
            .get("/webhooks/incoming")
            .requires(VIEW)
            .post("/webhooks/incoming/{id}/rerun")
            .requires(MANAGE),
    );
    setup.api_doc(api_doc());
}

/// The OpenAPI description of the routes above.
fn api_doc() -> ApiDoc {
    let nullable_string = json!({ "type": "string", "nullable": true });
    let ms = json!({ "type": "integer", "format": "int64", "description": "Milliseconds since the epoch." });
    let data = |schema: Value| json!({ "type": "object", "required": ["data"], "properties": { "data": schema } });
    let list = |schema: &str| data(json!({ "type": "array", "items": ApiDoc::schema_ref(schema) }));
    let event_pattern = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 152,
        "description": "An event name (`invoice.created`), `prefix.*` or `*`.",
        "pattern": "^(\\*|[A-Za-z0-9_-][A-Za-z0-9_.-]*[A-Za-z0-9_-](\\.\\*)?|[A-Za-z0-9_-](\\.\\*)?)$",
    });
    let events = json!({ "type": "array", "items": event_pattern, "minItems": 1, "maxItems": 100 });
    let url = json!({ "type": "string", "maxLength": 2048, "description": "An `http` or `https` URL with a host." });
    let text_id = |what: &str| {
        json!([{
            "name": "id",
            "in": "path",
            "required": true,
            "description": format!("The {what}'s id."),
            "schema": { "type": "string", "minLength": 1, "maxLength": 64 },
        }])
    };
    let limit = json!({
        "name": "limit",
        "in": "query",
        "required": false,
        "description": "How many, newest first.",
        "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 },
    });
    let view = format!("Needs `{VIEW}`.");
    let manage = format!("Needs `{MANAGE}`.");
    let op = |id: &str, summary: &str, description: &str, ok: (&str, Value), errors: &[u16]| {
        let mut responses = ApiDoc::responses([ok], [401, 403]);
        for e in errors {
            let extra = ApiDoc::responses([], [*e]);
            if let (Value::Object(r), Value::Object(x)) = (&mut responses, extra) {
                r.extend(x);
            }
        }
        json!({
            "operationId": id,
            "summary": summary,
            "description": description,
            "tags": ["webhooks"],
            "responses": responses,
        })
    };
    let body = |schema: &str| json!({ "required": true, "content": { "application/json": { "schema": ApiDoc::schema_ref(schema) } } });
    let mut create = op(
        "create_webhook_subscription",
        "Subscribe an endpoint",
        &format!(
            "Calls to `url` are signed with the secret (given once, in this answer's `secret`). {manage}"
        ),
        (
            "201",
            ApiDoc::json_response(
                "The subscription, and its secret.",
                ApiDoc::schema_ref("WebhookSubscriptionCreated"),
            ),
        ),
        &[400, 413, 415, 422],
    );
    create["requestBody"] = body("WebhookSubscriptionCreate");
    let mut update = op(
        "update_webhook_subscription",
        "Change a subscription",
        &format!(
            "Only the fields sent change; turning it `active` resets its failure count. {manage}"
        ),
        (
            "200",
            ApiDoc::json_response(
                "The subscription.",
                ApiDoc::schema_ref("WebhookSubscriptionDocument"),
            ),
        ),
        &[400, 404, 413, 415, 422],
    );
    update["requestBody"] = body("WebhookSubscriptionUpdate");
    let mut calls = op(
        "list_webhook_calls",
        "Outgoing calls",
        &format!("The latest calls, newest first. {view}"),
        ("200", ApiDoc::json_response("Calls.", list("WebhookCall"))),
        &[422],
    );
    calls["parameters"] = json!([
        {
            "name": "subscription",
            "in": "query",
            "required": false,
            "description": "Only this subscription's calls.",
            "schema": { "type": "integer", "format": "int64", "minimum": 1 },
        },
        limit,
    ]);
    let mut incoming = op(
        "list_incoming_webhooks",
        "Incoming calls",
        &format!("The latest calls received, newest first. {view}"),
        (
            "200",
            ApiDoc::json_response("Incoming calls.", list("IncomingWebhookCall")),
        ),
        &[422],
    );
    incoming["parameters"] = json!([
        {
            "name": "source",
            "in": "query",
            "required": false,
            "description": "Only this source's calls.",
            "schema": { "type": "string", "pattern": "^[^\\u0000]*$" },
        },
        limit,
    ]);
    ApiDoc::new()
        .tag("webhooks", "Outgoing webhook subscriptions and calls, incoming calls")
        .schema(
            "WebhookSubscription",
            json!({
                "type": "object",
                "required": ["id", "url", "events", "description", "active", "owner_id", "failures", "disabled_reason", "secret_hint", "created_at"],
                "properties": {
                    "id": { "type": "integer", "format": "int64" },
                    "url": { "type": "string" },
                    "events": { "type": "array", "items": { "type": "string" } },
                    "description": { "type": "string" },
                    "active": { "type": "boolean" },
                    "owner_id": { "type": "integer", "format": "int64", "nullable": true },
                    "failures": { "type": "integer", "format": "int64", "description": "Calls failed in a row." },
                    "disabled_reason": nullable_string,
                    "secret_hint": { "type": "string", "description": "The secret's last characters." },
                    "created_at": ms,
                },
            }),
        )
        .schema("WebhookSubscriptionDocument", data(ApiDoc::schema_ref("WebhookSubscription")))
        .schema(
            "WebhookSubscriptionCreated",
            json!({
                "type": "object",
                "required": ["data", "secret"],
                "properties": {
                    "data": ApiDoc::schema_ref("WebhookSubscription"),
                    "secret": { "type": "string", "description": "The signing secret: shown this once." },
                },
            }),
        )
        .schema("WebhookSubscriptionList", list("WebhookSubscription"))
        .schema(
            "WebhookSubscriptionCreate",
            json!({
                "type": "object",
                "required": ["url", "events"],
                "additionalProperties": false,
                "properties": {
                    "url": url,
                    "events": events,
                    "secret": { "type": "string", "minLength": 16, "maxLength": 200, "nullable": true, "description": "The signing secret (default: a new random one).", "pattern": "^[^\\u0000]*$" },
                    "description": { "type": "string", "maxLength": 1000, "default": "", "pattern": "^[^\\u0000]*$" },
                },
            }),
        )
        .schema(
            "WebhookSubscriptionUpdate",
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "url": url,
                    "events": events,
                    "description": { "type": "string", "maxLength": 1000, "pattern": "^[^\\u0000]*$" },
                    "active": { "type": "boolean" },
                },
            }),
        )
        .schema(
            "WebhookCall",
            json!({
                "type": "object",
                "required": ["id", "subscription_id", "event_id", "event_type", "payload", "status", "attempts", "last_status", "created_at", "updated_at"],
                "properties": {
                    "id": { "type": "string" },
                    "subscription_id": { "type": "integer", "format": "int64" },
                    "event_id": { "type": "string" },
                    "event_type": { "type": "string" },
                    "payload": { "type": "string", "description": "The JSON body sent." },
                    "status": { "type": "string", "description": "`pending`, `delivered`, `failed`..." },
                    "attempts": { "type": "integer", "format": "int64" },
                    "last_status": { "type": "integer", "format": "int64", "nullable": true, "description": "The endpoint's last HTTP status." },
                    "created_at": ms,
                    "updated_at": ms,
                },
            }),
        )
        .schema(
            "WebhookCallDocument",
            json!({
                "type": "object",
                "required": ["data", "attempts"],
                "properties": {
                    "data": ApiDoc::schema_ref("WebhookCall"),
                    "attempts": { "type": "array", "items": {
                        "type": "object",
                        "required": ["attempt", "status_code", "latency_ms", "response", "error", "created_at"],
                        "properties": {
                            "attempt": { "type": "integer", "format": "int64" },
                            "status_code": { "type": "integer", "format": "int64", "nullable": true },
                            "latency_ms": { "type": "integer", "format": "int64" },
                            "response": nullable_string,
                            "error": nullable_string,
                            "created_at": ms,
                        },
                    } },
                },
            }),
        )
        .schema(
            "IncomingWebhookCall",
            json!({
                "type": "object",
                "required": ["id", "source", "event_id", "headers", "payload", "status", "attempts", "error", "received_at", "processed_at"],
                "properties": {
                    "id": { "type": "string" },
                    "source": { "type": "string" },
                    "event_id": { "type": "string" },
                    "headers": { "type": "string", "description": "The headers kept (JSON)." },
                    "payload": { "type": "string" },
                    "status": { "type": "string" },
                    "attempts": { "type": "integer", "format": "int64" },
                    "error": nullable_string,
                    "received_at": ms,
                    "processed_at": { "type": "integer", "format": "int64", "nullable": true },
                },
            }),
        )
        .get(
            "/webhooks/subscriptions",
            op(
                "list_webhook_subscriptions",
                "Subscriptions",
                &format!("Newest first. {view}"),
                ("200", ApiDoc::json_response("Subscriptions.", ApiDoc::schema_ref("WebhookSubscriptionList"))),
                &[],
            ),
        )
        .post("/webhooks/subscriptions", create)
        .path_parameters(
            "/webhooks/subscriptions/{id}",
            json!([{
                "name": "id",
                "in": "path",
                "required": true,
                "description": "The subscription's id.",
                "schema": { "type": "integer", "format": "int64", "minimum": 1 },
            }]),
        )
        .get(
            "/webhooks/subscriptions/{id}",
            op(
                "show_webhook_subscription",
                "A subscription",
                &view,
                ("200", ApiDoc::json_response("The subscription.", ApiDoc::schema_ref("WebhookSubscriptionDocument"))),
                &[404],
            ),
        )
        .patch("/webhooks/subscriptions/{id}", update)
        .delete(
            "/webhooks/subscriptions/{id}",
            op(
                "delete_webhook_subscription",
                "Remove a subscription",
                &manage,
                ("204", ApiDoc::empty_response("Removed.")),
                &[404],
            ),
        )
        .get("/webhooks/calls", calls)
        .path_parameters("/webhooks/calls/{id}", text_id("call"))
        .get(
            "/webhooks/calls/{id}",
            op(
                "show_webhook_call",
                "A call and its attempts",
                &view,
                ("200", ApiDoc::json_response("The call.", ApiDoc::schema_ref("WebhookCallDocument"))),
                &[404],
            ),
        )
        .path_parameters("/webhooks/calls/{id}/replay", text_id("call"))
        .post(
            "/webhooks/calls/{id}/replay",
            op(
                "replay_webhook_call",
                "Send a call again",
                &format!("Queues the call again, whatever its status, even to a disabled subscription. {manage}"),
                ("202", ApiDoc::empty_response("Queued.")),
                &[404],
            ),
        )
        .get("/webhooks/incoming", incoming)
        .path_parameters("/webhooks/incoming/{id}/rerun", text_id("incoming call"))
        .post(
            "/webhooks/incoming/{id}/rerun",
            op(
                "rerun_incoming_webhook",
                "Process an incoming call again",
                &manage,
                ("202", ApiDoc::empty_response("Queued.")),
                &[404],
            ),
        )
}
