//! Text messages: the SMS type, providers and the SMS channel.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::message::{Content, Format, RenderedMessage};
use super::{NotificationChannel, Recipient, unreachable};
use crate::error::{Error, FieldErrors, Result};
use crate::notification::is_phone_number;

/// Longest accepted text message, in characters (ten concatenated parts).
pub const MAX_SMS_CHARS: usize = 1600;

/// One text message to one phone number.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sms {
    /// The number, E.164 (`+4930123456`).
    pub to: String,
    /// The text.
    pub text: String,
}

impl fmt::Debug for Sms {
    /// Shows the length, not the text (it may hold a one-time code).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sms")
            .field("to", &self.to)
            .field(
                "text",
                &format_args!("<{} chars>", self.text.chars().count()),
            )
            .finish()
    }
}

impl Sms {
    /// A message.
    pub fn new(to: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            text: text.into(),
        }
    }
    /// Checks what every provider checks before sending: `to` is an
    /// E.164 number and the text has 1 to [`MAX_SMS_CHARS`] characters.
    pub fn validate(&self) -> Result<()> {
        let mut errors = FieldErrors::default();
        if !is_phone_number(&self.to) {
            errors.add(
                "to",
                "invalid",
                "must be a phone number in international format (+ and 8 to 15 digits)",
            );
        }
        let n = self.text.chars().count();
        if self.text.trim().is_empty() {
            errors.add("text", "required", "is required");
        } else if n > MAX_SMS_CHARS {
            errors.add(
                "text",
                "too_long",
                format!("must be at most {MAX_SMS_CHARS} characters"),
            );
        }
        errors.into_result()
    }
}

/// Sends text messages (an HTTP API in `platform-adapters`, feature
/// `channel-sms`). Held as `Arc<dyn SmsProvider>`.
///
/// Contract (checked by `testing::sms`): [`SmsProvider::send`] first
/// checks the message with [`Sms::validate`] and answers
/// [`Error::Validation`] without sending anything; a provider it cannot
/// reach is [`Error::Unavailable`], one that refuses is
/// [`Error::Backend`] (retried) or [`Error::Configuration`] (not); no
/// error shows a credential.
#[async_trait]
pub trait SmsProvider: Send + Sync + fmt::Debug + 'static {
    /// Its name, for logs (`twilio`, `http`).
    fn name(&self) -> &str;
    /// Sends `sms`.
    async fn send(&self, sms: &Sms) -> Result<()>;
}

/// Keeps every text message it accepts, for tests.
#[derive(Debug, Default, Clone)]
pub struct MemorySmsProvider {
    sent: Arc<Mutex<Vec<Sms>>>,
}

impl MemorySmsProvider {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }
    /// Every message accepted so far, oldest first.
    pub fn sent(&self) -> Vec<Sms> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl SmsProvider for MemorySmsProvider {
    fn name(&self) -> &str {
        "memory"
    }
    async fn send(&self, sms: &Sms) -> Result<()> {
        sms.validate()?;
        self.sent
            .lock()
            .map_err(|_| Error::Backend {
                backend: "memory sms",
                source: "the lock is poisoned".into(),
            })?
            .push(sms.clone());
        Ok(())
    }
}

/// Logs the recipient and length of each text message (never the text)
/// and delivers nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSmsProvider;

#[async_trait]
impl SmsProvider for LogSmsProvider {
    fn name(&self) -> &str {
        "log"
    }
    async fn send(&self, sms: &Sms) -> Result<()> {
        sms.validate()?;
        tracing::info!(
            to = %sms.to,
            chars = sms.text.chars().count(),
            "text message not delivered (LogSmsProvider): configure a provider to send it"
        );
        Ok(())
    }
}

/// Text messages through an [`SmsProvider`], to the recipient's phone
/// number.
#[derive(Debug, Clone)]
pub struct SmsChannel {
    name: String,
    provider: Arc<dyn SmsProvider>,
}

impl SmsChannel {
    /// The channel `sms` over `provider`.
    pub fn new(provider: Arc<dyn SmsProvider>) -> Self {
        Self {
            name: "sms".into(),
            provider,
        }
    }
    /// Renames it (two providers, two channels).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

#[async_trait]
impl NotificationChannel for SmsChannel {
    fn name(&self) -> &str {
        &self.name
    }
    fn format(&self) -> Format {
        Format::Sms
    }
    fn can_reach(&self, to: &Recipient) -> bool {
        to.phone.as_deref().is_some_and(|p| !p.is_empty())
    }
    async fn send(&self, to: &Recipient, message: &RenderedMessage) -> Result<()> {
        let Content::Sms(sms) = &message.content else {
            return Err(message.wrong_format(&self.name, Format::Sms));
        };
        let Some(phone) = to.phone.as_deref().filter(|p| !p.is_empty()) else {
            return Err(unreachable(&self.name, to, "phone number"));
        };
        self.provider.send(&Sms::new(phone, sms.text.clone())).await
    }
}
