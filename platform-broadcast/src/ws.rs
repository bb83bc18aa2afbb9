//! The WebSocket endpoint `/app/{key}`: one task per connection.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use platform_core::Platform;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, timeout};

use crate::backplane::{Envelope, Member};
use crate::hub::{Admission, ConnHandle};
use crate::protocol::{
    self, ChannelKind, ClientFrame, ErrorCode, SubscribeData, error_frame, event_frame,
};
use crate::{Broadcaster, Inner};

/// The client address: the right-most `X-Forwarded-For` entry when the
/// platform trusts it, else the socket's peer.
pub(crate) fn client_ip(
    headers: &HeaderMap,
    peer: Option<&Extension<ConnectInfo<SocketAddr>>>,
    platform: &Platform,
) -> IpAddr {
    if platform.config().trust_forwarded
        && let Some(ip) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back()
    {
        return ip;
    }
    peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0.ip())
}

/// The socket's initial read buffer, in bytes.
const READ_BUFFER: usize = 4 * 1024;

/// `GET /app/{key}`: upgrades, then speaks the protocol.
pub(crate) async fn upgrade(
    State(platform): State<Platform>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(b) = platform.get::<Broadcaster>() else {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    };
    let ip = client_ip(&headers, peer.as_ref(), &platform);
    let inner = b.inner.clone();
    let max = inner.config.max_message_size;
    // The socket refuses frames far over the limit itself; those under
    // twice the limit get the protocol's error.
    // Buffers are allocated per connection for its whole life: a small
    // read buffer (it grows for a larger message, up to the limit) keeps
    // an idle connection at a few KiB instead of the default 128 KiB;
    // frames are written at once rather than gathered.
    ws.max_message_size(max * 2 + 1024)
        .max_frame_size(max * 2 + 1024)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let protocol = query.get("protocol").cloned();
            run(socket, inner, &key, protocol.as_deref(), ip).await;
        })
}

async fn send_text(socket: &mut WebSocket, text: impl Into<Utf8Bytes>, limit: Duration) -> bool {
    matches!(
        timeout(limit, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

/// Sends `pusher:error` with `code`, then closes with the same code.
async fn fail(socket: &mut WebSocket, code: ErrorCode, message: &str, limit: Duration) {
    if send_text(socket, error_frame(code, message), limit).await {
        let _ = timeout(
            limit,
            socket.send(Message::Close(Some(CloseFrame {
                code: code.code(),
                reason: Utf8Bytes::from(message.to_owned()),
            }))),
        )
        .await;
    }
}

/// Why a connection ends.
enum End {
    Closed,
    Error(ErrorCode, String),
}

struct Conn {
    inner: Arc<Inner>,
    socket_id: String,
    handle: ConnHandle,
    admission: Admission,
    /// Channel → the presence user id of this socket there.
    subscriptions: HashMap<String, Option<String>>,
    /// The current one-second window of client events: its start and how
    /// many were sent in it.
    client_window: (std::time::Instant, u32),
}

async fn run(
    mut socket: WebSocket,
    inner: Arc<Inner>,
    key: &str,
    protocol: Option<&str>,
    ip: IpAddr,
) {
    let cfg = &inner.config;
    let wt = cfg.write_timeout;
    if !protocol::constant_time_eq(key, &cfg.key) {
        return fail(
            &mut socket,
            ErrorCode::AppNotFound,
            "Application does not exist",
            wt,
        )
        .await;
    }
    match protocol.map(str::parse::<u32>) {
        None => {
            return fail(
                &mut socket,
                ErrorCode::NoProtocol,
                "No protocol version supplied",
                wt,
            )
            .await;
        }
        Some(Err(_)) => {
            return fail(
                &mut socket,
                ErrorCode::InvalidVersion,
                "Invalid version string format",
                wt,
            )
            .await;
        }
        Some(Ok(v)) if !protocol::PROTOCOL_VERSIONS.contains(&v) => {
            return fail(
                &mut socket,
                ErrorCode::UnsupportedProtocol,
                "Unsupported protocol version",
                wt,
            )
            .await;
        }
        Some(Ok(_)) => {}
    }
    let admission = match inner.hub.admit(ip) {
        Ok(a) => a,
        Err(r) => return fail(&mut socket, ErrorCode::OverCapacity, r.message(), wt).await,
    };
    let (tx, mut rx) = mpsc::channel(cfg.send_queue);
    let kill = Arc::new(Notify::new());
    let mut conn = Conn {
        inner: inner.clone(),
        socket_id: protocol::new_socket_id(),
        handle: ConnHandle {
            tx,
            kill: kill.clone(),
        },
        admission,
        subscriptions: HashMap::new(),
        client_window: (std::time::Instant::now(), 0),
    };
    let established = serde_json::json!({
        "socket_id": conn.socket_id,
        "activity_timeout": cfg.activity_timeout.as_secs().max(1),
    })
    .to_string();
    let end = if send_text(
        &mut socket,
        event_frame("pusher:connection_established", None, &established),
        wt,
    )
    .await
    {
        conn.serve(&mut socket, &mut rx, &kill).await
    } else {
        End::Closed
    };
    if let End::Error(code, message) = end {
        // A slow consumer is not read from: give the close a short time only.
        fail(
            &mut socket,
            code,
            &message,
            Duration::from_millis(200).min(wt),
        )
        .await;
    }
    conn.cleanup().await;
}

impl Conn {
    async fn serve(
        &mut self,
        socket: &mut WebSocket,
        rx: &mut mpsc::Receiver<Utf8Bytes>,
        kill: &Notify,
    ) -> End {
        let cfg = self.inner.config.clone();
        let wt = cfg.write_timeout;
        let mut last_seen = Instant::now();
        let mut pinged: Option<Instant> = None;
        loop {
            let deadline = match pinged {
                Some(at) => at + cfg.pong_timeout,
                None => last_seen + cfg.activity_timeout,
            };
            tokio::select! {
                biased;
                () = kill.notified() => {
                    return End::Error(ErrorCode::RateLimited, "Slow consumer: too many messages waiting".into());
                }
                frame = rx.recv() => {
                    let Some(frame) = frame else { return End::Closed };
                    if !send_text(socket, frame, wt).await {
                        return End::Closed;
                    }
                }
                msg = socket.recv() => {
                    let Some(Ok(msg)) = msg else { return End::Closed };
                    last_seen = Instant::now();
                    pinged = None;
                    match msg {
                        Message::Text(text) => {
                            if text.len() > cfg.max_message_size {
                                return End::Error(
                                    ErrorCode::BadMessage,
                                    format!("Message too large (the limit is {} bytes)", cfg.max_message_size),
                                );
                            }
                            if let Some(reply) = self.handle(text.as_str()).await
                                && !send_text(socket, reply, wt).await
                            {
                                return End::Closed;
                            }
                        }
                        Message::Binary(_) => {
                            if !send_text(socket, error_frame(ErrorCode::BadMessage, "Binary frames are not supported"), wt).await {
                                return End::Closed;
                            }
                        }
                        Message::Close(_) => return End::Closed,
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    if pinged.is_some() {
                        return End::Error(ErrorCode::PongNotReceived, "Pong reply not received".into());
                    }
                    if !send_text(socket, event_frame("pusher:ping", None, "{}"), wt).await {
                        return End::Closed;
                    }
                    pinged = Some(Instant::now());
                }
            }
        }
    }

    /// Handles one client frame; the reply to send, if any.
    async fn handle(&mut self, text: &str) -> Option<String> {
        let Ok(frame) = serde_json::from_str::<ClientFrame>(text) else {
            return Some(error_frame(
                ErrorCode::BadMessage,
                "Malformed message: expected a JSON object with an `event`",
            ));
        };
        match frame.event.as_str() {
            "pusher:ping" => Some(event_frame("pusher:pong", None, "{}")),
            "pusher:pong" => None,
            "pusher:subscribe" => match decode::<SubscribeData>(frame.data) {
                Some(d) => Some(self.subscribe(d).await),
                None => Some(error_frame(
                    ErrorCode::BadMessage,
                    "Malformed pusher:subscribe: `data.channel` is required",
                )),
            },
            "pusher:unsubscribe" => {
                let channel = decode::<Unsubscribe>(frame.data).map(|u| u.channel);
                match channel {
                    Some(c) => {
                        self.unsubscribe(&c).await;
                        None
                    }
                    None => Some(error_frame(
                        ErrorCode::BadMessage,
                        "Malformed pusher:unsubscribe: `data.channel` is required",
                    )),
                }
            }
            e if e.starts_with("client-") => self.client_event(frame).await,
            other => Some(error_frame(
                ErrorCode::BadMessage,
                &format!("Unknown event `{}`", truncate(other, 64)),
            )),
        }
    }

    async fn subscribe(&mut self, d: SubscribeData) -> String {
        let channel = d.channel;
        let cfg = &self.inner.config;
        if !protocol::valid_channel_name(&channel) {
            return error_frame(ErrorCode::BadMessage, "Invalid channel name");
        }
        let kind = ChannelKind::of(&channel);
        if self.subscriptions.contains_key(&channel) && kind != ChannelKind::Presence {
            return event_frame(
                "pusher_internal:subscription_succeeded",
                Some(&channel),
                "{}",
            );
        }
        if !self.subscriptions.contains_key(&channel)
            && self.subscriptions.len() >= cfg.max_subscriptions
        {
            return error_frame(
                ErrorCode::OverCapacity,
                &format!(
                    "Subscription limit reached ({} channels per connection)",
                    cfg.max_subscriptions
                ),
            );
        }
        let mut member = None;
        let mut pii = false;
        if kind != ChannelKind::Public {
            // A presence channel's signature always covers its
            // `channel_data`; a private channel's covers it when the
            // authoriser sent one (`{"pii":true}`: see `auth.rs`).
            let data = match kind {
                ChannelKind::Presence => Some(d.channel_data.as_deref().unwrap_or("")),
                _ => d.channel_data.as_deref(),
            };
            let expected =
                protocol::channel_auth(&cfg.key, &cfg.secret, &self.socket_id, &channel, data);
            if !d
                .auth
                .as_deref()
                .is_some_and(|a| protocol::constant_time_eq(a, &expected))
            {
                return unauthorized(
                    &channel,
                    "Invalid signature: the auth does not match this socket and channel",
                );
            }
            if kind == ChannelKind::Private {
                pii = data.is_some_and(protocol::grants_pii);
            }
            if kind == ChannelKind::Presence {
                match parse_member(d.channel_data.as_deref().unwrap_or("")) {
                    Some(m) => member = Some(m),
                    None => {
                        return unauthorized(
                            &channel,
                            "Invalid channel_data: a JSON object with a `user_id` is required",
                        );
                    }
                }
            }
        }
        let user = member
            .as_ref()
            .map(|m| m.user_id.clone())
            .or_else(|| channel.strip_prefix("private-user.").map(str::to_owned));
        if let Some(u) = &user
            && let Err(r) = self.admission.claim_user(u)
        {
            return error_frame(ErrorCode::OverCapacity, r.message());
        }
        let Some(member) = member else {
            self.inner
                .hub
                .subscribe(&channel, &self.socket_id, &self.handle, pii);
            self.subscriptions.insert(channel.clone(), None);
            return event_frame(
                "pusher_internal:subscription_succeeded",
                Some(&channel),
                "{}",
            );
        };
        let backplane = cfg.backplane.clone();
        let members = match backplane.members(&channel).await {
            Ok(m) => m,
            Err(e) => return self.backend_error(&e),
        };
        if members.len() >= cfg.max_presence_members
            && !members.iter().any(|m| m.user_id == member.user_id)
        {
            return error_frame(ErrorCode::OverCapacity, "The presence channel is full");
        }
        if let Some(Some(old)) = self.subscriptions.get(&channel)
            && old != &member.user_id
        {
            return unauthorized(&channel, "Already a member of this channel as another user");
        }
        let first = match backplane.join(&channel, &self.socket_id, &member).await {
            Ok(f) => f,
            Err(e) => return self.backend_error(&e),
        };
        self.inner
            .hub
            .subscribe(&channel, &self.socket_id, &self.handle, false);
        self.subscriptions
            .insert(channel.clone(), Some(member.user_id.clone()));
        if first {
            let data = serde_json::to_string(&member).unwrap_or_default();
            if let Err(e) = backplane
                .publish(Envelope {
                    channel: channel.clone(),
                    event: "pusher_internal:member_added".into(),
                    data,
                    except: Some(self.socket_id.clone()),
                    user_id: None,
                    pii_data: None,
                })
                .await
            {
                tracing::warn!(error = %e, "broadcasting: member_added not published");
            }
        }
        let members = backplane.members(&channel).await.unwrap_or_default();
        let ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
        let hash: serde_json::Map<String, serde_json::Value> = members
            .iter()
            .map(|m| (m.user_id.clone(), m.user_info.clone()))
            .collect();
        let data = serde_json::json!({
            "presence": { "ids": ids, "hash": hash, "count": members.len() }
        })
        .to_string();
        event_frame(
            "pusher_internal:subscription_succeeded",
            Some(&channel),
            &data,
        )
    }

    fn backend_error(&self, e: &platform_core::Error) -> String {
        tracing::warn!(error = %e, "broadcasting: presence back end failed");
        error_frame(ErrorCode::Reconnect, "Presence is unavailable, try again")
    }

    async fn unsubscribe(&mut self, channel: &str) {
        let Some(user) = self.subscriptions.remove(channel) else {
            return;
        };
        self.inner.hub.unsubscribe(channel, &self.socket_id);
        if let Some(user) = user {
            self.leave(channel, &user).await;
        }
    }

    async fn leave(&self, channel: &str, user: &str) {
        let backplane = &self.inner.config.backplane;
        match backplane.leave(channel, &self.socket_id, user).await {
            Ok(true) => {
                let data = serde_json::json!({ "user_id": user }).to_string();
                if let Err(e) = backplane
                    .publish(Envelope {
                        channel: channel.to_owned(),
                        event: "pusher_internal:member_removed".into(),
                        data,
                        except: Some(self.socket_id.clone()),
                        user_id: None,
                        pii_data: None,
                    })
                    .await
                {
                    tracing::warn!(error = %e, "broadcasting: member_removed not published");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "broadcasting: presence leave failed"),
        }
    }

    async fn client_event(&mut self, frame: ClientFrame) -> Option<String> {
        if !self.inner.config.client_events {
            return Some(error_frame(
                ErrorCode::Unauthorized,
                "Client events are disabled",
            ));
        }
        let Some(channel) = frame.channel else {
            return Some(error_frame(
                ErrorCode::BadMessage,
                "A client event needs a `channel`",
            ));
        };
        if ChannelKind::of(&channel) == ChannelKind::Public {
            return Some(error_frame(
                ErrorCode::Unauthorized,
                "Client events are only allowed on private and presence channels",
            ));
        }
        let Some(user) = self.subscriptions.get(&channel) else {
            return Some(error_frame(
                ErrorCode::Unauthorized,
                "Not subscribed to this channel",
            ));
        };
        if !protocol::valid_event_name(&frame.event) {
            return Some(error_frame(ErrorCode::BadMessage, "Invalid event name"));
        }
        let limit = self.inner.config.client_events_per_second;
        let now = std::time::Instant::now();
        if now.duration_since(self.client_window.0) >= std::time::Duration::from_secs(1) {
            self.client_window = (now, 0);
        }
        if self.client_window.1 >= limit {
            return Some(error_frame(
                ErrorCode::RateLimited,
                &format!("Rate limit exceeded: at most {limit} client events per second"),
            ));
        }
        self.client_window.1 += 1;
        let data = match frame.data {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        let result = self
            .inner
            .config
            .backplane
            .publish(Envelope {
                channel,
                event: frame.event,
                data,
                except: Some(self.socket_id.clone()),
                user_id: user.clone(),
                pii_data: None,
            })
            .await;
        result.err().map(|e| self.backend_error(&e))
    }

    async fn cleanup(&mut self) {
        let subs: Vec<(String, Option<String>)> = self.subscriptions.drain().collect();
        for (channel, user) in subs {
            self.inner.hub.unsubscribe(&channel, &self.socket_id);
            if let Some(user) = user {
                self.leave(&channel, &user).await;
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct Unsubscribe {
    channel: String,
}

/// `data` as `T`: an object, or a string holding one (older clients).
fn decode<T: serde::de::DeserializeOwned>(data: serde_json::Value) -> Option<T> {
    match data {
        serde_json::Value::String(s) => serde_json::from_str(&s).ok(),
        v => serde_json::from_value(v).ok(),
    }
}

fn parse_member(channel_data: &str) -> Option<Member> {
    let v: serde_json::Value = serde_json::from_str(channel_data).ok()?;
    let user_id = match v.get("user_id")? {
        serde_json::Value::String(s) if !s.is_empty() && s.len() <= 128 => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let user_info = v
        .get("user_info")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    Some(Member { user_id, user_info })
}

fn unauthorized(channel: &str, message: &str) -> String {
    // pusher-js reports `pusher:subscription_error` on the channel; the
    // `pusher:error` code says why.
    serde_json::json!({
        "event": "pusher:error",
        "channel": channel,
        "data": { "code": ErrorCode::Unauthorized.code(), "message": message },
    })
    .to_string()
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
