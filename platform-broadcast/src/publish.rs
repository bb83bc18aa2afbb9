//! The Pusher HTTP publish API: `POST /apps/{app_id}/events` and
//! `/batch_events`, signed with the application's secret.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use md5::{Digest, Md5};
use platform_core::Platform;
use serde::Deserialize;

use crate::backplane::Envelope;
use crate::protocol;
use crate::{BroadcastConfig, Broadcaster};

/// The most channels one event goes to, and events in one batch (Pusher's).
const MAX_CHANNELS: usize = 100;
const MAX_BATCH: usize = 10;

/// A refused call: its status and why.
#[derive(Debug)]
pub(crate) struct Refused(StatusCode, String);

fn error(status: StatusCode, message: &str) -> Refused {
    Refused(status, message.to_owned())
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// Checks the signature of a publish call: `auth_key`, `auth_timestamp`
/// within the window, `auth_version` 1.0, `body_md5` of the body, and
/// `auth_signature` = HMAC-SHA256 of `POST\n{path}\n{sorted query}`.
fn verify(
    cfg: &BroadcastConfig,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> Result<(), Refused> {
    let unauthorized = |m: &str| Err(error(StatusCode::UNAUTHORIZED, m));
    let get = |k: &str| query.get(k).map(String::as_str);
    if !get("auth_key").is_some_and(|k| protocol::constant_time_eq(k, &cfg.key)) {
        return unauthorized("Unknown auth_key");
    }
    if get("auth_version") != Some("1.0") {
        return unauthorized("auth_version must be 1.0");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let Some(ts) = get("auth_timestamp").and_then(|t| t.parse::<u64>().ok()) else {
        return unauthorized("auth_timestamp is required");
    };
    if now.abs_diff(ts) > cfg.timestamp_window.as_secs() {
        return unauthorized("auth_timestamp is outside the allowed window: check the clock");
    }
    let md5 = hex::encode(Md5::digest(body));
    if !get("body_md5").is_some_and(|m| protocol::constant_time_eq(m, &md5)) {
        return unauthorized("body_md5 does not match the body");
    }
    let signed: Vec<String> = query
        .iter()
        .filter(|(k, _)| k.as_str() != "auth_signature")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let expected = protocol::sign(&cfg.secret, &format!("POST\n{path}\n{}", signed.join("&")));
    if !get("auth_signature").is_some_and(|s| protocol::constant_time_eq(s, &expected)) {
        return unauthorized("Invalid signature");
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Event {
    name: String,
    data: serde_json::Value,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Batch {
    batch: Vec<Event>,
}

async fn prepare(
    platform: &Platform,
    app_id: &str,
    uri: &OriginalUri,
    query: Vec<(String, String)>,
    body: &[u8],
) -> Result<Broadcaster, Refused> {
    let Some(b) = platform.get::<Broadcaster>() else {
        return Err(error(StatusCode::NOT_FOUND, "Broadcasting is not set up"));
    };
    if !protocol::constant_time_eq(app_id, &b.config().app_id) {
        return Err(error(StatusCode::NOT_FOUND, "Unknown app_id"));
    }
    let mut q = BTreeMap::new();
    for (k, v) in query {
        if q.insert(k.to_ascii_lowercase(), v).is_some() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "A query parameter is repeated",
            ));
        }
    }
    verify(b.config(), uri.0.path(), &q, body)?;
    Ok((*b).clone())
}

fn envelopes(b: &Broadcaster, e: Event) -> Result<Vec<Envelope>, Refused> {
    let bad = |m: String| Err(error(StatusCode::BAD_REQUEST, &m));
    let channels = match (e.channels, e.channel) {
        (Some(c), None) => c,
        (None, Some(c)) => vec![c],
        _ => return bad("give either `channels` or `channel`".into()),
    };
    if channels.is_empty() || channels.len() > MAX_CHANNELS {
        return bad(format!("an event goes to 1 to {MAX_CHANNELS} channels"));
    }
    if !protocol::valid_event_name(&e.name) {
        return bad("an event name is 1 to 200 bytes".into());
    }
    let data = match e.data {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    if data.len() > b.config().max_message_size {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("`data` is over {} bytes", b.config().max_message_size),
        ));
    }
    if let Some(c) = channels.iter().find(|c| !protocol::valid_channel_name(c)) {
        return bad(format!("`{c}` is not a valid channel name"));
    }
    if e.socket_id
        .as_deref()
        .is_some_and(|s| !protocol::valid_socket_id(s))
    {
        return bad("invalid `socket_id`".into());
    }
    Ok(channels
        .into_iter()
        .map(|channel| Envelope {
            channel,
            event: e.name.clone(),
            data: data.clone(),
            except: e.socket_id.clone(),
            user_id: None,
            pii_data: None,
        })
        .collect())
}

async fn publish(b: &Broadcaster, all: Vec<Envelope>) -> Result<Response, Refused> {
    for env in all {
        if let Err(e) = b.inner.config.backplane.publish(env).await {
            tracing::warn!(error = %e, "broadcasting: publish failed");
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The event could not be published",
            ));
        }
    }
    Ok(Json(serde_json::json!({})).into_response())
}

/// `POST /apps/{app_id}/events`.
pub(crate) async fn events(
    State(platform): State<Platform>,
    Path(app_id): Path<String>,
    uri: OriginalUri,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Response, Refused> {
    let b = prepare(&platform, &app_id, &uri, query, &body).await?;
    let event = serde_json::from_slice::<Event>(&body).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "Malformed event: expected {name, data, channels}",
        )
    })?;
    publish(&b, envelopes(&b, event)?).await
}

/// `POST /apps/{app_id}/batch_events`.
pub(crate) async fn batch_events(
    State(platform): State<Platform>,
    Path(app_id): Path<String>,
    uri: OriginalUri,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Response, Refused> {
    let b = prepare(&platform, &app_id, &uri, query, &body).await?;
    let batch = serde_json::from_slice::<Batch>(&body).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "Malformed batch: expected {batch: [{name, data, channel}]}",
        )
    })?;
    if batch.batch.is_empty() || batch.batch.len() > MAX_BATCH {
        return Err(error(
            StatusCode::BAD_REQUEST,
            &format!("a batch holds 1 to {MAX_BATCH} events"),
        ));
    }
    let mut all = Vec::new();
    for e in batch.batch {
        all.append(&mut envelopes(&b, e)?);
    }
    publish(&b, all).await
}
