//! The mail channel and the layout it renders messages with.

use std::sync::Arc;

use async_trait::async_trait;

use super::message::{Content, Format, MailMessage, RenderedMessage};
use super::{NotificationChannel, Recipient, unreachable};
use crate::error::{Error, Result};
use crate::mail::{Mail, Mailer};

/// E-mail through the platform's [`Mailer`], laid out by a [`MailLayout`].
#[derive(Debug, Clone)]
pub struct MailChannel {
    name: String,
    mailer: Arc<dyn Mailer>,
    layout: Arc<MailLayout>,
}

impl MailChannel {
    /// The channel `mail`, sending through `mailer` with `layout`.
    pub fn new(mailer: Arc<dyn Mailer>, layout: MailLayout) -> Self {
        Self {
            name: "mail".into(),
            mailer,
            layout: Arc::new(layout),
        }
    }
    /// Renames it (a second mailer, say for bulk mail).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

#[async_trait]
impl NotificationChannel for MailChannel {
    fn name(&self) -> &str {
        &self.name
    }
    fn format(&self) -> Format {
        Format::Mail
    }
    fn can_reach(&self, to: &Recipient) -> bool {
        to.email.as_deref().is_some_and(|e| !e.is_empty())
    }
    async fn send(&self, to: &Recipient, message: &RenderedMessage) -> Result<()> {
        let Content::Mail(mail) = &message.content else {
            return Err(message.wrong_format(&self.name, Format::Mail));
        };
        let Some(address) = to.email.as_deref().filter(|e| !e.is_empty()) else {
            return Err(unreachable(&self.name, to, "e-mail address"));
        };
        let rendered = self.layout.render(mail, to)?;
        let mail = Mail::new(address, rendered.subject, rendered.text).with_html(rendered.html);
        self.mailer.send(&mail).await
    }
}

/// The default HTML template of [`MailLayout`].
pub const DEFAULT_MAIL_HTML: &str = include_str!("mail.html");
/// The default text template of [`MailLayout`].
pub const DEFAULT_MAIL_TEXT: &str = include_str!("mail.txt");

/// A mail laid out: what the mail channel sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// The subject, on one line.
    pub subject: String,
    /// The HTML body.
    pub html: String,
    /// The plain-text body.
    pub text: String,
}

/// How notification mails look: an HTML and a text template (minijinja),
/// each overridable. The HTML template escapes every value unless told
/// otherwise (`|safe`), so a notification's text cannot inject markup.
///
/// Templates see `mail` (the [`MailMessage`]: `subject`, `level`,
/// `greeting`, `intro`, `action` as `[label, url]`, `outro`,
/// `salutation`), `recipient` (`name`, `display_name`) and `app` (the
/// application's name).
///
/// ```
/// use platform_core::notify::{MailLayout, MailMessage, Recipient};
///
/// let layout = MailLayout::new()
///     .app_name("Acme")
///     .text_template("{{ mail.subject }}\n{% for l in mail.intro %}{{ l }}\n{% endfor %}-- {{ app }}")
///     .unwrap();
/// let mail = layout
///     .render(&MailMessage::new("Hi").line("<b>bold?</b>"), &Recipient::anonymous())
///     .unwrap();
/// assert_eq!(mail.text, "Hi\n<b>bold?</b>\n-- Acme");
/// assert!(mail.html.contains("&lt;b&gt;bold?&lt;&#x2f;b&gt;"));
/// ```
#[derive(Debug, Clone)]
pub struct MailLayout {
    html: String,
    text: String,
    app: String,
}

impl Default for MailLayout {
    fn default() -> Self {
        Self::new()
    }
}

fn mail_env(html: bool) -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(move |_| {
        if html {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env
}

fn template_error(which: &str, e: &minijinja::Error) -> Error {
    Error::Configuration(format!("the notification mail {which} template: {e:#}"))
}

impl MailLayout {
    /// The default templates, signed `Platform`.
    pub fn new() -> Self {
        Self {
            html: DEFAULT_MAIL_HTML.to_owned(),
            text: DEFAULT_MAIL_TEXT.to_owned(),
            app: "Platform".to_owned(),
        }
    }
    /// The application's name in the default salutation and footer.
    #[must_use]
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app = name.into();
        self
    }
    /// Replaces the HTML template; an error when it does not compile.
    pub fn html_template(mut self, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        mail_env(true)
            .template_from_str(&source)
            .map_err(|e| template_error("HTML", &e))?;
        self.html = source;
        Ok(self)
    }
    /// Replaces the text template; an error when it does not compile.
    pub fn text_template(mut self, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        mail_env(false)
            .template_from_str(&source)
            .map_err(|e| template_error("text", &e))?;
        self.text = source;
        Ok(self)
    }
    /// Lays `mail` out for `to`.
    pub fn render(&self, mail: &MailMessage, to: &Recipient) -> Result<RenderedMail> {
        let subject: String = mail
            .subject
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_owned();
        if let Some((_, url)) = &mail.action {
            let lower = url.trim_start().to_ascii_lowercase();
            if !(lower.starts_with("https://")
                || lower.starts_with("http://")
                || lower.starts_with("mailto:")
                || (lower.starts_with('/') && !lower.starts_with("//")))
            {
                return Err(Error::invalid(
                    "action",
                    "invalid",
                    "the button's link must be an http(s) or mailto: address, or a path",
                ));
            }
        }
        let mut mail = mail.clone();
        mail.subject.clone_from(&subject);
        let ctx = minijinja::context! {
            mail => minijinja::Value::from(minijinja::value::Serde(&mail)),
            recipient => minijinja::context! {
                name => to.name.clone(),
                display_name => to.display_name(),
            },
            app => self.app.clone(),
        };
        let render = |html: bool, source: &str, which: &str| -> Result<String> {
            let env = mail_env(html);
            let t = env
                .template_from_str(source)
                .map_err(|e| template_error(which, &e))?;
            t.render(&ctx).map_err(|e| template_error(which, &e))
        };
        Ok(RenderedMail {
            html: render(true, &self.html, "HTML")?,
            text: render(false, &self.text, "text")?,
            subject,
        })
    }
}
