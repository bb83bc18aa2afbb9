//! [`S3Storage`]: files in an S3 bucket, on `object_store`'s S3 client.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, BackoffConfig, ClientOptions, GetOptions, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutPayload, RetryConfig, WriteMultipart,
};
use platform_core::storage::{
    ByteStream, Metadata, Object, PutOptions, Storage, StorageError, StoragePath,
};

const BACKEND: &str = "s3";
/// Uploads up to this size are one `PUT`; larger ones are multipart
/// uploads in parts of this size (S3's minimum part size), at most two
/// parts in flight: an upload holds about 15 MiB whatever the file's size.
const PART: usize = 5 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 2;

/// Files in an S3 bucket (or an S3-compatible server's).
///
/// Made with [`S3Storage::builder`] or from a disk URL with
/// [`S3Storage::from_url`]:
///
/// ```text
/// s3://BUCKET?region=eu-west-1&access_key_id=AKIA...&secret_access_key=...
/// s3://BUCKET?endpoint=http://127.0.0.1:9000&access_key_id=test&secret_access_key=test
/// ```
///
/// | parameter | meaning | default |
/// |---|---|---|
/// | `endpoint` | the server, for S3-compatible ones | AWS |
/// | `region` | the bucket's region | `us-east-1` |
/// | `access_key_id`, `secret_access_key`, `token` | credentials | the `AWS_*` environment, then the instance's role |
/// | `path_style` | `true`: `endpoint/bucket/key`; `false`: `bucket.endpoint/key` | `true` with an `endpoint`, else `false` |
/// | `allow_http` | allow `http://` to a host other than loopback | `false` (loopback is always allowed) |
/// | `timeout` | seconds per request | `60` |
/// | `retries` | attempts after a failed request (with backoff) | `3` |
///
/// Uploads stream: up to 5 MiB is sent as one `PUT`, anything larger as a
/// multipart upload of 5 MiB parts, two at a time, aborted when the body
/// fails (nothing is stored). Reads stream as the server sends. A server
/// that cannot be reached gives [`StorageError::Unavailable`] once the
/// retries are spent.
///
/// ```no_run
/// # fn f() -> Result<(), platform_core::storage::StorageError> {
/// use platform_adapters::storage::S3Storage;
/// use platform_core::storage::FileStorage;
///
/// let storage = FileStorage::new()
///     .disk("s3", S3Storage::builder("invoices").region("eu-west-1").build()?)
///     // or from PLATFORM_STORAGE_<NAME>_URL=s3://...
///     .scheme("s3", S3Storage::open);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct S3Storage {
    store: Arc<AmazonS3>,
    bucket: String,
    endpoint: Option<String>,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Storage")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Settings of an [`S3Storage`]; see [`S3Storage::builder`].
#[derive(Clone)]
pub struct S3Builder {
    bucket: String,
    endpoint: Option<String>,
    region: String,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    path_style: Option<bool>,
    allow_http: bool,
    timeout: Duration,
    retries: usize,
}

impl fmt::Debug for S3Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Builder")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

fn config(msg: impl Into<String>) -> StorageError {
    StorageError::backend(BACKEND, msg.into())
}

fn is_loopback(endpoint: &str) -> bool {
    url::Url::parse(endpoint).is_ok_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    })
}

impl S3Builder {
    /// An S3-compatible server at `endpoint` (`https://s3.example.com`,
    /// `http://127.0.0.1:9000`).
    #[must_use]
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into().trim_end_matches('/').to_owned());
        self
    }
    /// The bucket's region (default `us-east-1`).
    #[must_use]
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }
    /// Static credentials.
    #[must_use]
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.access_key_id = Some(access_key_id.into());
        self.secret_access_key = Some(secret_access_key.into());
        self
    }
    /// A session token, with temporary credentials.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// Path-style (`endpoint/bucket/key`) or virtual-hosted-style
    /// (`bucket.endpoint/key`) addressing.
    #[must_use]
    pub fn path_style(mut self, path_style: bool) -> Self {
        self.path_style = Some(path_style);
        self
    }
    /// Allows plain `http://` to a host other than loopback (loopback is
    /// always allowed; anything else should use TLS).
    #[must_use]
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }
    /// How long one request may take (default 60 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// How many times a failed request is retried, with backoff (default
    /// 3; 0: never).
    #[must_use]
    pub fn retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// The store. Nothing is sent yet: a server that is down is found by
    /// the first operation.
    pub fn build(self) -> Result<S3Storage, StorageError> {
        if self.bucket.is_empty() {
            return Err(config("no bucket given"));
        }
        let http = self
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        if http && !self.allow_http && !self.endpoint.as_deref().is_some_and(is_loopback) {
            return Err(config(format!(
                "the endpoint {} is plain HTTP and not loopback: use https://, or allow_http=true if the network is trusted",
                self.endpoint.as_deref().unwrap_or_default()
            )));
        }
        let mut b = if self.access_key_id.is_some() {
            AmazonS3Builder::new()
        } else {
            AmazonS3Builder::from_env()
        };
        b = b
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_virtual_hosted_style_request(!self.path_style.unwrap_or(self.endpoint.is_some()))
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(http)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(self.timeout),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: self.retries,
                retry_timeout: Duration::from_secs(30).max(self.timeout),
            });
        if let Some(e) = &self.endpoint {
            b = b.with_endpoint(e);
        }
        if let (Some(id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        if let Some(t) = &self.token {
            b = b.with_token(t);
        }
        let store = b.build().map_err(|e| config(e.to_string()))?;
        Ok(S3Storage {
            store: Arc::new(store),
            bucket: self.bucket,
            endpoint: self.endpoint,
        })
    }
}

impl S3Storage {
    /// Settings for the bucket `bucket`, to refine and [`S3Builder::build`].
    pub fn builder(bucket: impl Into<String>) -> S3Builder {
        S3Builder {
            bucket: bucket.into(),
            endpoint: None,
            region: "us-east-1".to_owned(),
            access_key_id: None,
            secret_access_key: None,
            token: None,
            path_style: None,
            allow_http: false,
            timeout: Duration::from_secs(60),
            retries: 3,
        }
    }

    /// The store a disk URL describes (see the type's docs).
    pub fn from_url(url: &str) -> Result<Self, StorageError> {
        let u =
            url::Url::parse(url).map_err(|e| config(format!("the disk URL is malformed: {e}")))?;
        if u.scheme() != "s3" {
            return Err(config(format!(
                "an S3 disk URL starts with s3://, not {}://",
                u.scheme()
            )));
        }
        let bucket = u.host_str().unwrap_or_default();
        let mut b = Self::builder(bucket);
        let (mut key, mut secret) = (None, None);
        for (k, v) in u.query_pairs() {
            let flag = || match v.as_ref() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                other => Err(config(format!(
                    "`{k}` must be true or false, not {other:?}"
                ))),
            };
            b = match k.as_ref() {
                "endpoint" => b.endpoint(v.as_ref()),
                "region" => b.region(v.as_ref()),
                "access_key_id" => {
                    key = Some(v.into_owned());
                    b
                }
                "secret_access_key" => {
                    secret = Some(v.into_owned());
                    b
                }
                "token" => b.token(v.as_ref()),
                "path_style" => b.path_style(flag()?),
                "allow_http" => b.allow_http(flag()?),
                "timeout" => b
                    .timeout(Duration::from_secs(v.parse().map_err(|_| {
                        config(format!("`timeout` must be seconds, not {v:?}"))
                    })?)),
                "retries" => b.retries(
                    v.parse()
                        .map_err(|_| config(format!("`retries` must be a number, not {v:?}")))?,
                ),
                other => return Err(config(format!("unknown S3 disk URL parameter `{other}`"))),
            };
        }
        match (key, secret) {
            (Some(k), Some(s)) => b = b.credentials(k, s),
            (None, None) => {}
            _ => {
                return Err(config(
                    "give both access_key_id and secret_access_key, or neither",
                ));
            }
        }
        b.build()
    }

    /// [`S3Storage::from_url`] as a shared disk: what
    /// [`FileStorage::scheme`](platform_core::storage::FileStorage::scheme)
    /// takes for `s3`.
    pub fn open(url: &str) -> Result<Arc<dyn Storage>, StorageError> {
        Ok(Arc::new(Self::from_url(url)?))
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn key(path: &StoragePath) -> Result<Path, StorageError> {
        Path::parse(path.as_str()).map_err(|_| StorageError::InvalidPath {
            path: path.to_string(),
            reason: "S3 refuses this key",
        })
    }
}

/// Maps `object_store`'s errors: a missing object is `NotFound`; a server
/// that cannot be reached or does not answer in time is `Unavailable`;
/// the rest is `Backend`.
fn map_error(path: &StoragePath, e: object_store::Error) -> StorageError {
    if let object_store::Error::NotFound { .. } = e {
        return StorageError::NotFound {
            path: path.to_string(),
        };
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            // Connect: nothing listens; Request: the connection closed
            // before an answer (the server died); Timeout, Interrupted.
            if matches!(
                h.kind(),
                K::Connect | K::Request | K::Timeout | K::Interrupted
            ) {
                return StorageError::unavailable(BACKEND, e);
            }
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::BrokenPipe
                    | K::UnexpectedEof
                    | K::TimedOut
                    | K::NotConnected
            ) {
                return StorageError::unavailable(BACKEND, e);
            }
        }
        cause = c.source();
    }
    StorageError::backend(BACKEND, e)
}

fn attributes(options: &PutOptions) -> Attributes {
    let mut a = Attributes::new();
    if let Some(t) = &options.content_type {
        a.insert(Attribute::ContentType, AttributeValue::from(t.clone()));
    }
    a
}

fn metadata(path: StoragePath, meta: &object_store::ObjectMeta, attrs: &Attributes) -> Metadata {
    Metadata::new(path, meta.size)
        .with_last_modified(meta.last_modified)
        .with_etag(meta.e_tag.clone())
        .with_content_type(
            attrs
                .get(&Attribute::ContentType)
                .map(|v| v.as_ref().to_owned()),
        )
}

#[async_trait]
impl Storage for S3Storage {
    async fn put(
        &self,
        path: &StoragePath,
        mut body: ByteStream,
        options: PutOptions,
    ) -> Result<Metadata, StorageError> {
        let key = Self::key(path)?;
        // Up to one part is collected; a body that ends there is one PUT.
        let mut head: Vec<Bytes> = Vec::new();
        let mut size = 0usize;
        let mut more = true;
        while size < PART {
            match body.try_next().await? {
                Some(chunk) => {
                    size += chunk.len();
                    head.push(chunk);
                }
                None => {
                    more = false;
                    break;
                }
            }
        }
        let put = object_store::PutOptions {
            attributes: attributes(&options),
            ..Default::default()
        };
        if !more {
            let result = self
                .store
                .put_opts(&key, head.into_iter().collect::<PutPayload>(), put)
                .await
                .map_err(|e| map_error(path, e))?;
            return Ok(Metadata::new(path.clone(), size as u64)
                .with_content_type(options.content_type)
                .with_etag(result.e_tag));
        }
        let upload = self
            .store
            .put_multipart_opts(
                &key,
                PutMultipartOptions {
                    attributes: attributes(&options),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| map_error(path, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        for chunk in head {
            writer.put(chunk);
        }
        let streamed: Result<usize, StorageError> = async {
            let mut total = size;
            while let Some(chunk) = body.try_next().await? {
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| map_error(path, e))?;
                total += chunk.len();
                writer.put(chunk);
            }
            Ok(total)
        }
        .await;
        match streamed {
            Ok(total) => {
                let result = writer.finish().await.map_err(|e| map_error(path, e))?;
                Ok(Metadata::new(path.clone(), total as u64)
                    .with_content_type(options.content_type)
                    .with_etag(result.e_tag))
            }
            Err(e) => {
                // Nothing is stored; the parts sent are discarded.
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    async fn get(&self, path: &StoragePath) -> Result<Object, StorageError> {
        let key = Self::key(path)?;
        let result = self
            .store
            .get_opts(&key, GetOptions::default())
            .await
            .map_err(|e| map_error(path, e))?;
        let meta = metadata(path.clone(), &result.meta, &result.attributes);
        let p = path.clone();
        let body = result
            .into_stream()
            .map(move |r| r.map_err(|e| map_error(&p, e)))
            .boxed();
        Ok(Object { meta, body })
    }

    async fn head(&self, path: &StoragePath) -> Result<Metadata, StorageError> {
        let key = Self::key(path)?;
        let result = self
            .store
            .get_opts(
                &key,
                GetOptions {
                    head: true,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| map_error(path, e))?;
        Ok(metadata(path.clone(), &result.meta, &result.attributes))
    }

    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError> {
        let key = Self::key(path)?;
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_error(path, e)),
        }
    }

    async fn list(&self, prefix: Option<&StoragePath>) -> Result<Vec<Metadata>, StorageError> {
        let key = prefix.map(Self::key).transpose()?;
        let root = StoragePath::parse("bucket").expect("a valid path");
        let mut out = Vec::new();
        let mut listing = self.store.list(key.as_ref());
        while let Some(meta) = listing
            .try_next()
            .await
            .map_err(|e| map_error(prefix.unwrap_or(&root), e))?
        {
            // Keys written by other tools may not be valid paths here:
            // they are not listed rather than failing the listing.
            if let Ok(path) = StoragePath::parse(meta.location.as_ref()) {
                out.push(metadata(path, &meta, &Attributes::new()));
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn copy(&self, from: &StoragePath, to: &StoragePath) -> Result<(), StorageError> {
        let (a, b) = (Self::key(from)?, Self::key(to)?);
        self.store
            .copy(&a, &b)
            .await
            .map_err(|e| map_error(from, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_checked() {
        let s = S3Storage::from_url(
            "s3://files?endpoint=http://127.0.0.1:9000&access_key_id=a&secret_access_key=b&region=eu-west-1",
        )
        .unwrap();
        assert_eq!(s.bucket(), "files");
        for (url, msg) in [
            (
                "s3://files?endpoint=http://s3.example.com&access_key_id=a&secret_access_key=b",
                "plain HTTP",
            ),
            (
                "s3://files?access_key_id=a",
                "both access_key_id and secret_access_key",
            ),
            (
                "s3://files?colour=blue",
                "unknown S3 disk URL parameter `colour`",
            ),
            ("s3://files?path_style=maybe", "must be true or false"),
            (
                "s3://?region=x&access_key_id=a&secret_access_key=b",
                "no bucket",
            ),
            ("gs://files", "starts with s3://"),
        ] {
            let err = S3Storage::from_url(url).unwrap_err().to_string();
            assert!(err.contains(msg), "{url}: {err}");
        }
        S3Storage::from_url(
            "s3://files?endpoint=http://s3.internal:9000&allow_http=true&access_key_id=a&secret_access_key=b",
        )
        .unwrap();
    }

    /// The S3 server of the tests: `PLATFORM_TEST_S3_URL`, a disk URL
    /// with its endpoint, bucket and credentials (`.ci/run` starts moto and
    /// sets it). Unset: the test is skipped, except under `CI=true`.
    fn test_url() -> Option<String> {
        match std::env::var("PLATFORM_TEST_S3_URL") {
            Ok(u) if !u.trim().is_empty() => Some(u),
            _ => {
                assert!(
                    !std::env::var("CI").is_ok_and(|v| v == "true"),
                    "PLATFORM_TEST_S3_URL must be set under CI=true (nothing may be skipped there)"
                );
                eprintln!(
                    "skipping: PLATFORM_TEST_S3_URL is not set (e.g. s3://platform-test?endpoint=http://127.0.0.1:PORT&access_key_id=test&secret_access_key=test)"
                );
                None
            }
        }
    }

    async fn test_store() -> Option<S3Storage> {
        let url = test_url()?;
        let store = S3Storage::from_url(&url).expect("PLATFORM_TEST_S3_URL is a valid S3 disk URL");
        if let Err(e) = store.list(None).await {
            panic!(
                "PLATFORM_TEST_S3_URL is set but its server does not answer (is it running, does the bucket exist?): {e}"
            );
        }
        Some(store)
    }

    #[tokio::test]
    async fn the_store_conforms() {
        let Some(store) = test_store().await else {
            return;
        };
        platform_core::testing::storage::run_all(&store).await;
    }

    #[tokio::test]
    async fn content_types_are_kept() {
        use platform_core::storage::StorageExt;
        let Some(store) = test_store().await else {
            return;
        };
        let path = format!(
            "content-type-{}/report.pdf",
            platform_core::crypto::random_token(6).to_ascii_lowercase()
        );
        store
            .put_bytes_with(
                &path,
                "%PDF-1.7",
                PutOptions::default().content_type("application/pdf"),
            )
            .await
            .unwrap();
        let p = StoragePath::parse(&path).unwrap();
        assert_eq!(
            store.head(&p).await.unwrap().content_type.as_deref(),
            Some("application/pdf")
        );
        assert_eq!(
            store.get(&p).await.unwrap().meta.content_type.as_deref(),
            Some("application/pdf")
        );
        store.delete(&p).await.unwrap();
    }

    /// A server that is down (nothing listens on its port) gives a clear
    /// `Unavailable` for every operation, after the retries, without a panic.
    #[tokio::test]
    async fn a_server_that_is_down_is_unavailable() {
        use platform_core::storage::StorageExt;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let store = S3Storage::from_url(&format!(
            "s3://platform-test?endpoint=http://127.0.0.1:{port}&access_key_id=a&secret_access_key=b&retries=1&timeout=5"
        ))
        .unwrap();
        let started = std::time::Instant::now();
        let p = StoragePath::parse("a/b.txt").unwrap();
        let big: ByteStream = Box::pin(futures::stream::iter(
            (0..3).map(|_| Ok(Bytes::from(vec![0u8; 4 * 1024 * 1024]))),
        ));
        for (what, result) in [
            ("put", store.put_bytes("a/b.txt", "x").await.map(|_| ())),
            (
                "multipart put",
                store.put(&p, big, PutOptions::default()).await.map(|_| ()),
            ),
            ("get", store.get(&p).await.map(|_| ())),
            ("head", store.head(&p).await.map(|_| ())),
            ("delete", store.delete(&p).await),
            ("list", store.list(None).await.map(|_| ())),
            ("copy", store.copy(&p, &p).await),
        ] {
            let err = result.expect_err(what);
            assert!(
                matches!(err, StorageError::Unavailable { .. }),
                "{what}: {err}"
            );
            assert!(
                err.to_string().starts_with("s3 storage is unavailable"),
                "{what}: {err}"
            );
        }
        let err: platform_core::Error = store.get(&p).await.unwrap_err().into();
        assert_eq!(err.code(), "unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
    }

    /// A server that dies during an upload (it reads part of each request,
    /// then drops the connection): `Unavailable`, for a single PUT and for
    /// a multipart upload, without a panic.
    #[tokio::test]
    async fn a_server_dying_mid_upload_is_unavailable() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let _ = sock.read(&mut buf).await;
                    // Gone, without an answer.
                });
            }
        });
        let store = S3Storage::from_url(&format!(
            "s3://platform-test?endpoint=http://127.0.0.1:{port}&access_key_id=a&secret_access_key=b&retries=1&timeout=5"
        ))
        .unwrap();
        let p = StoragePath::parse("a/big.bin").unwrap();
        for size in [3 * 1024 * 1024, 12 * 1024 * 1024] {
            let body: ByteStream = Box::pin(futures::stream::iter(
                (0..size / (1024 * 1024)).map(|_| Ok(Bytes::from(vec![1u8; 1024 * 1024]))),
            ));
            let err = store
                .put(&p, body, PutOptions::default())
                .await
                .expect_err("the server died");
            assert!(
                matches!(err, StorageError::Unavailable { .. }),
                "{size} bytes: {err}"
            );
        }
        server.abort();
    }
}
