//! A small HTTP client for outgoing calls (Slack, webhooks, SMS APIs),
//! on hyper and rustls, that refuses to reach into the private network
//! (SSRF).
//!
//! Every request, and every redirect it follows, is checked by an
//! [`HttpPolicy`]: the host is resolved, every address it resolves to is
//! checked, and the client connects to the checked address itself (no
//! second lookup, so a DNS answer that changes between the check and the
//! connection cannot slip through). By default loopback, private
//! (RFC 1918, `100.64.0.0/10`, `fc00::/7`), link-local (`169.254.0.0/16`
//! with the cloud metadata address `169.254.169.254`, `fe80::/10`),
//! unspecified, broadcast, multicast and reserved addresses are refused;
//! [`HttpPolicy::allow_loopback`], [`HttpPolicy::allow_private`],
//! [`HttpPolicy::allow_link_local`] and [`HttpPolicy::allow_network`]
//! open them explicitly.
//!
//! ```no_run
//! use std::time::Duration;
//! use platform_adapters::http::{HttpClient, HttpPolicy, HttpRequest};
//!
//! # async fn f() -> platform_core::Result<()> {
//! let client = HttpClient::new(HttpPolicy::new()).timeout(Duration::from_secs(5));
//! let response = client
//!     .send(HttpRequest::post_json(
//!         "https://hooks.example.com/x",
//!         &platform_core::serde_json::json!({ "text": "hi" }),
//!     ))
//!     .await?
//!     .error_for_status("webhook")?;
//! assert!(response.status < 300);
//! # Ok(()) }
//! ```
//!
//! Errors: a server that cannot be reached or does not answer in time is
//! [`Error::Unavailable`]; a refused address, a scheme other than `http`
//! and `https` or a malformed URL is [`Error::Configuration`] (retrying
//! cannot help). Messages name the scheme, host and port, never the path
//! or query (webhook URLs carry their secret there).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Method;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use platform_core::error::{Error, Result};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// Which addresses a client may connect to. See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpPolicy {
    loopback: bool,
    private: bool,
    link_local: bool,
    networks: Vec<IpNet>,
}

/// Why an address is refused (its category), or `None` for a public one.
fn category(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => category_v4(v4),
        IpAddr::V6(v6) => category_v6(v6),
    }
}

fn category_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        [0, ..] => "unspecified",
        [127, ..] => "loopback",
        [10, ..] | [192, 168, ..] => "private",
        [172, b, ..] if (16..=31).contains(&b) => "private",
        [100, b, ..] if (64..=127).contains(&b) => "private",
        [169, 254, 169, 254] => "link-local (cloud metadata)",
        [169, 254, ..] => "link-local",
        [255, 255, 255, 255] => "broadcast",
        [a, ..] if (224..=239).contains(&a) => "multicast",
        [a, ..] if a >= 240 => "reserved",
        [192, 0, 0 | 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "reserved",
        [198, b, ..] if b == 18 || b == 19 => "reserved",
        _ => return None,
    })
}

fn category_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return category_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return category_v4(Ipv4Addr::new(a, b, c, d));
    }
    Some(if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfec0 {
        "private"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "link-local"
    } else if s[0] & 0xff00 == 0xff00 {
        "multicast"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "reserved"
    } else if s[..6] == [0, 0, 0, 0, 0, 0] {
        // IPv4-compatible (deprecated) addresses.
        "reserved"
    } else {
        return None;
    })
}

impl HttpPolicy {
    /// Public addresses only.
    pub fn new() -> Self {
        Self::default()
    }
    /// Also loopback addresses (`127.0.0.0/8`, `::1`): tests, a relay on
    /// the same host.
    #[must_use]
    pub fn allow_loopback(mut self) -> Self {
        self.loopback = true;
        self
    }
    /// Also private addresses (`10/8`, `172.16/12`, `192.168/16`,
    /// `100.64/10`, `fc00::/7`): a service inside the same network.
    #[must_use]
    pub fn allow_private(mut self) -> Self {
        self.private = true;
        self
    }
    /// Also link-local addresses (`169.254/16`, including the cloud
    /// metadata address, and `fe80::/10`). Rarely what you want.
    #[must_use]
    pub fn allow_link_local(mut self) -> Self {
        self.link_local = true;
        self
    }
    /// Also the addresses of `network` (`"10.1.2.0/24".parse()?`),
    /// whatever their category.
    #[must_use]
    pub fn allow_network(mut self, network: IpNet) -> Self {
        self.networks.push(network);
        self
    }
    /// `Ok` when the client may connect to `ip`, else why not (its
    /// category and the setting that would allow it).
    pub fn check(&self, ip: IpAddr) -> std::result::Result<(), String> {
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        if self
            .networks
            .iter()
            .any(|n| n.contains(&ip) || n.contains(&canonical))
        {
            return Ok(());
        }
        let Some(cat) = category(ip) else {
            return Ok(());
        };
        let allowed = match cat {
            "loopback" => self.loopback,
            "private" => self.private,
            c if c.starts_with("link-local") => self.link_local,
            _ => false,
        };
        if allowed {
            return Ok(());
        }
        let how = match cat {
            "loopback" => "HttpPolicy::allow_loopback()",
            "private" => "HttpPolicy::allow_private()",
            c if c.starts_with("link-local") => "HttpPolicy::allow_link_local()",
            _ => "HttpPolicy::allow_network(..)",
        };
        Err(format!("{ip} is a {cat} address (allow it with {how})"))
    }
}

/// One request: method, URL, headers and body.
#[derive(Clone)]
pub struct HttpRequest {
    method: Method,
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl fmt::Debug for HttpRequest {
    /// Shows the method and where it goes, not the path, headers or body
    /// (secrets live there).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("to", &origin_of(&self.url))
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

fn origin_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<invalid URL>".to_owned(),
    }
}

impl HttpRequest {
    /// A request of `method` to `url`, without a body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }
    /// A `POST` of `json` (`Content-Type: application/json`).
    pub fn post_json(url: impl Into<String>, json: &serde_json::Value) -> Self {
        Self::new(Method::POST, url)
            .header(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .body(json.to_string())
    }
    /// A `POST` of a form (`application/x-www-form-urlencoded`).
    pub fn post_form(url: impl Into<String>, fields: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        Self::new(Method::POST, url)
            .header(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(body)
    }
    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
    /// Adds a header from text; an invalid name or value is dropped with a
    /// warning (they come from code, not from users).
    #[must_use]
    pub fn header_str(self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => self.header(n, v),
            _ => {
                tracing::warn!(header = name, "invalid header dropped");
                self
            }
        }
    }
    /// `Authorization: Bearer <token>` (sensitive: not logged).
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        self.authorization(&format!("Bearer {token}"))
    }
    /// `Authorization: Basic ..` (sensitive: not logged).
    #[must_use]
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.authorization(&format!("Basic {b}"))
    }
    fn authorization(self, value: &str) -> Self {
        match HeaderValue::from_str(value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                self.header(hyper::header::AUTHORIZATION, v)
            }
            Err(_) => {
                tracing::warn!("invalid authorization header dropped");
                self
            }
        }
    }
    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body (at most the client's body limit).
    pub body: Bytes,
    /// How many redirects were followed to get it.
    pub redirects: usize,
}

impl HttpResponse {
    /// The body as text (lossy), cut to 200 characters, for messages.
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut s: String = text.chars().take(200).collect();
        if text.chars().count() > 200 {
            s.push('…');
        }
        s
    }
    /// `Ok` for a 2xx answer. Otherwise an error naming `backend`: a 408,
    /// 429 or 5xx is [`Error::Backend`] (worth retrying), any other
    /// status [`Error::Configuration`] (the request itself is wrong:
    /// retrying cannot help).
    pub fn error_for_status(self, backend: &'static str) -> Result<Self> {
        match self.status {
            200..=299 => Ok(self),
            408 | 429 | 500..=599 => Err(Error::Backend {
                backend,
                source: format!("answered {}: {}", self.status, self.excerpt()).into(),
            }),
            s => Err(Error::Configuration(format!(
                "{backend} refused the request with {s}: {} (not retried)",
                self.excerpt()
            ))),
        }
    }
}

/// An HTTP/1.1 client with a timeout, a redirect limit and an
/// [`HttpPolicy`] checked on every hop. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    policy: Arc<HttpPolicy>,
    timeout: Duration,
    max_redirects: usize,
    max_body: usize,
    user_agent: HeaderValue,
    tls: tokio_rustls::TlsConnector,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .field("max_redirects", &self.max_redirects)
            .finish_non_exhaustive()
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new(HttpPolicy::new())
    }
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("rustls with ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn unavailable(origin: &str, what: impl fmt::Display) -> Error {
    Error::Unavailable {
        backend: "http",
        source: format!("{origin}: {what}").into(),
    }
}

impl HttpClient {
    /// A client under `policy`: 10 s per request (redirects included), at
    /// most 3 redirects, bodies read up to 64 KiB.
    pub fn new(policy: HttpPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
            timeout: Duration::from_secs(10),
            max_redirects: 3,
            max_body: 64 * 1024,
            user_agent: HeaderValue::from_static("platform/0.1"),
            tls: tls_connector(),
        }
    }
    /// The time a request may take in all (connecting, redirects, reading
    /// the answer).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// How many redirects a request follows (0: none; a redirect is then
    /// an error).
    #[must_use]
    pub fn max_redirects(mut self, n: usize) -> Self {
        self.max_redirects = n;
        self
    }
    /// The policy.
    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }

    /// Sends `request`, following redirects (each one checked again).
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let origin = origin_of(&request.url);
        match tokio::time::timeout(self.timeout, self.send_inner(request)).await {
            Ok(r) => r,
            Err(_) => Err(unavailable(
                &origin,
                format!("no answer within {:?}", self.timeout),
            )),
        }
    }

    async fn send_inner(&self, mut request: HttpRequest) -> Result<HttpResponse> {
        let mut url = parse_url(&request.url)?;
        let mut redirects = 0;
        loop {
            let (status, location, body) = self.once(&url, &request).await?;
            let redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
            let Some(location) = location.filter(|_| redirect) else {
                return Ok(HttpResponse {
                    status,
                    body,
                    redirects,
                });
            };
            let origin = origin_of(url.as_str());
            if redirects >= self.max_redirects {
                return Err(Error::Backend {
                    backend: "http",
                    source: format!(
                        "{origin}: more than {} redirect(s); not followed",
                        self.max_redirects
                    )
                    .into(),
                });
            }
            redirects += 1;
            let next = url.join(&location).map_err(|e| {
                Error::Configuration(format!("{origin} redirected to an invalid address: {e}"))
            })?;
            check_scheme(&next)?;
            if status == 303 || (matches!(status, 301 | 302) && request.method == Method::POST) {
                request.method = Method::GET;
                request.body = Bytes::new();
                request.headers.retain(|(n, _)| {
                    n != hyper::header::CONTENT_TYPE && n != hyper::header::CONTENT_LENGTH
                });
            }
            if next.origin() != url.origin() {
                // Credentials are for the first server only.
                request
                    .headers
                    .retain(|(n, _)| n != hyper::header::AUTHORIZATION);
            }
            url = next;
        }
    }

    /// One hop: resolve, check, connect to the checked address, send.
    async fn once(
        &self,
        url: &url::Url,
        request: &HttpRequest,
    ) -> Result<(u16, Option<String>, Bytes)> {
        let origin = origin_of(url.as_str());
        let https = url.scheme() == "https";
        let port = url.port_or_known_default().unwrap_or(80);
        let host = url
            .host()
            .ok_or_else(|| Error::Configuration(format!("{origin}: the URL has no host")))?;
        let (addrs, server_name): (Vec<SocketAddr>, rustls::pki_types::ServerName<'static>) =
            match host {
                url::Host::Ipv4(ip) => (
                    vec![SocketAddr::new(IpAddr::V4(ip), port)],
                    rustls::pki_types::ServerName::IpAddress(IpAddr::V4(ip).into()),
                ),
                url::Host::Ipv6(ip) => (
                    vec![SocketAddr::new(IpAddr::V6(ip), port)],
                    rustls::pki_types::ServerName::IpAddress(IpAddr::V6(ip).into()),
                ),
                url::Host::Domain(d) => {
                    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((d, port))
                        .await
                        .map_err(|e| unavailable(&origin, format!("cannot resolve {d}: {e}")))?
                        .collect();
                    let name = rustls::pki_types::ServerName::try_from(d.to_owned())
                        .map_err(|e| Error::Configuration(format!("{origin}: {e}")))?;
                    (addrs, name)
                }
            };
        if addrs.is_empty() {
            return Err(unavailable(&origin, "the host resolves to no address"));
        }
        for a in &addrs {
            self.policy.check(a.ip()).map_err(|why| {
                Error::Configuration(format!("refused to connect to {origin}: {why}"))
            })?;
        }
        let mut last = None;
        let mut stream = None;
        for a in &addrs {
            match TcpStream::connect(a).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(stream) = stream else {
            return Err(unavailable(
                &origin,
                last.map_or_else(|| "cannot connect".to_owned(), |e| e.to_string()),
            ));
        };
        let _ = stream.set_nodelay(true);
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let host_header = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => String::new(),
        };
        let mut builder = hyper::Request::builder()
            .method(request.method.clone())
            .uri(path)
            .header(hyper::header::HOST, host_header)
            .header(hyper::header::USER_AGENT, self.user_agent.clone());
        for (n, v) in &request.headers {
            builder = builder.header(n, v);
        }
        let req = builder
            .body(Full::new(request.body.clone()))
            .map_err(|e| Error::Configuration(format!("{origin}: invalid request: {e}")))?;
        let response = if https {
            let tls = self
                .tls
                .connect(server_name, stream)
                .await
                .map_err(|e| unavailable(&origin, format!("TLS: {e}")))?;
            exchange(TokioIo::new(tls), req, &origin).await?
        } else {
            exchange(TokioIo::new(stream), req, &origin).await?
        };
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(response.into_body(), self.max_body)
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        Ok((status, location, body))
    }
}

async fn exchange<T>(
    io: TokioIo<T>,
    req: hyper::Request<Full<Bytes>>,
    origin: &str,
) -> Result<hyper::Response<hyper::body::Incoming>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| unavailable(origin, e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| unavailable(origin, e))
}

fn check_scheme(url: &url::Url) -> Result<()> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        s => Err(Error::Configuration(format!(
            "only http and https addresses are allowed, not {s}:"
        ))),
    }
}

fn parse_url(url: &str) -> Result<url::Url> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::Configuration(format!("invalid URL {}: {e}", origin_of(url))))?;
    check_scheme(&parsed)?;
    Ok(parsed)
}

/// Checks that `url` is an http(s) URL with a host (for channel
/// constructors, so that a typo fails at build time, not at delivery).
pub fn validate_url(url: &str) -> Result<()> {
    let parsed = parse_url(url)?;
    if parsed.host().is_none() {
        return Err(Error::Configuration(format!(
            "{}: the URL has no host",
            origin_of(url)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_policy_refuses_internal_addresses() {
        let p = HttpPolicy::new();
        for bad in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "::",
            "255.255.255.255",
            "224.0.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "ff02::1",
        ] {
            assert!(p.check(ip(bad)).is_err(), "{bad} must be refused");
        }
        for good in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111"] {
            assert!(p.check(ip(good)).is_ok(), "{good} is public");
        }
        let why = p.check(ip("169.254.169.254")).unwrap_err();
        assert!(why.contains("metadata"), "{why}");
        assert!(
            p.check(ip("127.0.0.1"))
                .unwrap_err()
                .contains("allow_loopback")
        );
    }

    #[test]
    fn allowances_open_only_their_category() {
        let p = HttpPolicy::new().allow_loopback();
        assert!(p.check(ip("127.0.0.1")).is_ok());
        assert!(p.check(ip("::1")).is_ok());
        assert!(p.check(ip("::ffff:127.0.0.1")).is_ok());
        assert!(p.check(ip("10.0.0.1")).is_err());
        assert!(p.check(ip("169.254.169.254")).is_err());
        let p = HttpPolicy::new().allow_private();
        assert!(p.check(ip("10.0.0.1")).is_ok());
        assert!(p.check(ip("127.0.0.1")).is_err());
        let p = HttpPolicy::new().allow_network("10.1.0.0/16".parse().unwrap());
        assert!(p.check(ip("10.1.2.3")).is_ok());
        assert!(p.check(ip("10.2.0.1")).is_err());
    }

    #[test]
    fn urls_are_checked_and_never_shown_whole() {
        assert!(validate_url("https://hooks.slack.com/services/T/B/SECRET").is_ok());
        let err = validate_url("ftp://example.com/x").unwrap_err();
        assert!(matches!(err, Error::Configuration(_)), "{err}");
        let err = validate_url("not a url").unwrap_err();
        assert!(matches!(err, Error::Configuration(_)), "{err}");
        let r = HttpRequest::post_json(
            "https://hooks.slack.com/services/T/B/SECRET",
            &serde_json::json!({}),
        )
        .bearer("TOKEN");
        let d = format!("{r:?}");
        assert!(!d.contains("SECRET") && !d.contains("TOKEN"), "{d}");
        assert!(d.contains("hooks.slack.com"), "{d}");
    }
}
