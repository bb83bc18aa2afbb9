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
use platform_core::capability::Setup;
use platform_core::error::Error;
use serde::Deserialize;

use crate::service::{NewSubscription, SubscriptionUpdate};
use crate::{MANAGE, VIEW, webhooks_of};

type ApiResult<T> = std::result::Result<T, platform_admin::Error>;

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::invalid("body", "invalid", format!("the body is not valid: {e}")))
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

async fn show(api: ApiContext, Path(id): Path<i64>) -> ApiResult<Json<serde_json::Value>> {
    api.context().authorize(VIEW)?;
    let s = webhooks_of(api.platform())?
        .subscription(id)
        .await?
        .ok_or_else(|| not_found("webhook subscription", &id.to_string()))?;
    Ok(Json(serde_json::json!({ "data": s })))
}

async fn update(
    api: ApiContext,
    Path(id): Path<i64>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    api.context().authorize(MANAGE)?;
    let change: SubscriptionUpdate = parse(&body)?;
    let s = webhooks_of(api.platform())?.update(id, change).await?;
    Ok(Json(serde_json::json!({ "data": s })))
}

async fn delete(api: ApiContext, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    api.context().authorize(MANAGE)?;
    if webhooks_of(api.platform())?.delete(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found("webhook subscription", &id.to_string()).into())
    }
}

#[derive(Deserialize)]
struct CallQuery {
    subscription: Option<i64>,
    limit: Option<i64>,
}

async fn calls(api: ApiContext, Query(q): Query<CallQuery>) -> ApiResult<Json<serde_json::Value>> {
    api.context().authorize(VIEW)?;
    let calls = webhooks_of(api.platform())?
        .calls(q.subscription, q.limit.unwrap_or(100))
        .await?;
    Ok(Json(serde_json::json!({ "data": calls })))
}

async fn call(api: ApiContext, Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    api.context().authorize(VIEW)?;
    let (call, attempts) = webhooks_of(api.platform())?
        .call(&id)
        .await?
        .ok_or_else(|| not_found("webhook call", &id))?;
    Ok(Json(
        serde_json::json!({ "data": call, "attempts": attempts }),
    ))
}

async fn replay(api: ApiContext, Path(id): Path<String>) -> ApiResult<StatusCode> {
    api.context().authorize(MANAGE)?;
    webhooks_of(api.platform())?.replay(&id).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize)]
struct IncomingQuery {
    source: Option<String>,
    limit: Option<i64>,
}

async fn incoming(
    api: ApiContext,
    Query(q): Query<IncomingQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    api.context().authorize(VIEW)?;
    let calls = webhooks_of(api.platform())?
        .incoming_calls(q.source.as_deref(), q.limit.unwrap_or(100))
        .await?;
    Ok(Json(serde_json::json!({ "data": calls })))
}

async fn rerun(api: ApiContext, Path(id): Path<String>) -> ApiResult<StatusCode> {
    api.context().authorize(MANAGE)?;
    webhooks_of(api.platform())?.rerun(&id).await?;
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
}
