//! # platform-broadcast
//!
//! Real-time broadcasting for Platform over the Pusher Channels protocol
//! version 7 (Laravel Reverb, Soketi): unmodified `pusher-js` and Laravel
//! Echo clients connect to the host process itself.
//!
//! ```no_run
//! use platform_broadcast::{BroadcastConfig, Broadcaster, Broadcasting};
//!
//! # async fn run() -> platform_core::Result<()> {
//! let platform = platform_core::Platform::builder()
//!     .with(Broadcasting::new(BroadcastConfig::new("app-1", "app-key", "app-secret")))
//!     .build()
//!     .await?;
//! let broadcaster = platform.get::<Broadcaster>().expect("added above");
//! broadcaster
//!     .broadcast("orders", "order.shipped", &serde_json::json!({"id": 7}))
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! The capability contributes (served by `platform_admin::app_router`):
//!
//! | route | what |
//! |---|---|
//! | `GET /app/{key}` | the WebSocket endpoint (Pusher protocol 7) |
//! | `POST /broadcasting/auth` | signs subscriptions to `private-` and `presence-` channels for the signed-in user or a bearer token |
//! | `POST {panel}/broadcasting/auth` | the same under the panel's path, where its session cookie reaches (the panel's live updates) |
//! | `POST /apps/{app_id}/events`, `/apps/{app_id}/batch_events` | the Pusher HTTP publish API, signed with the application's secret |
//!
//! and the [`Broadcaster`] service, which also fills the notification
//! capability's broadcast channel (a notification's `broadcast` channel
//! reaches `private-user.{id}`).
//!
//! Every resource's committed changes are broadcast (from the outbox) as
//! `{singular}.{event}` on `private-{plural}` and `private-{plural}.{id}`,
//! with personal data masked except for subscribers allowed to see it
//! ([`BroadcastConfig::resource_events`] turns this off). On one node a
//! change whose channels have no subscriber is not stored for broadcasting
//! ([`BroadcastBackplane::single_node`]).

mod auth;
mod hub;
mod publish;
mod resource_events;
mod ws;

pub mod backplane;
pub mod protocol;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use platform_admin::capability::SetupExt;
use platform_core::capability::{Capability, Setup};
use platform_core::notify::{BroadcastHook, BroadcastMessage};
use platform_core::{Error, Platform, Result};

pub use backplane::{BroadcastBackplane, Envelope, LocalBackplane, Member};
pub use protocol::{ChannelKind, ErrorCode, channel_auth};

/// The application the server speaks for, and its limits.
///
/// Build it with [`BroadcastConfig::new`] and change fields with struct
/// update syntax: `BroadcastConfig { client_events: true, ..BroadcastConfig::new(..) }`.
#[derive(Clone)]
pub struct BroadcastConfig {
    /// The application id of the publish API (`/apps/{app_id}/events`).
    pub app_id: String,
    /// The public key clients connect with (`/app/{key}`).
    pub key: String,
    /// The secret that signs subscriptions and publish calls (empty:
    /// derived from the platform's app key).
    pub secret: String,
    /// Sent to clients: after this long without a message a client pings.
    /// The server pings a client silent for this long, and closes it (4201)
    /// when the pong does not come within [`BroadcastConfig::pong_timeout`].
    /// Default 30 s.
    pub activity_timeout: Duration,
    /// How long the server waits for a pong. Default 15 s.
    pub pong_timeout: Duration,
    /// How long one write to a socket may take before the connection is
    /// dropped. Default 10 s.
    pub write_timeout: Duration,
    /// Connections on this node. Default 10,000.
    pub max_connections: usize,
    /// Connections from one client address. Default 100.
    pub max_connections_per_ip: usize,
    /// Connections of one user (known from `private-user.{id}` and
    /// presence subscriptions). Default 20.
    pub max_connections_per_user: usize,
    /// The largest message a client may send, in bytes; a larger one
    /// closes the connection (4300). Also the largest `data` of a publish
    /// call. Default 10 KiB (Pusher's).
    pub max_message_size: usize,
    /// Frames queued for one connection; when it is full the client is not
    /// reading (a slow consumer) and is disconnected. Default 256.
    pub send_queue: usize,
    /// Channels one connection may be subscribed to. Default 100.
    pub max_subscriptions: usize,
    /// Members of one presence channel. Default 100 (Pusher's).
    pub max_presence_members: usize,
    /// Whether clients may send `client-*` events on private and presence
    /// channels. Default off.
    pub client_events: bool,
    /// Client events one connection may send per second; more are refused
    /// with `pusher:error` 4301 (the connection stays). Default 10
    /// (Pusher's).
    pub client_events_per_second: u32,
    /// How far a publish call's `auth_timestamp` may be from now. Default
    /// 600 s.
    pub timestamp_window: Duration,
    /// Carries events and presence between nodes. Default
    /// [`LocalBackplane`] (one node).
    pub backplane: Arc<dyn BroadcastBackplane>,
    /// Whether every resource's committed changes are broadcast on
    /// `private-{plural}` and `private-{plural}.{id}` (taken from the
    /// outbox: each write then stores an outbox row). Default on.
    pub resource_events: bool,
}

impl fmt::Debug for BroadcastConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastConfig")
            .field("app_id", &self.app_id)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field("activity_timeout", &self.activity_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("max_connections_per_user", &self.max_connections_per_user)
            .field("max_message_size", &self.max_message_size)
            .field("send_queue", &self.send_queue)
            .field("max_subscriptions", &self.max_subscriptions)
            .field("client_events", &self.client_events)
            .field("backplane", &self.backplane)
            .field("resource_events", &self.resource_events)
            .finish_non_exhaustive()
    }
}

impl BroadcastConfig {
    /// The application `app_id` with public `key` and `secret`, with the
    /// default limits.
    pub fn new(
        app_id: impl Into<String>,
        key: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        Self {
            app_id: app_id.into(),
            key: key.into(),
            secret: secret.into(),
            activity_timeout: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 100,
            max_connections_per_user: 20,
            max_message_size: 10 * 1024,
            send_queue: 256,
            max_subscriptions: 100,
            max_presence_members: 100,
            client_events: false,
            client_events_per_second: 10,
            timestamp_window: Duration::from_secs(600),
            backplane: Arc::new(LocalBackplane::new()),
            resource_events: true,
        }
    }

    /// The configuration from the environment, read once:
    /// `PLATFORM_BROADCAST_APP_ID` (default `platform`),
    /// `PLATFORM_BROADCAST_KEY` (default `platform`) and
    /// `PLATFORM_BROADCAST_SECRET`. Without a secret, one is derived from
    /// the platform's app key when the platform is built (nodes that share
    /// the app key agree, and nothing needs configuring); set it when
    /// other services sign publish calls.
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self::new(
            var("PLATFORM_BROADCAST_APP_ID", "platform"),
            var("PLATFORM_BROADCAST_KEY", "platform"),
            var("PLATFORM_BROADCAST_SECRET", ""),
        )
    }

    fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Configuration(format!("broadcasting: {what}")));
        if self.key.is_empty() || self.secret.is_empty() || self.app_id.is_empty() {
            return bad("the app id, key and secret must not be empty");
        }
        if self.secret.len() < 16 {
            return bad("the secret must be at least 16 characters long");
        }
        if self.send_queue == 0 || self.max_message_size == 0 || self.max_connections == 0 {
            return bad("send_queue, max_message_size and max_connections must be above zero");
        }
        Ok(())
    }
}

/// The broadcasting capability: add it with
/// `Platform::builder().with(Broadcasting::new(config))`.
#[derive(Debug, Clone)]
pub struct Broadcasting {
    config: BroadcastConfig,
}

impl Broadcasting {
    /// Broadcasting for the application of `config`.
    pub fn new(config: BroadcastConfig) -> Self {
        Self { config }
    }
}

impl Capability for Broadcasting {
    fn name(&self) -> &'static str {
        "broadcasting"
    }

    fn setup(&self, setup: &mut Setup) {
        let config = self.config.clone();
        setup.service(move |p: Platform| {
            let mut config = config.clone();
            if config.secret.is_empty() {
                // Derived from the app key: the same on every node.
                config.secret = p.crypto().sign(b"platform-broadcast:secret");
            }
            async move {
                config.check()?;
                let b = Broadcaster::new(config);
                b.inner
                    .config
                    .backplane
                    .start(b.inner.hub.clone() as Arc<dyn backplane::BackplaneSink>)
                    .await?;
                Ok(b)
            }
        });
        setup.service(|p: Platform| async move {
            let b = p.get::<Broadcaster>().ok_or_else(|| {
                Error::Configuration("the broadcaster service was not made".into())
            })?;
            Ok(platform_core::notify::Broadcaster(Arc::new(UserHook(
                (*b).clone(),
            ))))
        });
        // The panel's live updates (the open list, the bell), authorised
        // under the panel's path, where its session cookie reaches.
        setup.contribute(platform_admin::panel::LiveUpdates::new(
            self.config.key.clone(),
        ));
        setup.panel_routes(
            axum::Router::new().route("/broadcasting/auth", axum::routing::post(auth::authorize)),
        );
        setup.on_start(|p: Platform| async move {
            if let Some(b) = p.get::<Broadcaster>() {
                p.notifications()
                    .announce_with(Arc::new(UserHook((*b).clone())));
            }
            Ok(())
        });
        if self.config.resource_events {
            setup.on_start(|p: Platform| async move {
                let b = p.get::<Broadcaster>().ok_or_else(|| {
                    Error::Configuration("the broadcaster service was not made".into())
                })?;
                let platform = p.clone();
                p.outbox().subscribe_where(
                    resource_events::SUBSCRIBER,
                    resource_events::wanted(&p, &b),
                    move |e: platform_core::outbox::Event| {
                        let (platform, b) = (platform.clone(), b.clone());
                        async move {
                            resource_events::broadcast(&platform, &b, e)
                                .await
                                .map_err(Into::into)
                        }
                    },
                );
                Ok(())
            });
        }
        setup.routes(
            axum::Router::new()
                .route("/app/{key}", axum::routing::get(ws::upgrade))
                .route("/broadcasting/auth", axum::routing::post(auth::authorize))
                .route(
                    "/apps/{app_id}/events",
                    axum::routing::post(publish::events),
                )
                .route(
                    "/apps/{app_id}/batch_events",
                    axum::routing::post(publish::batch_events),
                ),
        );
    }
}

pub(crate) struct Inner {
    pub(crate) config: BroadcastConfig,
    pub(crate) hub: Arc<hub::Hub>,
}

/// Publishes events to channels (`platform.get::<Broadcaster>()`), on
/// every node of the back plane. Cheap to clone.
#[derive(Clone)]
pub struct Broadcaster {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Broadcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcaster")
            .field("app_id", &self.inner.config.app_id)
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

impl Broadcaster {
    /// A broadcaster for `config` (the capability makes one; a host rarely
    /// needs to).
    pub fn new(config: BroadcastConfig) -> Self {
        let hub = Arc::new(hub::Hub::new(hub::Limits {
            total: config.max_connections,
            per_ip: config.max_connections_per_ip,
            per_user: config.max_connections_per_user,
        }));
        Self {
            inner: Arc::new(Inner { config, hub }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BroadcastConfig {
        &self.inner.config
    }

    /// Sends `event` with `data` to every subscriber of `channel` (a JSON
    /// string `data` is sent as is, anything else JSON-encoded).
    pub async fn broadcast(
        &self,
        channel: &str,
        event: &str,
        data: &serde_json::Value,
    ) -> Result<()> {
        self.send(channel, event, data, None).await
    }

    /// As [`Broadcaster::broadcast`], except to the socket `socket_id` (the
    /// sender's own, as Laravel's `toOthers`).
    pub async fn broadcast_except(
        &self,
        channel: &str,
        event: &str,
        data: &serde_json::Value,
        socket_id: &str,
    ) -> Result<()> {
        self.send(channel, event, data, Some(socket_id.to_owned()))
            .await
    }

    async fn send(
        &self,
        channel: &str,
        event: &str,
        data: &serde_json::Value,
        except: Option<String>,
    ) -> Result<()> {
        if !protocol::valid_channel_name(channel) {
            return Err(Error::invalid(
                "channel",
                "invalid",
                format!("`{channel}` is not a valid channel name"),
            ));
        }
        if !protocol::valid_event_name(event) {
            return Err(Error::invalid(
                "event",
                "invalid",
                "an event name is 1 to 200 bytes",
            ));
        }
        let data = match data {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        self.inner
            .config
            .backplane
            .publish(Envelope {
                channel: channel.to_owned(),
                event: event.to_owned(),
                data,
                except,
                user_id: None,
                pii_data: None,
            })
            .await
    }

    /// Open connections on this node.
    pub fn connections(&self) -> usize {
        self.inner.hub.connections()
    }

    /// Channels with at least one subscriber on this node.
    pub fn channels(&self) -> usize {
        self.inner.hub.channel_count()
    }

    /// Subscribers of `channel` on this node.
    pub fn subscribers(&self, channel: &str) -> usize {
        self.inner.hub.subscribers(channel)
    }

    /// Users whose connections are being counted (for leak checks).
    pub fn tracked_users(&self) -> usize {
        self.inner.hub.tracked_users()
    }
}

/// The notification channel's hook: `private-user.{id}`.
#[derive(Debug)]
struct UserHook(Broadcaster);

#[async_trait]
impl BroadcastHook for UserHook {
    async fn broadcast(&self, user_id: i64, message: &BroadcastMessage) -> Result<()> {
        self.0
            .broadcast(
                &format!("private-user.{user_id}"),
                &message.event,
                &message.data,
            )
            .await
    }
}
