//! Slack incoming webhooks and generic JSON webhooks.

use std::fmt;

use async_trait::async_trait;
use hmac::Mac;
use hmac::digest::KeyInit;
use platform_core::error::{Error, Result};
use platform_core::notify::{Content, Format, NotificationChannel, Recipient, RenderedMessage};

use crate::http::{HttpClient, HttpPolicy, HttpRequest, validate_url};

/// Posts [`Notification::to_slack`](platform_core::notify::Notification::to_slack)
/// messages to a Slack incoming webhook (`https://hooks.slack.com/services/...`):
/// `{"text": .., "blocks": ..}`. Every recipient's message goes to the
/// webhook's channel.
#[derive(Clone)]
pub struct SlackChannel {
    name: String,
    url: String,
    client: HttpClient,
}

impl fmt::Debug for SlackChannel {
    /// Never shows the URL (its path is the secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackChannel")
            .field("name", &self.name)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl SlackChannel {
    /// The channel `slack` posting to `webhook_url`, under the default
    /// [`HttpPolicy`] (public addresses only, 10 s, 3 redirects). An
    /// error when the URL is not an http(s) URL.
    pub fn new(webhook_url: impl Into<String>) -> Result<Self> {
        let url = webhook_url.into();
        validate_url(&url)?;
        Ok(Self {
            name: "slack".into(),
            url,
            client: HttpClient::new(HttpPolicy::new()),
        })
    }
    /// The webhook URL from the environment variable `var`
    /// (`PLATFORM_SLACK_WEBHOOK_URL`, say); an error naming it when unset.
    pub fn from_env(var: &str) -> Result<Self> {
        let url = std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| Error::Configuration(format!("{var} is not set")))?;
        Self::new(url)
    }
    /// Renames it (two workspaces, two channels).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Sends through `client` (its policy, timeout and redirect limit).
    #[must_use]
    pub fn client(mut self, client: HttpClient) -> Self {
        self.client = client;
        self
    }
}

#[async_trait]
impl NotificationChannel for SlackChannel {
    fn name(&self) -> &str {
        &self.name
    }
    fn format(&self) -> Format {
        Format::Slack
    }
    async fn send(&self, _to: &Recipient, message: &RenderedMessage) -> Result<()> {
        let Content::Slack(slack) = &message.content else {
            return Err(message.wrong_format(&self.name, Format::Slack));
        };
        let mut body = serde_json::json!({ "text": slack.text });
        if let Some(blocks) = &slack.blocks {
            body["blocks"] = blocks.clone();
        }
        self.client
            .send(HttpRequest::post_json(&self.url, &body))
            .await?
            .error_for_status("slack webhook")?;
        Ok(())
    }
}

/// Posts [`Notification::to_data`](platform_core::notify::Notification::to_data)
/// as JSON to a URL:
///
/// ```json
/// {"id": "0190…", "notification": "invoice_paid",
///  "recipient": {"user_id": 7}, "data": {…}}
/// ```
///
/// with the headers `Idempotency-Key: <id>` (the same on every retry) and,
/// when a secret is set, `X-Platform-Signature: sha256=<hex HMAC-SHA256 of
/// the body>`.
#[derive(Clone)]
pub struct WebhookChannel {
    name: String,
    url: String,
    secret: Option<Vec<u8>>,
    client: HttpClient,
}

impl fmt::Debug for WebhookChannel {
    /// Never shows the URL or the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("name", &self.name)
            .field("signed", &self.secret.is_some())
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl WebhookChannel {
    /// The channel `webhook` posting to `url` under the default
    /// [`HttpPolicy`]; an error when the URL is not an http(s) URL.
    pub fn new(url: impl Into<String>) -> Result<Self> {
        let url = url.into();
        validate_url(&url)?;
        Ok(Self {
            name: "webhook".into(),
            url,
            secret: None,
            client: HttpClient::new(HttpPolicy::new()),
        })
    }
    /// Renames it.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Signs each body with `secret` (`X-Platform-Signature`).
    #[must_use]
    pub fn secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }
    /// Sends through `client`.
    #[must_use]
    pub fn client(mut self, client: HttpClient) -> Self {
        self.client = client;
        self
    }
}

/// The hex HMAC-SHA256 of `body` under `secret`.
fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    platform_core::crypto::hex(&mac.finalize().into_bytes())
}

#[async_trait]
impl NotificationChannel for WebhookChannel {
    fn name(&self) -> &str {
        &self.name
    }
    fn format(&self) -> Format {
        Format::Data
    }
    async fn send(&self, to: &Recipient, message: &RenderedMessage) -> Result<()> {
        let Content::Data(data) = &message.content else {
            return Err(message.wrong_format(&self.name, Format::Data));
        };
        let body = serde_json::json!({
            "id": message.id,
            "notification": message.notification,
            "recipient": { "user_id": to.user_id },
            "data": data,
        })
        .to_string();
        let mut request = HttpRequest::new(hyper::Method::POST, &self.url)
            .header_str("content-type", "application/json")
            .header_str("idempotency-key", &message.id);
        if let Some(secret) = &self.secret {
            request = request.header_str(
                "x-platform-signature",
                &format!("sha256={}", sign(secret, body.as_bytes())),
            );
        }
        self.client
            .send(request.body(body))
            .await?
            .error_for_status("webhook")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_fail_at_construction_and_debug_hides_them() {
        assert!(SlackChannel::new("gopher://x").is_err());
        assert!(WebhookChannel::new("").is_err());
        let s = SlackChannel::new("https://hooks.slack.com/services/T/B/SECRET").unwrap();
        assert!(!format!("{s:?}").contains("SECRET"));
        let w = WebhookChannel::new("https://example.com/hook?token=SECRET")
            .unwrap()
            .secret("KEY");
        assert!(!format!("{w:?}").contains("SECRET") && !format!("{w:?}").contains("KEY"));
    }

    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
