//! Outgoing e-mail: the [`Mailer`] adapter trait, a [`LogMailer`] that only
//! logs, and a [`MemoryMailer`] that keeps what it was given (for tests).
//!
//! Real delivery lives in `platform-adapters` (feature `mail-smtp`:
//! `SmtpMailer`). The platform holds one mailer as `Arc<dyn Mailer>`
//! ([`crate::Platform::mailer`]); it defaults to [`LogMailer`].
//!
//! ## Contract (checked by `mail::conformance`, under the `testing` feature)
//! - [`Mailer::send`] first checks the mail with [`Mail::validate`] and
//!   answers [`Error::Validation`] (field `to` or `subject`) without sending
//!   anything when the recipient is not one plain address or a header line
//!   holds a line break (header injection).
//! - A mailer that cannot reach its server answers [`Error::Unavailable`];
//!   one whose server refuses the mail answers [`Error::Backend`]. Neither
//!   message contains a password.
//! - Nothing logs a mail's body: password reset and verification links are
//!   secrets.

use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{Error, FieldErrors, Result};

/// One e-mail to one recipient: a plain-text body and, optionally, an HTML
/// alternative.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient's address (`ada@example.com`).
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// An HTML alternative of the body.
    pub html: Option<String>,
}

impl fmt::Debug for Mail {
    /// Shows the recipient and subject only: bodies carry secret links.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .field("html", &self.html.as_ref().map(String::len))
            .finish()
    }
}

/// Longest accepted subject, in characters.
pub const MAX_SUBJECT_LEN: usize = 998;

impl Mail {
    /// A plain-text mail.
    pub fn new(to: impl Into<String>, subject: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            subject: subject.into(),
            text: text.into(),
            html: None,
        }
    }

    /// Adds an HTML alternative.
    #[must_use]
    pub fn with_html(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    /// Checks what every mailer checks before sending: `to` is one plain
    /// address (`local@domain`, no display name, no spaces, no line
    /// breaks) and the subject has no line break and at most
    /// [`MAX_SUBJECT_LEN`] characters.
    pub fn validate(&self) -> Result<()> {
        let mut errors = FieldErrors::default();
        if !is_plain_address(&self.to) {
            errors.add("to", "invalid", "must be one e-mail address");
        }
        if self.subject.chars().any(|c| c == '\r' || c == '\n') {
            errors.add("subject", "invalid", "must not contain line breaks");
        } else if self.subject.chars().count() > MAX_SUBJECT_LEN {
            errors.add(
                "subject",
                "too_long",
                format!("must be at most {MAX_SUBJECT_LEN} characters"),
            );
        }
        errors.into_result()
    }
}

fn is_plain_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    a.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
        && !local.contains('@')
}

/// Sends e-mail. Implementations are held as `Arc<dyn Mailer>`.
///
/// See the [module docs](self) for the contract every mailer keeps.
#[async_trait]
pub trait Mailer: Send + Sync + fmt::Debug {
    /// Sends `mail`, or says why not.
    async fn send(&self, mail: &Mail) -> Result<()>;
}

/// A mailer that delivers nothing and logs the recipient and subject (never
/// the body) at `info`. The default, so a fresh install works without a
/// mail server; it still validates each mail like a real mailer.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: &Mail) -> Result<()> {
        mail.validate()?;
        tracing::info!(
            to = %mail.to,
            subject = %mail.subject,
            "mail not delivered (LogMailer): configure a mailer to send it"
        );
        Ok(())
    }
}

/// A mailer that keeps every mail it accepts, in order, for tests.
#[derive(Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<Mail>>,
}

impl fmt::Debug for MemoryMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryMailer")
            .field("sent", &self.sent.lock().map(|s| s.len()).unwrap_or(0))
            .finish()
    }
}

impl MemoryMailer {
    /// An empty mailbox.
    pub fn new() -> Self {
        Self::default()
    }
    /// Every mail accepted so far, oldest first.
    pub fn sent(&self) -> Vec<Mail> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
    /// The most recent mail to `to`, if any.
    pub fn last_to(&self, to: &str) -> Option<Mail> {
        self.sent
            .lock()
            .ok()?
            .iter()
            .rev()
            .find(|m| m.to.eq_ignore_ascii_case(to))
            .cloned()
    }
    /// Forgets every mail.
    pub fn clear(&self) {
        if let Ok(mut s) = self.sent.lock() {
            s.clear();
        }
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, mail: &Mail) -> Result<()> {
        mail.validate()?;
        self.sent
            .lock()
            .map_err(|_| Error::Backend {
                backend: "memory mailer",
                source: "the mailbox lock is poisoned".into(),
            })?
            .push(mail.clone());
        Ok(())
    }
}

/// Conformance checks every [`Mailer`] must pass. They only observe what
/// `send` answers; an adapter's own tests check delivery.
#[cfg(any(test, feature = "testing"))]
pub mod conformance {
    use super::*;

    /// Runs every check against `mailer`, which must accept mail to
    /// `example.com` addresses.
    pub async fn run_all(mailer: &dyn Mailer) {
        sends_plain_text(mailer).await;
        sends_html_alternative(mailer).await;
        sends_unicode(mailer).await;
        refuses_bad_recipients(mailer).await;
        refuses_header_injection(mailer).await;
    }

    /// A plain-text mail is accepted.
    pub async fn sends_plain_text(mailer: &dyn Mailer) {
        mailer
            .send(&Mail::new(
                "conformance@example.com",
                "Plain text",
                "Hello,\nthis is a test.\n",
            ))
            .await
            .expect("a plain-text mail is accepted");
    }

    /// A mail with an HTML alternative is accepted.
    pub async fn sends_html_alternative(mailer: &dyn Mailer) {
        mailer
            .send(
                &Mail::new("conformance@example.com", "With HTML", "Hello")
                    .with_html("<p>Hello</p>"),
            )
            .await
            .expect("a mail with an HTML part is accepted");
    }

    /// Non-ASCII subjects and bodies are accepted.
    pub async fn sends_unicode(mailer: &dyn Mailer) {
        mailer
            .send(&Mail::new(
                "conformance@example.com",
                "Grüße — 你好",
                "Ünïcödé body ✓",
            ))
            .await
            .expect("a unicode mail is accepted");
    }

    /// A recipient that is not one plain address is a validation error on
    /// `to`.
    pub async fn refuses_bad_recipients(mailer: &dyn Mailer) {
        for to in [
            "",
            "not an address",
            "a@example.com, b@example.com",
            "x@example.com\r\nBcc: victim@example.com",
        ] {
            let err = mailer
                .send(&Mail::new(to, "Hi", "Hi"))
                .await
                .expect_err("a bad recipient is refused");
            assert!(
                matches!(&err, Error::Validation(e) if e.has("to")),
                "recipient {to:?}: {err:?}"
            );
        }
    }

    /// A subject with a line break is a validation error on `subject`.
    pub async fn refuses_header_injection(mailer: &dyn Mailer) {
        let err = mailer
            .send(&Mail::new(
                "conformance@example.com",
                "Hi\r\nBcc: victim@example.com",
                "Hi",
            ))
            .await
            .expect_err("a subject with a line break is refused");
        assert!(
            matches!(&err, Error::Validation(e) if e.has("subject")),
            "{err:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_mailer_conforms_and_keeps_mail() {
        let m = MemoryMailer::new();
        conformance::run_all(&m).await;
        assert_eq!(m.sent().len(), 3, "only the valid mails are kept");
        assert_eq!(
            m.last_to("CONFORMANCE@example.com").unwrap().subject,
            "Grüße — 你好"
        );
        m.clear();
        assert!(m.sent().is_empty());
    }

    #[tokio::test]
    async fn log_mailer_conforms() {
        conformance::run_all(&LogMailer).await;
    }

    #[test]
    fn debug_hides_bodies() {
        let m = Mail::new("a@example.com", "Reset", "https://x/reset/SECRET")
            .with_html("<a href=\"https://x/reset/SECRET\">reset</a>");
        let d = format!("{m:?}");
        assert!(!d.contains("SECRET"), "{d}");
        assert!(d.contains("a@example.com"));
    }
}
