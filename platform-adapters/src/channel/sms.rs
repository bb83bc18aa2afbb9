//! One HTTP SMS provider, in two wire formats: a generic JSON POST and
//! Twilio's form POST.

use std::fmt;

use async_trait::async_trait;
use platform_core::error::Result;
use platform_core::notify::{Sms, SmsProvider};

use crate::http::{HttpClient, HttpPolicy, HttpRequest, validate_url};

/// How [`HttpSmsProvider`] talks to its API.
#[derive(Clone, PartialEq, Eq)]
pub enum SmsWire {
    /// `POST <url>` with `{"to": .., "from": .., "text": ..}` and, when
    /// set, `Authorization: Bearer <token>`.
    Json {
        /// Bearer token.
        token: Option<String>,
    },
    /// Twilio's Messages API: `POST <base>/2010-04-01/Accounts/<sid>/Messages.json`,
    /// a form with `To`, `From`, `Body`, and Basic authentication.
    Twilio {
        /// The account SID.
        account_sid: String,
        /// The auth token.
        auth_token: String,
    },
}

impl fmt::Debug for SmsWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json { token } => f
                .debug_struct("Json")
                .field("token", &token.as_ref().map(|_| "***"))
                .finish(),
            Self::Twilio { account_sid, .. } => f
                .debug_struct("Twilio")
                .field("account_sid", account_sid)
                .field("auth_token", &"***")
                .finish(),
        }
    }
}

/// Sends text messages through an HTTP API ([`SmsWire`]). A 2xx answer is
/// success; 408, 429 and 5xx are retried; other answers are not.
#[derive(Debug, Clone)]
pub struct HttpSmsProvider {
    url: String,
    from: Option<String>,
    wire: SmsWire,
    client: HttpClient,
}

impl HttpSmsProvider {
    /// A provider posting JSON to `url`; an error when it is not an
    /// http(s) URL.
    pub fn json(url: impl Into<String>) -> Result<Self> {
        let url = url.into();
        validate_url(&url)?;
        Ok(Self {
            url,
            from: None,
            wire: SmsWire::Json { token: None },
            client: HttpClient::new(HttpPolicy::new()),
        })
    }
    /// Twilio with this account and sender number (`api.twilio.com`; see
    /// [`HttpSmsProvider::base_url`]).
    pub fn twilio(
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
        from: impl Into<String>,
    ) -> Self {
        Self {
            url: "https://api.twilio.com".into(),
            from: Some(from.into()),
            wire: SmsWire::Twilio {
                account_sid: account_sid.into(),
                auth_token: auth_token.into(),
            },
            client: HttpClient::new(HttpPolicy::new()),
        }
    }
    /// Another base URL for a Twilio-compatible API (a regional edge, a
    /// test server); an error when it is not an http(s) URL.
    pub fn base_url(mut self, url: impl Into<String>) -> Result<Self> {
        let url = url.into();
        validate_url(&url)?;
        self.url = url.trim_end_matches('/').to_owned();
        Ok(self)
    }
    /// The bearer token of the JSON API.
    #[must_use]
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        if let SmsWire::Json { token: t } = &mut self.wire {
            *t = Some(token.into());
        }
        self
    }
    /// The sender (a number or an alphanumeric sender id).
    #[must_use]
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = Some(from.into());
        self
    }
    /// Sends through `client`.
    #[must_use]
    pub fn client(mut self, client: HttpClient) -> Self {
        self.client = client;
        self
    }
}

#[async_trait]
impl SmsProvider for HttpSmsProvider {
    fn name(&self) -> &str {
        match self.wire {
            SmsWire::Json { .. } => "http",
            SmsWire::Twilio { .. } => "twilio",
        }
    }
    async fn send(&self, sms: &Sms) -> Result<()> {
        sms.validate()?;
        let request = match &self.wire {
            SmsWire::Json { token } => {
                let mut body = serde_json::json!({ "to": sms.to, "text": sms.text });
                if let Some(from) = &self.from {
                    body["from"] = from.clone().into();
                }
                let r = HttpRequest::post_json(&self.url, &body);
                match token {
                    Some(t) => r.bearer(t),
                    None => r,
                }
            }
            SmsWire::Twilio {
                account_sid,
                auth_token,
            } => {
                let url = format!(
                    "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                    self.url
                );
                let mut fields = vec![("To", sms.to.as_str()), ("Body", sms.text.as_str())];
                if let Some(from) = &self.from {
                    fields.push(("From", from));
                }
                HttpRequest::post_form(url, &fields).basic_auth(account_sid, auth_token)
            }
        };
        self.client
            .send(request)
            .await?
            .error_for_status("sms provider")?;
        Ok(())
    }
}
