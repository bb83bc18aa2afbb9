//! Notification channels and SMS providers over HTTP: Slack incoming
//! webhooks and generic JSON webhooks (`channel-slack`), an HTTP SMS
//! provider (`channel-sms`). Every one sends through an
//! [`HttpClient`](crate::http::HttpClient) whose
//! [`HttpPolicy`](crate::http::HttpPolicy) refuses private and loopback
//! addresses unless configured otherwise.

#[cfg(feature = "channel-slack")]
mod slack;
#[cfg(feature = "channel-sms")]
mod sms;

#[cfg(feature = "channel-slack")]
pub use slack::{SlackChannel, WebhookChannel};
#[cfg(feature = "channel-sms")]
pub use sms::{HttpSmsProvider, SmsWire};
