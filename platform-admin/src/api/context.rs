//! [`ApiContext`]: who is calling, from where, under which request id.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri, header};
use platform_core::context::{Actor, Context};
use platform_core::repo::Records;
use platform_core::{Error as CoreError, Platform};

use super::ApiConfig;
use crate::error::Error;
use crate::layer::RequestId;

/// The platform and the [`Context`] of one API request, extracted from its
/// head: the bearer token's actor (anonymous without an `Authorization`
/// header), the client address, user agent, URL and request id.
///
/// A malformed, unknown, expired or revoked token rejects the request with
/// [`Error::InvalidToken`] (401).
#[derive(Debug, Clone)]
pub struct ApiContext {
    platform: Platform,
    ctx: Context,
    uri: Uri,
}

impl ApiContext {
    /// The platform.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }
    /// The acting context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }
    /// The request's URI as the client sent it (before any nesting strips a
    /// prefix).
    pub fn original_uri(&self) -> &Uri {
        &self.uri
    }
    /// The records of the API resource with this plural name, acted on by
    /// this context; [`Error::UnknownResource`] for names the API does not
    /// serve.
    pub fn records(&self, resource: &str) -> Result<Records, Error> {
        match self.platform.records(resource, &self.ctx) {
            Some(r) if r.meta().in_api() && r.meta().plural() == resource => Ok(r),
            _ => Err(Error::UnknownResource(resource.to_owned())),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<Result<&str, Error>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let parsed = value.to_str().ok().and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    });
    Some(parsed.ok_or(Error::InvalidToken))
}

/// The client address: the right-most `X-Forwarded-For` entry when trusted,
/// else the socket's peer address.
fn client_ip(parts: &Parts, config: Option<&ApiConfig>) -> Option<IpAddr> {
    if config.is_some_and(|c| c.trust_forwarded) {
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back();
        if forwarded.is_some() {
            return forwarded;
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

impl<S> FromRequestParts<S> for ApiContext
where
    Platform: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let platform = Platform::from_ref(state);
        let actor = match bearer(&parts.headers) {
            None => Actor::Anonymous,
            Some(token) => match platform.access().authenticate_token(token?).await {
                Ok(actor) => actor,
                Err(CoreError::Unauthenticated) => return Err(Error::InvalidToken),
                Err(e) => return Err(e.into()),
            },
        };
        if let Some(log) = parts.extensions.get::<crate::layer::AccessActor>() {
            match &actor {
                Actor::Token(p, scope) => log.set(Some(p.user_id), Some(scope.token_id)),
                Actor::User(p) => log.set(Some(p.user_id), None),
                _ => {}
            }
        }
        let mut ctx = Context::new(actor);
        let config = parts.extensions.get::<Arc<ApiConfig>>().map(Arc::as_ref);
        if let Some(ip) = client_ip(parts, config) {
            ctx = ctx.with_ip(ip);
        }
        if let Some(ua) = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            ctx = ctx.with_user_agent(ua);
        }
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        if let Some(pq) = uri.path_and_query() {
            ctx = ctx.with_url(pq.as_str());
        }
        let id = match parts.extensions.get::<RequestId>() {
            Some(id) => id.as_str().to_owned(),
            None => RequestId::generate().as_str().to_owned(),
        };
        ctx = ctx.with_request_id(id);
        Ok(Self { platform, ctx, uri })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, Request};

    fn parts(headers: &[(&'static str, &'static str)]) -> Parts {
        let mut req = Request::builder().uri("/x");
        for (k, v) in headers {
            req = req.header(*k, HeaderValue::from_static(v));
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_tokens() {
        assert!(bearer(&parts(&[]).headers).is_none());
        let p = parts(&[("authorization", "Bearer plt_abc")]);
        assert_eq!(bearer(&p.headers).unwrap().unwrap(), "plt_abc");
        let p = parts(&[("authorization", "bearer   plt_abc ")]);
        assert_eq!(bearer(&p.headers).unwrap().unwrap(), "plt_abc");
        for bad in ["Basic abc", "Bearer", "Bearer ", "plt_abc"] {
            let p = parts(&[("authorization", bad)]);
            assert!(bearer(&p.headers).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_addresses_only_when_trusted() {
        let mut p = parts(&[("x-forwarded-for", "1.1.1.1, 10.0.0.7")]);
        p.extensions
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
        assert_eq!(
            client_ip(&p, Some(&ApiConfig::default())),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(
            client_ip(&p, Some(&ApiConfig::default().trust_forwarded(true))),
            Some(IpAddr::from([10, 0, 0, 7]))
        );
    }
}
