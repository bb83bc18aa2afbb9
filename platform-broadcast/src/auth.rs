//! `POST /broadcasting/auth`: signs a subscription for the signed-in user
//! (session cookie, with the CSRF token in `X-CSRF-TOKEN`) or a bearer
//! token, by the platform's permissions and record policies.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use platform_admin::panel::auth::PanelAuth;
use platform_core::Platform;
use platform_core::context::{Actor, Context};
use platform_core::permission::{Ability, VIEW_PII};
use serde::Deserialize;

use crate::Broadcaster;
use crate::protocol::{self, ChannelKind};

#[derive(Debug, Deserialize)]
pub(crate) struct AuthForm {
    socket_id: String,
    channel_name: String,
}

fn deny(message: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// Who is asking: the bearer token's actor, else the session's user (a
/// `POST` of the session must carry its CSRF token). `None`: nobody.
async fn caller(
    platform: &Platform,
    parts: &mut axum::http::request::Parts,
) -> Option<(Context, Option<String>)> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()?
            .trim()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))?
            .1
            .trim()
            .to_owned();
        let actor = platform.access().authenticate_token(&token).await.ok()?;
        return Some((Context::new(actor), None));
    }
    let auth = PanelAuth::from_request_parts(parts, platform).await.ok()?;
    let given = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !protocol::constant_time_eq(given, &auth.csrf_token) {
        return None;
    }
    Some((auth.ctx, Some(auth.user.name)))
}

/// The signed-in user's display name, for presence `user_info`.
async fn name_of(platform: &Platform, ctx: &Context, known: Option<String>) -> Option<String> {
    if known.is_some() {
        return known;
    }
    let id = ctx.actor().user_id()?;
    platform
        .access()
        .user(id)
        .await
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Whether `ctx` may subscribe to `channel` (without its prefix):
/// `user.{id}` is its own user's only; `{plural}.{id}` (a record's events)
/// needs the record to be visible to it, exactly as `GET /api/{plural}/{id}`
/// decides; `{plural}` (every record's events) needs the permission to
/// list them and a record-level policy that lets it see every record (a
/// policy that narrows what it sees would have it told about records it
/// may not see).
async fn may_subscribe(platform: &Platform, ctx: &Context, name: &str) -> bool {
    let Some((prefix, id)) = name.rsplit_once('.') else {
        let Some(records) = platform.records(name, ctx) else {
            return false;
        };
        return records.meta().plural() == name
            && ctx.can(records.entry().permission(Ability::ViewAny))
            && records.reaches_everything().unwrap_or(false);
    };
    if prefix == "user" {
        return ctx
            .actor()
            .user_id()
            .is_some_and(|me| id.parse::<i64>().ok() == Some(me));
    }
    let Some(records) = platform.records(prefix, ctx) else {
        return false;
    };
    if records.meta().plural() != prefix {
        return false;
    }
    let Ok(id) = records.parse_id(id) else {
        return false;
    };
    records.find(id).await.is_ok()
}

pub(crate) async fn authorize(State(platform): State<Platform>, req: Request) -> Response {
    let Some(b) = platform.get::<Broadcaster>() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (mut parts, body) = req.into_parts();
    let Some((ctx, name)) = caller(&platform, &mut parts).await else {
        return deny("Sign in (or send a bearer token) to subscribe to this channel");
    };
    if matches!(ctx.actor(), Actor::Anonymous) {
        return deny("Sign in (or send a bearer token) to subscribe to this channel");
    }
    let req = Request::from_parts(parts, body);
    let Ok(Form(form)) = Form::<AuthForm>::from_request(req, &()).await else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "error": "`socket_id` and `channel_name` are required" })),
        )
            .into_response();
    };
    if !protocol::valid_socket_id(&form.socket_id)
        || !protocol::valid_channel_name(&form.channel_name)
    {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "error": "invalid `socket_id` or `channel_name`" })),
        )
            .into_response();
    }
    let cfg = b.config();
    let channel = form.channel_name.as_str();
    let (kind, rest) = match ChannelKind::of(channel) {
        ChannelKind::Private => (ChannelKind::Private, &channel["private-".len()..]),
        ChannelKind::Presence => (ChannelKind::Presence, &channel["presence-".len()..]),
        ChannelKind::Public => return deny("Public channels need no authorisation"),
    };
    if !may_subscribe(&platform, &ctx, rest).await {
        return deny("You may not subscribe to this channel");
    }
    if kind == ChannelKind::Private {
        // A resource's channels carry personal data masked unless the
        // subscription is signed as allowed to see it.
        if !rest.starts_with("user.") && ctx.can(VIEW_PII) {
            let data = protocol::PII_CHANNEL_DATA;
            let auth =
                protocol::channel_auth(&cfg.key, &cfg.secret, &form.socket_id, channel, Some(data));
            return Json(serde_json::json!({ "auth": auth, "channel_data": data })).into_response();
        }
        let auth = protocol::channel_auth(&cfg.key, &cfg.secret, &form.socket_id, channel, None);
        return Json(serde_json::json!({ "auth": auth })).into_response();
    }
    let Some(user_id) = ctx.actor().user_id() else {
        return deny("Presence channels need a user");
    };
    let name = name_of(&platform, &ctx, name).await.unwrap_or_default();
    let channel_data = serde_json::json!({
        "user_id": user_id.to_string(),
        "user_info": { "name": name },
    })
    .to_string();
    let auth = protocol::channel_auth(
        &cfg.key,
        &cfg.secret,
        &form.socket_id,
        channel,
        Some(&channel_data),
    );
    Json(serde_json::json!({ "auth": auth, "channel_data": channel_data })).into_response()
}
