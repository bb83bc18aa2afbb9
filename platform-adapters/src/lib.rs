//! # platform-adapters
//!
//! Back ends for the adapter traits of `platform-core`, one feature each,
//! none on by default: a build pulls in only the clients it uses. Each
//! adapter maps its failures into [`platform_core::Error`]
//! (`Unavailable` when its server cannot be reached, `Backend` when it
//! refuses) and passes the trait's conformance suite.
//!
//! | feature     | default | what it adds |
//! |-------------|---------|--------------|
//! | `mail-smtp` | no      | [`mail::SmtpMailer`]: SMTP delivery (lettre, rustls, pooled connections) |
//! | `cache-redis` | no    | [`redis::RedisStore`] (L2 cache), [`redis::RedisBackplane`] (pub/sub between nodes), [`redis::RedisScaleOut`] (both under a platform) |
//! | `session-redis` | no  | `redis::RedisSessionStore`: sessions on Redis (with `cache-redis`) |
//! | `broadcast-redis` | no | `redis::RedisBroadcastBackplane`: `platform-broadcast`'s events and presence shared by several nodes (with `cache-redis`) |
//! | `http` | no | `http::HttpClient`: outgoing HTTP(S) with a timeout, checked redirects and an SSRF policy |
//! | `channel-slack` | no | `channel::SlackChannel` (Slack incoming webhook), `channel::WebhookChannel` (generic JSON webhook) |
//! | `channel-sms` | no | `channel::HttpSmsProvider`: text messages through an HTTP API (JSON or Twilio) |
//! | `storage-s3` | no | `storage::S3Storage`: the `Storage` trait on Amazon S3 and S3-compatible servers (object_store; streamed multipart uploads) |
//!
//! ```no_run
//! # #[cfg(feature = "mail-smtp")]
//! # async fn f() -> platform_core::Result<()> {
//! use std::sync::Arc;
//! use platform_adapters::mail::SmtpMailer;
//!
//! let mailer = SmtpMailer::from_url(
//!     "smtp://app:secret@mail.example.com:587?tls=starttls",
//!     "Platform <noreply@example.com>",
//! )?;
//! let platform = platform_core::Platform::builder()
//!     .mailer(Arc::new(mailer))
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "channel-slack", feature = "channel-sms"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "channel-slack", feature = "channel-sms")))
)]
pub mod channel;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod mail;
#[cfg(feature = "cache-redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache-redis")))]
pub mod redis;
#[cfg(feature = "storage-s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-s3")))]
pub mod storage;
