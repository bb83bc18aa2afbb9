//! The Pusher Channels protocol 7: error codes, frames, names and signatures.

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// The protocol versions the server speaks (pusher-js 7 and 8 send 7).
pub const PROTOCOL_VERSIONS: std::ops::RangeInclusive<u32> = 5..=7;

/// The `pusher:error` codes the server sends (and the close codes it uses).
///
/// 4000-4099: the client must not reconnect; 4100-4199: reconnect after a
/// back-off; 4200-4299: reconnect at once; 4300-4399: other errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 4001: no application has this key.
    AppNotFound,
    /// 4005: the path is not `/app/{key}`.
    PathNotFound,
    /// 4006: the `protocol` query parameter is not a number.
    InvalidVersion,
    /// 4007: a protocol version the server does not speak.
    UnsupportedProtocol,
    /// 4008: no `protocol` query parameter.
    NoProtocol,
    /// 4009: a subscription or client event without a valid signature or
    /// permission.
    Unauthorized,
    /// 4100: over a connection or subscription limit.
    OverCapacity,
    /// 4200: reconnect (the server is shutting down).
    Reconnect,
    /// 4201: the client did not answer a `pusher:ping` in time.
    PongNotReceived,
    /// 4202: closed after inactivity.
    Inactive,
    /// 4300: a frame the server cannot read: not JSON, too large, or an
    /// unknown event.
    BadMessage,
    /// 4301: too many client events, or the client could not keep up with
    /// what it was sent (slow consumer).
    RateLimited,
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Self::AppNotFound => 4001,
            Self::PathNotFound => 4005,
            Self::InvalidVersion => 4006,
            Self::UnsupportedProtocol => 4007,
            Self::NoProtocol => 4008,
            Self::Unauthorized => 4009,
            Self::OverCapacity => 4100,
            Self::Reconnect => 4200,
            Self::PongNotReceived => 4201,
            Self::Inactive => 4202,
            Self::BadMessage => 4300,
            Self::RateLimited => 4301,
        }
    }
}

/// A `pusher:error` frame.
pub(crate) fn error_frame(code: ErrorCode, message: &str) -> String {
    serde_json::json!({
        "event": "pusher:error",
        "data": { "code": code.code(), "message": message },
    })
    .to_string()
}

/// A server-to-client event frame; `data` is sent as a JSON string, as
/// the protocol has it.
pub(crate) fn event_frame(event: &str, channel: Option<&str>, data: &str) -> String {
    let mut v = serde_json::json!({ "event": event, "data": data });
    if let Some(c) = channel {
        v["channel"] = c.into();
    }
    v.to_string()
}

/// A client's frame.
#[derive(Debug, Deserialize)]
pub(crate) struct ClientFrame {
    pub(crate) event: String,
    #[serde(default)]
    pub(crate) data: serde_json::Value,
    #[serde(default)]
    pub(crate) channel: Option<String>,
}

/// The data of `pusher:subscribe`.
#[derive(Debug, Deserialize)]
pub(crate) struct SubscribeData {
    pub(crate) channel: String,
    #[serde(default)]
    pub(crate) auth: Option<String>,
    #[serde(default)]
    pub(crate) channel_data: Option<String>,
}

/// The `channel_data` the authoriser signs into a private channel's
/// subscription when the subscriber may see personal data.
pub(crate) const PII_CHANNEL_DATA: &str = r#"{"pii":true}"#;

/// Whether a private channel's signed `channel_data` grants personal data.
pub(crate) fn grants_pii(channel_data: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(channel_data)
        .is_ok_and(|v| v.get("pii") == Some(&serde_json::Value::Bool(true)))
}

/// The kind of a channel, from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// Anyone may subscribe.
    Public,
    /// `private-`: a signature from `/broadcasting/auth` is needed.
    Private,
    /// `presence-`: a signature over the member's `channel_data` too.
    Presence,
}

impl ChannelKind {
    /// The kind of `channel`.
    pub fn of(channel: &str) -> Self {
        if channel.starts_with("presence-") {
            Self::Presence
        } else if channel.starts_with("private-") {
            Self::Private
        } else {
            Self::Public
        }
    }
}

/// Whether `name` is a valid channel name: 1 to 200 of
/// `A-Z a-z 0-9 _ - = @ , . ;`, and not the `private-encrypted-` kind
/// (end-to-end encrypted channels are not supported).
pub fn valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with("private-encrypted-")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b))
}

/// Whether `name` is a valid event name (1 to 200 bytes).
pub(crate) fn valid_event_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200
}

/// `HMAC-SHA256(secret, text)` in lower-case hex.
pub fn sign(secret: &str, text: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `auth` of a subscription: `key:HMAC-SHA256(secret,
/// socket_id:channel[:channel_data])`.
pub fn channel_auth(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    let text = match channel_data {
        Some(d) => format!("{socket_id}:{channel}:{d}"),
        None => format!("{socket_id}:{channel}"),
    };
    format!("{key}:{}", sign(secret, &text))
}

/// Compares two strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A new socket id: two random numbers joined by a dot (`1234.5678`).
pub(crate) fn new_socket_id() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the operating system's random generator failed");
    let a = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) % 1_000_000_000;
    let c = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) % 1_000_000_000;
    format!("{}.{}", a.max(1), c.max(1))
}

/// Whether `id` has the socket id form `digits.digits`.
pub(crate) fn valid_socket_id(id: &str) -> bool {
    id.len() <= 32
        && id.split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_protocol_example() {
        // The example of Pusher's authentication signature documentation.
        assert_eq!(
            channel_auth(
                "278d425bdf160c739803",
                "7ad3773142a6692b25b8",
                "1234.1234",
                "private-foobar",
                None
            ),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn names_and_ids() {
        assert!(valid_channel_name("private-invoices.42"));
        assert!(!valid_channel_name("bad channel"));
        assert!(!valid_channel_name(&"a".repeat(201)));
        assert!(!valid_channel_name("private-encrypted-x"));
        assert!(valid_socket_id(&new_socket_id()));
        assert!(!valid_socket_id("1.2.3"));
        assert!(!valid_socket_id("a.1"));
        assert_eq!(ChannelKind::of("presence-room"), ChannelKind::Presence);
    }
}
