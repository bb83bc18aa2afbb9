//! [`IpAllowlistLayer`]: only clients from listed networks reach the panel.
//!
//! The client address is the connection's peer address (`ConnectInfo`), or,
//! when `trust_forwarded` is on (behind a proxy that sets it), the
//! right-most `X-Forwarded-For` entry. An empty list allows everyone. Other
//! clients get a plain `403` without a hint of what is behind it.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use tower::{Layer, Service};

/// Parses a comma-separated list of networks (`10.0.0.0/8, 192.168.1.7`);
/// a bare address is a one-address network.
pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))
        })
        .collect()
}

/// Refuses clients outside the listed networks.
#[derive(Debug, Clone)]
pub struct IpAllowlistLayer {
    nets: Arc<Vec<IpNet>>,
    trust_forwarded: bool,
}

impl IpAllowlistLayer {
    /// Allows `nets` (all clients when empty).
    pub fn new(nets: Vec<IpNet>, trust_forwarded: bool) -> Self {
        Self {
            nets: Arc::new(nets),
            trust_forwarded,
        }
    }
}

impl<S> Layer<S> for IpAllowlistLayer {
    type Service = IpAllowlist<S>;
    fn layer(&self, inner: S) -> Self::Service {
        IpAllowlist {
            inner,
            nets: self.nets.clone(),
            trust_forwarded: self.trust_forwarded,
        }
    }
}

/// The service of [`IpAllowlistLayer`].
#[derive(Debug, Clone)]
pub struct IpAllowlist<S> {
    inner: S,
    nets: Arc<Vec<IpNet>>,
    trust_forwarded: bool,
}

/// The client address of a request.
pub(crate) fn client_ip(req: &Request, trust_forwarded: bool) -> Option<IpAddr> {
    if trust_forwarded {
        let forwarded = req
            .headers()
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
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

impl<S> Service<Request> for IpAllowlist<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if self.nets.is_empty() {
            return Box::pin(self.inner.call(req));
        }
        let allowed = client_ip(&req, self.trust_forwarded).is_some_and(|ip| {
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 @ IpAddr::V4(_) => v4,
            };
            self.nets.iter().any(|n| n.contains(&ip))
        });
        if allowed {
            Box::pin(self.inner.call(req))
        } else {
            Box::pin(async { Ok((StatusCode::FORBIDDEN, "Forbidden").into_response()) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let nets = parse_networks("10.0.0.0/8, 192.168.1.7 ,::1").unwrap();
        assert_eq!(nets.len(), 3);
        assert!(nets[0].contains(&"10.2.3.4".parse::<IpAddr>().unwrap()));
        assert!(nets[1].contains(&"192.168.1.7".parse::<IpAddr>().unwrap()));
        assert!(!nets[1].contains(&"192.168.1.8".parse::<IpAddr>().unwrap()));
        assert!(parse_networks("10.0.0.0/33").is_err());
        assert!(parse_networks("not-an-ip").is_err());
        assert!(parse_networks("").unwrap().is_empty());
    }
}
