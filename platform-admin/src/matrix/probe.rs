//! One request: building it from a step, sending it through the router,
//! and classifying the answer.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use platform_core::context::Context;
use platform_core::resource::{FieldMeta, ResourceMeta};
use platform_core::value::Value;
use platform_core::{Error, Result};
use tower::ServiceExt;

use super::fixtures::{Run, Sample, Subject, conds_of, scope_of};
use super::plan::Step;
use super::report::{Actual, Surface};
use super::{BODY_LIMIT, CSRF};

impl Run {
    /// The request of `step` on `sample`.
    pub(super) fn probe(
        &self,
        step: Step,
        meta: &'static ResourceMeta,
        sample: &Sample,
        ctx: &Context,
    ) -> Result<Option<Probe>> {
        let api = self.api.as_deref().unwrap_or_default();
        let adm = self.panel.as_deref().unwrap_or_default();
        let r = meta.plural();
        let id = enc(&sample.id.display());
        let list = format!("{adm}/{r}");
        let record = format!("{adm}/{r}/{id}");
        let api_record = format!("{api}/{r}/{id}");
        let form = |pairs: &[(&str, String)]| {
            ReqBody::Form(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
            )
        };
        let bulk = |action: &str| {
            form(&[
                ("action", action.to_owned()),
                ("scope", "selected".to_owned()),
                ("ids", sample.id.display()),
                ("back", list.clone()),
                ("confirmed", "1".to_owned()),
            ])
        };
        let p = |method: Method, label: String, path: String, body: ReqBody| Probe {
            method,
            label,
            path,
            body,
            needle: None,
            update: None,
        };
        let probe = match step {
            Step::ApiList => match &sample.token {
                Some(t) => Probe {
                    needle: Some(format!(
                        "\"{}\":{}",
                        meta.primary_key().name(),
                        sample.id.to_json()
                    )),
                    ..p(
                        Method::GET,
                        format!("GET {api}/{r}?search="),
                        format!("{api}/{r}?search={t}"),
                        ReqBody::Empty,
                    )
                },
                None => p(
                    Method::GET,
                    format!("GET {api}/{r}"),
                    format!("{api}/{r}"),
                    ReqBody::Empty,
                ),
            },
            Step::ApiShow => p(
                Method::GET,
                format!("GET {api}/{r}/{{id}}"),
                api_record,
                ReqBody::Empty,
            ),
            Step::ApiAudits => p(
                Method::GET,
                format!("GET {api}/audits?resource={r}"),
                format!("{api}/audits?resource={r}"),
                ReqBody::Empty,
            ),
            Step::ApiRecordAudits => p(
                Method::GET,
                format!("GET {api}/audits?resource={r}&record={{id}}"),
                format!("{api}/audits?resource={r}&record={id}"),
                ReqBody::Empty,
            ),
            Step::ApiPatch | Step::ApiPut => {
                let method = if step == Step::ApiPatch {
                    Method::PATCH
                } else {
                    Method::PUT
                };
                let update = self.update_for(meta, ctx)?;
                let mut body = serde_json::Map::new();
                if let Some((f, v)) = &update {
                    body.insert(f.name().to_owned(), v.to_json());
                }
                Probe {
                    update: update.map(|(f, v)| (f.name(), v)),
                    ..p(
                        method.clone(),
                        format!("{method} {api}/{r}/{{id}}"),
                        api_record,
                        ReqBody::Json(serde_json::Value::Object(body)),
                    )
                }
            }
            Step::ApiCreate => {
                let (_, values) =
                    self.values(meta, &conds_of(scope_of(meta, ctx)), &self.fixtures)?;
                // What a client of this role can send: not the fields it
                // may not see (the panel's form leaves them out too).
                let vis = platform_core::visibility::Visibility::of(ctx);
                let body: serde_json::Map<String, serde_json::Value> = values
                    .iter()
                    .filter(|(f, _)| {
                        vis.access(f, true) != platform_core::visibility::FieldAccess::Masked
                    })
                    .map(|(f, v)| (f.name().to_owned(), v.to_json()))
                    .collect();
                p(
                    Method::POST,
                    format!("POST {api}/{r}"),
                    format!("{api}/{r}"),
                    ReqBody::Json(serde_json::Value::Object(body)),
                )
            }
            Step::ApiRestore => p(
                Method::POST,
                format!("POST {api}/{r}/{{id}}/restore"),
                format!("{api_record}/restore"),
                ReqBody::Empty,
            ),
            Step::ApiDelete => p(
                Method::DELETE,
                format!("DELETE {api}/{r}/{{id}}"),
                api_record,
                ReqBody::Empty,
            ),
            Step::ApiForceDelete => p(
                Method::DELETE,
                format!("DELETE {api}/{r}/{{id}}?force=true"),
                format!("{api_record}?force=true"),
                ReqBody::Empty,
            ),
            Step::PanelList => p(
                Method::GET,
                format!("GET {list}"),
                list.clone(),
                ReqBody::Empty,
            ),
            Step::PanelNew => p(
                Method::GET,
                format!("GET {list}/new"),
                format!("{list}/new"),
                ReqBody::Empty,
            ),
            Step::PanelLookup => {
                let q = if meta.search_fields().is_empty() {
                    Some(sample.id.display())
                } else {
                    sample.token.clone()
                };
                Probe {
                    needle: q
                        .as_ref()
                        .map(|_| format!("\"id\":\"{}\"", sample.id.display())),
                    ..p(
                        Method::GET,
                        format!("GET {list}/lookup?q="),
                        format!("{list}/lookup?q={}", enc(q.as_deref().unwrap_or_default())),
                        ReqBody::Empty,
                    )
                }
            }
            Step::PanelSearch => {
                let Some(t) = &sample.token else {
                    return Ok(None);
                };
                Probe {
                    needle: Some(format!("href=\"{record}\"")),
                    ..p(
                        Method::GET,
                        format!("GET {adm}/search?q= ({r})"),
                        format!("{adm}/search?q={t}"),
                        ReqBody::Empty,
                    )
                }
            }
            Step::PanelColumns => {
                let col = meta
                    .field_list()
                    .iter()
                    .find(|f| !f.is_hidden())
                    .map_or("", |f| f.name());
                p(
                    Method::POST,
                    format!("POST {list}/columns"),
                    format!("{list}/columns"),
                    form(&[("cols", col.to_owned()), ("back", list.clone())]),
                )
            }
            Step::PanelShow => p(
                Method::GET,
                format!("GET {list}/{{id}}"),
                record,
                ReqBody::Empty,
            ),
            Step::PanelEdit => p(
                Method::GET,
                format!("GET {list}/{{id}}/edit"),
                format!("{record}/edit"),
                ReqBody::Empty,
            ),
            Step::PanelConfirmDelete => p(
                Method::GET,
                format!("GET {list}/{{id}}/delete"),
                format!("{record}/delete"),
                ReqBody::Empty,
            ),
            Step::PanelConfirmForceDelete => p(
                Method::GET,
                format!("GET {list}/{{id}}/force-delete"),
                format!("{record}/force-delete"),
                ReqBody::Empty,
            ),
            Step::PanelExport => p(
                Method::POST,
                format!("POST {list}/bulk action=export"),
                format!("{list}/bulk"),
                bulk("export"),
            ),
            Step::PanelUpdate => {
                let update = self.update_for(meta, ctx)?;
                let pairs: Vec<(&str, String)> = update
                    .iter()
                    .map(|(f, v)| (f.name(), form_text(f, v)))
                    .collect();
                Probe {
                    update: update.map(|(f, v)| (f.name(), v)),
                    ..p(
                        Method::POST,
                        format!("POST {list}/{{id}}"),
                        record,
                        form(&pairs),
                    )
                }
            }
            Step::PanelRestoreVersion => {
                let Some(audit) = sample.audit else {
                    return Ok(None);
                };
                p(
                    Method::POST,
                    format!("POST {list}/{{id}}/versions/{{audit}}/restore"),
                    format!("{record}/versions/{audit}/restore"),
                    form(&[]),
                )
            }
            Step::PanelCreate => {
                let (_, values) =
                    self.values(meta, &conds_of(scope_of(meta, ctx)), &self.fixtures)?;
                let pairs: Vec<(&str, String)> = values
                    .iter()
                    .map(|(f, v)| (f.name(), form_text(f, v)))
                    .collect();
                p(
                    Method::POST,
                    format!("POST {list}"),
                    list.clone(),
                    form(&pairs),
                )
            }
            Step::PanelRestore => p(
                Method::POST,
                format!("POST {list}/{{id}}/restore"),
                format!("{record}/restore"),
                form(&[]),
            ),
            Step::PanelBulkRestore => p(
                Method::POST,
                format!("POST {list}/bulk action=restore"),
                format!("{list}/bulk"),
                bulk("restore"),
            ),
            Step::PanelDelete => p(
                Method::POST,
                format!("POST {list}/{{id}}/delete"),
                format!("{record}/delete"),
                form(&[]),
            ),
            Step::PanelForceDelete => p(
                Method::POST,
                format!("POST {list}/{{id}}/force-delete"),
                format!("{record}/force-delete"),
                form(&[]),
            ),
            Step::PanelBulkDelete => p(
                Method::POST,
                format!("POST {list}/bulk action=delete"),
                format!("{list}/bulk"),
                bulk("delete"),
            ),
            Step::PanelBulkForceDelete => p(
                Method::POST,
                format!("POST {list}/bulk action=force_delete"),
                format!("{list}/bulk"),
                bulk("force_delete"),
            ),
        };
        Ok(Some(probe))
    }

    /// Sends `probe` as `subject`; the status, `Location` and (for
    /// listings) the body.
    pub(super) async fn send(
        &self,
        subject: &Subject,
        surface: Surface,
        probe: &Probe,
    ) -> Result<(StatusCode, Option<String>, String)> {
        let mut b = Request::builder()
            .method(probe.method.clone())
            .uri(&probe.path)
            .header(header::USER_AGENT, "platform-permission-matrix");
        let body = match &probe.body {
            ReqBody::Empty => Body::empty(),
            ReqBody::Json(j) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from(j.to_string())
            }
            ReqBody::Form(pairs) => {
                b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                let mut text = format!("_csrf={}", enc(CSRF));
                for (k, v) in pairs {
                    text.push('&');
                    text.push_str(&enc(k));
                    text.push('=');
                    text.push_str(&enc(v));
                }
                Body::from(text)
            }
        };
        if surface == Surface::Api
            && let Some(t) = &subject.token
        {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let mut req = b.body(body).map_err(|e| {
            Error::Configuration(format!(
                "the permission matrix built an invalid request {}: {e}",
                probe.path
            ))
        })?;
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 0))));
        if surface == Surface::Panel
            && let Some(auth) = &subject.auth
        {
            req.extensions_mut().insert(auth.clone());
        }
        let res = match self.router.clone().oneshot(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        };
        let status = res.status();
        let location = res
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = if probe.needle.is_some() && status.is_success() {
            let bytes = axum::body::to_bytes(res.into_body(), BODY_LIMIT)
                .await
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            String::new()
        };
        Ok((status, location, body))
    }

    pub(super) fn classify(
        &self,
        surface: Surface,
        status: StatusCode,
        location: Option<&str>,
    ) -> Actual {
        if status.is_success() {
            return Actual::Allowed;
        }
        if status.is_redirection() {
            let base = self.panel.as_deref().unwrap_or_default();
            let to_sign_in = surface == Surface::Panel
                && location.is_some_and(|l| {
                    let path = l.split('?').next().unwrap_or_default();
                    [
                        "/login",
                        "/two-factor/setup",
                        "/two-factor-challenge",
                        "/confirm-password",
                    ]
                    .iter()
                    .any(|p| path == format!("{base}{p}"))
                });
            return if to_sign_in {
                Actual::Denied
            } else {
                Actual::Allowed
            };
        }
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Actual::Denied,
            StatusCode::NOT_FOUND => Actual::NotFound,
            _ => Actual::Failed,
        }
    }
}

/// A form value as the panel's inputs send it.
fn form_text(f: &FieldMeta, v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) if f.is_money() => platform_core::money::format_plain(*n),
        Value::Json(j) => j.to_string(),
        other => other.display(),
    }
}

/// Percent-encodes a query or form component.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug)]
pub(super) enum ReqBody {
    Empty,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

/// One request to send.
#[derive(Debug)]
pub(super) struct Probe {
    pub(super) method: Method,
    /// The route as a template.
    pub(super) label: String,
    pub(super) path: String,
    pub(super) body: ReqBody,
    /// For listings: the text that shows the sample is listed.
    pub(super) needle: Option<String>,
    /// For updates: the field written and its new value.
    pub(super) update: Option<(&'static str, Value)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(enc("a b/é"), "a%20b%2F%C3%A9");
        let money = FieldMeta::of::<i64>("amount").money();
        assert_eq!(form_text(&money, &Value::Int(-1205)), "-12.05");
        assert_eq!(form_text(&money, &Value::Int(7)), "0.07");
    }
}
