//! SMTP delivery with lettre.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use platform_core::error::{Error, Result};
use platform_core::mail::{Mail, Mailer};

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (`tls=none`): only for a server on the same host or a
    /// test capture server. Default port 25.
    None,
    /// Plain connection upgraded with STARTTLS, which must succeed
    /// (`tls=starttls`, the default). Default port 587.
    StartTls,
    /// TLS from the first byte (`tls=tls`, or the `smtps://` scheme).
    /// Default port 465.
    Tls,
}

impl SmtpTls {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "starttls" => Some(Self::StartTls),
            "tls" => Some(Self::Tls),
            _ => None,
        }
    }
    const fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::StartTls => 587,
            Self::Tls => 465,
        }
    }
}

/// A [`Mailer`] that delivers through an SMTP server, over a pool of
/// connections. Its `Debug` form never shows the password, and neither do
/// its errors.
///
/// Failures map to [`Error::Unavailable`] when the server cannot be reached
/// or answers "try later" (4xx), and to [`Error::Backend`] when it refuses
/// the mail (5xx), the TLS handshake fails, or the reply is garbled.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: Arc<Transport>,
    from: Mailbox,
    host: String,
    port: u16,
    tls: SmtpTls,
    user: Option<String>,
    password: Option<String>,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// The pooled transport, with the runtime it was made in: dropping the
/// pool spawns a task, so it is dropped inside that runtime even when the
/// last mailer goes away outside of it.
struct Transport {
    pool: Option<AsyncSmtpTransport<Tokio1Executor>>,
    runtime: tokio::runtime::Handle,
}

impl Drop for Transport {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                drop(pool);
            } else {
                let _guard = self.runtime.enter();
                drop(pool);
            }
        }
    }
}

fn config(message: impl Into<String>) -> Error {
    Error::Configuration(message.into())
}

/// Percent-decodes a user name or password of a URL.
fn decode(part: &str) -> Result<String> {
    let bad = || config("SMTP URL: bad percent-encoding in the user or password");
    let b = part.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

impl SmtpMailer {
    /// A mailer for `url`, sending as `from` (`noreply@example.com` or
    /// `Name <noreply@example.com>`).
    ///
    /// The URL is `smtp://[user:password@]host[:port][?tls=none|starttls|tls][&timeout=seconds]`
    /// (`smtps://` means `tls=tls`). User and password are
    /// percent-decoded. Without `tls` the connection must upgrade with
    /// STARTTLS; without a port it is 25, 587 or 465 by `tls`. Each SMTP
    /// command times out after `timeout` seconds (default 10). Nothing is
    /// connected until the first mail. A malformed URL is
    /// [`Error::Configuration`], whose message never holds the password.
    ///
    /// Call it inside a Tokio runtime (the connection pool runs there);
    /// outside one it is [`Error::Configuration`].
    pub fn from_url(url: &str, from: &str) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| config("SmtpMailer::from_url must be called inside a Tokio runtime"))?;
        let parsed = url::Url::parse(url).map_err(|e| config(format!("SMTP URL: {e}")))?;
        let mut tls = match parsed.scheme() {
            "smtp" => SmtpTls::StartTls,
            "smtps" => SmtpTls::Tls,
            other => {
                return Err(config(format!(
                    "SMTP URL must start with smtp:// or smtps://, not `{other}://`"
                )));
            }
        };
        let mut timeout = Duration::from_secs(10);
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "tls" => {
                    tls = SmtpTls::parse(&v).ok_or_else(|| {
                        config(format!(
                            "SMTP URL: tls must be none, starttls or tls, not `{v}`"
                        ))
                    })?;
                }
                "timeout" => {
                    let secs: u64 = v.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        config("SMTP URL: timeout must be a positive number of seconds")
                    })?;
                    timeout = Duration::from_secs(secs);
                }
                other => {
                    return Err(config(format!("SMTP URL: unknown parameter `{other}`")));
                }
            }
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| config("SMTP URL: a host is required"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed.port().unwrap_or(tls.default_port());
        let user = match parsed.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = parsed.password().map(decode).transpose()?;
        let from: Mailbox = from
            .parse()
            .map_err(|_| config(format!("the sender `{from}` is not a valid mailbox")))?;

        let tls_params = || {
            TlsParameters::new(host.clone())
                .map_err(|e| config(format!("SMTP TLS settings for {host}: {e}")))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(timeout))
            .tls(match tls {
                SmtpTls::None => Tls::None,
                SmtpTls::StartTls => Tls::Required(tls_params()?),
                SmtpTls::Tls => Tls::Wrapper(tls_params()?),
            });
        if let Some(u) = &user {
            builder = builder.credentials(Credentials::new(
                u.clone(),
                password.clone().unwrap_or_default(),
            ));
        }
        Ok(Self {
            transport: Arc::new(Transport {
                pool: Some(builder.build()),
                runtime,
            }),
            from,
            host,
            port,
            tls,
            user,
            password,
        })
    }

    /// The server's host name.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// How the connection is secured.
    pub fn tls(&self) -> SmtpTls {
        self.tls
    }

    /// The error's text with the password, if it appears, masked.
    fn scrub(&self, text: String) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => text.replace(p.as_str(), "***"),
            _ => text,
        }
    }

    fn map_error(&self, e: &lettre::transport::smtp::Error) -> Error {
        let text = self.scrub(format!("{}:{}: {}", self.host, self.port, error_chain(e)));
        if e.is_permanent() || e.is_client() || e.is_response() || e.is_tls() {
            Error::Backend {
                backend: "smtp",
                source: text.into(),
            }
        } else {
            Error::Unavailable {
                backend: "smtp",
                source: text.into(),
            }
        }
    }

    fn message(&self, mail: &Mail) -> Result<Message> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| Error::invalid("to", "invalid", "must be one e-mail address"))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone());
        let built = match &mail.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                html.clone(),
            )),
            None => builder
                .header(ContentType::TEXT_PLAIN)
                .body(mail.text.clone()),
        };
        built.map_err(|e| Error::Backend {
            backend: "smtp",
            source: format!("cannot build the message: {e}").into(),
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<()> {
        mail.validate()?;
        let message = self.message(mail)?;
        let pool = self
            .transport
            .pool
            .as_ref()
            .ok_or_else(|| Error::Unavailable {
                backend: "smtp",
                source: "the mailer is shut down".into(),
            })?;
        pool.send(message).await.map_err(|e| self.map_error(&e))?;
        tracing::debug!(to = %mail.to, subject = %mail.subject, "mail sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls() {
        let m = SmtpMailer::from_url(
            "smtp://app%40corp:p%40ss%20wo+rd@mail.example.com?tls=none",
            "Platform <noreply@example.com>",
        )
        .unwrap();
        assert_eq!(
            (m.host(), m.port(), m.tls()),
            ("mail.example.com", 25, SmtpTls::None)
        );
        assert_eq!(m.user.as_deref(), Some("app@corp"));
        assert_eq!(m.password.as_deref(), Some("p@ss wo+rd"));
        let d = format!("{m:?}");
        assert!(!d.contains("p@ss") && !d.contains("ss%20word"), "{d}");

        let m = SmtpMailer::from_url("smtp://mail.example.com", "a@example.com").unwrap();
        assert_eq!((m.port(), m.tls()), (587, SmtpTls::StartTls));
        let m = SmtpMailer::from_url("smtps://mail.example.com", "a@example.com").unwrap();
        assert_eq!((m.port(), m.tls()), (465, SmtpTls::Tls));
        let m =
            SmtpMailer::from_url("smtp://[::1]:2525?tls=tls&timeout=3", "a@example.com").unwrap();
        assert_eq!((m.host(), m.port(), m.tls()), ("::1", 2525, SmtpTls::Tls));
    }

    #[tokio::test]
    async fn bad_urls_are_configuration_errors_without_the_password() {
        for url in [
            "http://u:hunter2@mail.example.com",
            "smtp://u:hunter2@mail.example.com?tls=maybe",
            "smtp://u:hunter2@mail.example.com?tls=none&foo=1",
            "smtp://u:hunter2@mail.example.com?timeout=0",
            "smtp://u:hunter2@:25",
            "not a url hunter2",
        ] {
            let err = SmtpMailer::from_url(url, "a@example.com").unwrap_err();
            assert!(matches!(err, Error::Configuration(_)), "{url}: {err:?}");
            assert!(!err.to_string().contains("hunter2"), "{url}: {err}");
        }
        let err = SmtpMailer::from_url("smtp://h", "not a mailbox").unwrap_err();
        assert!(matches!(err, Error::Configuration(_)), "{err:?}");
    }

    #[test]
    fn needs_a_runtime_and_drops_outside_one() {
        let err = SmtpMailer::from_url("smtp://h?tls=none", "a@example.com").unwrap_err();
        assert!(err.to_string().contains("Tokio runtime"), "{err}");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let m = rt
            .block_on(async { SmtpMailer::from_url("smtp://h?tls=none", "a@example.com") })
            .unwrap();
        drop(m); // outside the runtime: must not panic
    }

    fn env(var: &str) -> Option<String> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Some(v),
            _ => {
                assert!(
                    !std::env::var("CI").is_ok_and(|v| v == "true"),
                    "{var} must be set under CI=true (nothing may be skipped there)"
                );
                None
            }
        }
    }

    /// The mailer conformance suite against a real SMTP server
    /// (`PLATFORM_TEST_SMTP_URL`, e.g. aiosmtpd; `.ci/run` starts one).
    #[tokio::test]
    async fn conformance_against_a_real_server() {
        let Some(url) = env("PLATFORM_TEST_SMTP_URL") else {
            eprintln!("skipping: PLATFORM_TEST_SMTP_URL is not set");
            return;
        };
        let m = SmtpMailer::from_url(&url, "Platform <noreply@example.com>").unwrap();
        platform_core::mail::conformance::run_all(&m).await;
    }
}
