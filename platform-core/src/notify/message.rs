//! What notifications render for each channel: the formats and the
//! rendered messages (mail, broadcast, Slack, SMS).

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::notification::{Level, Notice};

/// What a channel asks a notification to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// [`Notification::to_database`](super::Notification::to_database).
    Database,
    /// [`Notification::to_mail`](super::Notification::to_mail).
    Mail,
    /// [`Notification::to_broadcast`](super::Notification::to_broadcast).
    Broadcast,
    /// [`Notification::to_slack`](super::Notification::to_slack).
    Slack,
    /// [`Notification::to_sms`](super::Notification::to_sms).
    Sms,
    /// [`Notification::to_data`](super::Notification::to_data).
    Data,
}

impl Format {
    /// The `to_*` method that renders it (for messages).
    pub fn method(self) -> &'static str {
        match self {
            Self::Database => "to_database",
            Self::Mail => "to_mail",
            Self::Broadcast => "to_broadcast",
            Self::Slack => "to_slack",
            Self::Sms => "to_sms",
            Self::Data => "to_data",
        }
    }
}

/// A notification rendered for one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", content = "content", rename_all = "snake_case")]
pub enum Content {
    /// For the bell.
    Database(Notice),
    /// For e-mail.
    Mail(MailMessage),
    /// For a real-time event.
    Broadcast(BroadcastMessage),
    /// For Slack.
    Slack(SlackMessage),
    /// For a text message.
    Sms(SmsMessage),
    /// As data.
    Data(serde_json::Value),
}

impl Content {
    /// Its format.
    pub fn format(&self) -> Format {
        match self {
            Self::Database(_) => Format::Database,
            Self::Mail(_) => Format::Mail,
            Self::Broadcast(_) => Format::Broadcast,
            Self::Slack(_) => Format::Slack,
            Self::Sms(_) => Format::Sms,
            Self::Data(_) => Format::Data,
        }
    }
}

/// What a channel is given: one notification rendered for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedMessage {
    /// The notification's name ([`Notification::NAME`](super::Notification::NAME)).
    pub notification: String,
    /// The id of this sending, the same on every channel, recipient and
    /// retry: receivers can use it to drop duplicates (webhooks send it as
    /// `Idempotency-Key`).
    pub id: String,
    /// The rendering.
    pub content: Content,
}

impl RenderedMessage {
    /// `content` of the notification `notification`, with a new id.
    pub fn new(notification: impl Into<String>, content: Content) -> Self {
        Self {
            notification: notification.into(),
            id: uuid::Uuid::now_v7().to_string(),
            content,
        }
    }
    /// The error a channel answers for a message of another format.
    pub fn wrong_format(&self, channel: &str, expected: Format) -> Error {
        Error::invalid(
            "format",
            "invalid",
            format!(
                "the channel `{channel}` sends {expected:?} messages, not {:?}",
                self.content.format()
            ),
        )
    }
}

/// An e-mail notification, laid out by a [`MailLayout`](super::MailLayout): a greeting,
/// lines, an optional button, closing lines and a salutation. Every part
/// is plain text (the layout escapes it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MailMessage {
    /// The subject (line breaks become spaces).
    pub subject: String,
    /// How it looks (`danger` colours the button red).
    #[serde(default)]
    pub level: Level,
    /// The greeting (`Hello Ada,`); the layout's default when `None`.
    #[serde(default)]
    pub greeting: Option<String>,
    /// The paragraphs before the button.
    #[serde(default)]
    pub intro: Vec<String>,
    /// The button: its label and link.
    #[serde(default)]
    pub action: Option<(String, String)>,
    /// The paragraphs after the button.
    #[serde(default)]
    pub outro: Vec<String>,
    /// The closing (`Regards, Platform`); the layout's default when `None`.
    #[serde(default)]
    pub salutation: Option<String>,
}

impl MailMessage {
    /// A message with this subject.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            ..Self::default()
        }
    }
    /// Sets the greeting.
    #[must_use]
    pub fn greeting(mut self, greeting: impl Into<String>) -> Self {
        self.greeting = Some(greeting.into());
        self
    }
    /// Adds a paragraph: before the button if none was set yet, after it
    /// otherwise.
    #[must_use]
    pub fn line(mut self, line: impl Into<String>) -> Self {
        if self.action.is_none() {
            self.intro.push(line.into());
        } else {
            self.outro.push(line.into());
        }
        self
    }
    /// Sets the button.
    #[must_use]
    pub fn action(mut self, label: impl Into<String>, url: impl Into<String>) -> Self {
        self.action = Some((label.into(), url.into()));
        self
    }
    /// Sets the level.
    #[must_use]
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
    /// Sets the closing.
    #[must_use]
    pub fn salutation(mut self, salutation: impl Into<String>) -> Self {
        self.salutation = Some(salutation.into());
        self
    }
}

/// A real-time event for the broadcast channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastMessage {
    /// The event's name (default: the notification's).
    pub event: String,
    /// Its data.
    pub data: serde_json::Value,
}

/// A Slack message: text, and optionally Block Kit blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlackMessage {
    /// The text (Slack's `mrkdwn`; the fallback when blocks are given).
    pub text: String,
    /// Block Kit blocks, sent as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<serde_json::Value>,
}

impl SlackMessage {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            blocks: None,
        }
    }
    /// Adds Block Kit blocks (a JSON array).
    #[must_use]
    pub fn blocks(mut self, blocks: serde_json::Value) -> Self {
        self.blocks = Some(blocks);
        self
    }
}

/// A text message's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsMessage {
    /// The text (at most [`MAX_SMS_CHARS`](super::MAX_SMS_CHARS) characters).
    pub text: String,
}

impl SmsMessage {
    /// A message with this text.
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }
}
