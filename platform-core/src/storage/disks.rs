//! [`Disks`]: the named disks of an application, and [`FileStorage`], the
//! capability that configures them and serves signed URLs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::signed::{percent_encode, signed_data};
use super::{
    Disposition, LocalStorage, MemoryStorage, Refusal, SignedFile, Storage, StorageError,
    StoragePath, UrlOptions,
};
use crate::capability::{Capability, Setup};
use crate::crypto::Crypto;
use crate::platform::Platform;

/// Opens a disk from its URL (`s3://bucket?...`): what
/// [`FileStorage::scheme`] registers for a scheme core does not know.
pub type DiskOpener = Arc<dyn Fn(&str) -> Result<Arc<dyn Storage>, StorageError> + Send + Sync>;

/// The application's storage disks by name (`local`, `public`, `s3`), one
/// of them the default, and the signer of temporary URLs.
///
/// Found with `platform.get::<Disks>()` when [`FileStorage`] is added;
/// made by hand with [`Disks::new`] elsewhere.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use platform_core::storage::{Disks, MemoryStorage, Storage, StorageExt, UrlOptions};
///
/// # async fn run() -> Result<(), platform_core::storage::StorageError> {
/// let disks = Disks::new("local", [
///     ("local".to_owned(), Arc::new(MemoryStorage::new()) as Arc<dyn Storage>),
///     ("public".to_owned(), Arc::new(MemoryStorage::new()) as Arc<dyn Storage>),
/// ])?
/// .with_signing(
///     Arc::new(platform_core::crypto::Crypto::new(&platform_core::crypto::AppKey::generate(), &[])),
///     "https://app.example.com/files",
/// );
/// disks.default_disk().put_bytes("invoices/7.pdf", "%PDF-1.7").await?;
/// let url = disks.temporary_url("local", "invoices/7.pdf", Duration::from_secs(300), UrlOptions::download("INV-7.pdf"))?;
/// assert!(url.starts_with("https://app.example.com/files/local/invoices/7.pdf?expires="));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct Disks {
    disks: BTreeMap<String, Arc<dyn Storage>>,
    default: String,
    signer: Option<(Arc<Crypto>, String)>,
}

impl fmt::Debug for Disks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disks")
            .field("disks", &self.disks)
            .field("default", &self.default)
            .field("signed_urls", &self.signer.as_ref().map(|(_, url)| url))
            .finish()
    }
}

/// Checks a disk name: 1 to 64 of `a-z`, `0-9`, `_`, `-`.
fn check_disk_name(name: &str) -> Result<(), StorageError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(StorageError::backend(
            "disks",
            format!("invalid disk name {name:?}: use 1 to 64 of a-z, 0-9, `_` and `-`"),
        ));
    }
    Ok(())
}

impl Disks {
    /// `disks` by name, `default` among them.
    pub fn new(
        default: impl Into<String>,
        disks: impl IntoIterator<Item = (String, Arc<dyn Storage>)>,
    ) -> Result<Self, StorageError> {
        let disks: BTreeMap<_, _> = disks.into_iter().collect();
        for name in disks.keys() {
            check_disk_name(name)?;
        }
        let default = default.into();
        if !disks.contains_key(&default) {
            return Err(StorageError::UnknownDisk(default));
        }
        Ok(Self {
            disks,
            default,
            signer: None,
        })
    }

    /// Signs temporary URLs with `crypto`'s signing key (derived from the
    /// application key), pointing at `base_url` (the site's public address
    /// and the file route, `https://app.example.com/files`).
    #[must_use]
    pub fn with_signing(mut self, crypto: Arc<Crypto>, base_url: impl Into<String>) -> Self {
        self.signer = Some((crypto, base_url.into().trim_end_matches('/').to_owned()));
        self
    }

    /// The disk called `name`.
    pub fn disk(&self, name: &str) -> Result<Arc<dyn Storage>, StorageError> {
        self.disks
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::UnknownDisk(name.chars().take(64).collect()))
    }

    /// The default disk.
    pub fn default_disk(&self) -> Arc<dyn Storage> {
        self.disks[&self.default].clone()
    }

    /// The default disk's name.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// The disks' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.disks.keys().map(String::as_str)
    }

    /// A URL that serves the file at `path` of `disk` for `expires_in`
    /// (through the file route of [`FileStorage`]), to anyone who has it.
    /// The file does not need to exist yet.
    pub fn temporary_url(
        &self,
        disk: &str,
        path: &str,
        expires_in: Duration,
        options: UrlOptions,
    ) -> Result<String, StorageError> {
        let ttl = chrono::Duration::from_std(expires_in).unwrap_or(chrono::Duration::days(3650));
        self.temporary_url_until(disk, path, Utc::now() + ttl, options)
    }

    /// [`Disks::temporary_url`] valid until `expires_at`.
    pub fn temporary_url_until(
        &self,
        disk: &str,
        path: &str,
        expires_at: DateTime<Utc>,
        options: UrlOptions,
    ) -> Result<String, StorageError> {
        self.disk(disk)?;
        let path = StoragePath::parse(path)?;
        let (crypto, base) = self.signer.as_ref().ok_or_else(|| {
            StorageError::backend(
                "disks",
                "these disks cannot sign URLs (no signing key: add FileStorage to the platform, or call Disks::with_signing)",
            )
        })?;
        let expires = expires_at.timestamp();
        let download = options.download.as_deref();
        let signature = crypto.sign_with_id(&signed_data(disk, path.as_str(), expires, download));
        let encoded: Vec<String> = path.segments().map(percent_encode).collect();
        let mut url = format!(
            "{base}/{}/{}?expires={expires}",
            percent_encode(disk),
            encoded.join("/")
        );
        if let Some(name) = download {
            url.push_str("&download=");
            url.push_str(&percent_encode(name));
        }
        url.push_str("&signature=");
        url.push_str(&percent_encode(&signature));
        Ok(url)
    }

    /// Checks a request made with a URL from [`Disks::temporary_url`]:
    /// the disk and path from its route (decoded), and its `expires`,
    /// `download` and `signature` parameters (decoded). The signature is
    /// compared in constant time, before anything else is looked at.
    pub fn verify(
        &self,
        disk: &str,
        path: &str,
        expires: &str,
        download: Option<&str>,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<SignedFile, Refusal> {
        let Some((crypto, _)) = &self.signer else {
            return Err(Refusal::BadSignature);
        };
        let Ok(expires) = expires.parse::<i64>() else {
            return Err(Refusal::BadSignature);
        };
        let data = signed_data(disk, path, expires, download);
        if crypto.check_signature(&data, signature) != crate::crypto::Signature::Valid {
            return Err(Refusal::BadSignature);
        }
        if now.timestamp() >= expires {
            return Err(Refusal::Expired);
        }
        let storage = self.disk(disk).map_err(|_| Refusal::NotFound)?;
        let path = StoragePath::parse(path).map_err(|_| Refusal::NotFound)?;
        Ok(SignedFile {
            disk: storage,
            path,
            disposition: download.map_or(Disposition::Inline, |n| {
                Disposition::Attachment(n.to_owned())
            }),
        })
    }
}

/// Where a configured disk comes from.
#[derive(Clone)]
enum Source {
    Instance(Arc<dyn Storage>),
    Url(String),
}

/// The storage capability: named disks (configured in code and from
/// `PLATFORM_STORAGE_*`), found with `platform.get::<Disks>()`, and the
/// route that serves signed URLs (`GET /files/{disk}/{path}`, mounted by
/// `platform-admin`'s `app_router`).
///
/// ```
/// use platform_core::storage::{Disks, FileStorage, LocalStorage, StorageExt};
///
/// # async fn run() -> platform_core::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("doc-{}", platform_core::crypto::random_token(6)));
/// let platform = platform_core::Platform::builder()
/// #   .database_url("sqlite::memory:")
/// #   .app_key(platform_core::crypto::AppKey::generate())
/// #   .registry(platform_core::Registry::default())
///     .with(
///         FileStorage::new()
///             .disk("local", LocalStorage::new(&dir))
///             .disk_url("scratch", "memory://")
///             .default_disk("local"),
///     )
///     .build()
///     .await?;
/// let disks = platform.get::<Disks>().expect("FileStorage is added");
/// disks.disk("scratch")?.put_bytes("a.txt", "hello").await?;
/// assert_eq!(disks.default_name(), "local");
/// # platform.shutdown().await;
/// # Ok(()) }
/// ```
///
/// Configuration, read once when the platform is built (the environment
/// overrides the code unless [`FileStorage::ignore_env`]):
///
/// | variable | meaning |
/// |---|---|
/// | `PLATFORM_STORAGE_DISKS` | more disk names, comma-separated (`public,s3`) |
/// | `PLATFORM_STORAGE_<NAME>_URL` | the URL of disk `<name>` (upper case, `-` as `_`): `file:///var/app/storage`, `memory://`, `s3://bucket?...` |
/// | `PLATFORM_STORAGE_DEFAULT` | the default disk's name |
///
/// A disk URL's scheme picks its back end: `file://` + a directory
/// (absolute after `file://`, as in `file:///srv/files`, or relative to
/// the working directory, as in `file://storage/public`), `memory://`, or
/// a scheme registered with [`FileStorage::scheme`] (`s3` from
/// `platform-adapters`). With no disk configured at all there is one,
/// `local`, in the directory `storage` of the working directory.
#[derive(Clone)]
pub struct FileStorage {
    disks: Vec<(String, Source)>,
    default: Option<String>,
    openers: BTreeMap<String, DiskOpener>,
    use_env: bool,
    route: String,
}

impl fmt::Debug for FileStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStorage")
            .field(
                "disks",
                &self.disks.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("default", &self.default)
            .field("schemes", &self.openers.keys().collect::<Vec<_>>())
            .field("route", &self.route)
            .finish()
    }
}

impl Default for FileStorage {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`FileStorage`] contributes for the web layer: serve signed URLs
/// at this path prefix (`/files`). `platform-admin`'s `app_router` mounts
/// the route when it finds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedFileRoute {
    /// The route's prefix, starting with `/` (`/files`).
    pub prefix: String,
}

impl FileStorage {
    /// No disks yet (`local` in `./storage` if none is added), signed URLs
    /// under `/files`.
    pub fn new() -> Self {
        Self {
            disks: Vec::new(),
            default: None,
            openers: BTreeMap::new(),
            use_env: true,
            route: "/files".to_owned(),
        }
    }

    /// Adds (or replaces) the disk `name`.
    #[must_use]
    pub fn disk(self, name: impl Into<String>, storage: impl Storage + 'static) -> Self {
        self.shared_disk(name, Arc::new(storage))
    }

    /// Adds (or replaces) the disk `name`, shared with other code.
    #[must_use]
    pub fn shared_disk(mut self, name: impl Into<String>, storage: Arc<dyn Storage>) -> Self {
        self.set(name.into(), Source::Instance(storage));
        self
    }

    /// Adds (or replaces) the disk `name`, opened from `url` when the
    /// platform is built (see the type's docs for the schemes).
    #[must_use]
    pub fn disk_url(mut self, name: impl Into<String>, url: impl Into<String>) -> Self {
        self.set(name.into(), Source::Url(url.into()));
        self
    }

    fn set(&mut self, name: String, source: Source) {
        match self.disks.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = source,
            None => self.disks.push((name, source)),
        }
    }

    /// The default disk (else `PLATFORM_STORAGE_DEFAULT`, else `local` if
    /// configured, else the first disk added).
    #[must_use]
    pub fn default_disk(mut self, name: impl Into<String>) -> Self {
        self.default = Some(name.into());
        self
    }

    /// Opens disk URLs of `scheme` (`s3`) with `opener`, such as
    /// `platform_adapters::storage::S3Storage::open`.
    #[must_use]
    pub fn scheme(
        mut self,
        scheme: impl Into<String>,
        opener: impl Fn(&str) -> Result<Arc<dyn Storage>, StorageError> + Send + Sync + 'static,
    ) -> Self {
        self.openers.insert(scheme.into(), Arc::new(opener));
        self
    }

    /// Serves signed URLs under `prefix` instead of `/files`.
    #[must_use]
    pub fn route(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.route = format!("/{}", prefix.trim_matches('/'));
        self
    }

    /// Ignores the `PLATFORM_STORAGE_*` variables (tests).
    #[must_use]
    pub fn ignore_env(mut self) -> Self {
        self.use_env = false;
        self
    }

    /// Opens a disk from its URL with the schemes core knows and the
    /// registered ones.
    pub fn open(&self, url: &str) -> Result<Arc<dyn Storage>, StorageError> {
        let bad = |msg: String| StorageError::backend("disks", msg);
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad(format!(
                "the disk URL {url:?} has no scheme (use file://, memory:// or a registered one such as s3://)"
            )));
        };
        match scheme {
            "memory" => Ok(Arc::new(MemoryStorage::new())),
            "file" => {
                let dir = rest.split(['?', '#']).next().unwrap_or_default();
                if dir.is_empty() {
                    return Err(bad(format!("the disk URL {url:?} names no directory")));
                }
                Ok(Arc::new(LocalStorage::new(dir)))
            }
            other => match self.openers.get(other) {
                Some(open) => open(url),
                None => Err(bad(format!(
                    "no back end for disk URLs of scheme `{other}://`: register one with FileStorage::scheme \
                     (for S3, enable platform-adapters' `storage-s3` feature and add \
                     `.scheme(\"s3\", platform_adapters::storage::S3Storage::open)`)"
                ))),
            },
        }
    }

    /// The disks this configuration gives, with `env` (a lookup of
    /// environment variables; blank values count as unset) over the code.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<Disks, StorageError> {
        let env = |name: &str| {
            if self.use_env {
                env(name).filter(|v| !v.trim().is_empty())
            } else {
                None
            }
        };
        let var = |disk: &str| {
            format!(
                "PLATFORM_STORAGE_{}_URL",
                disk.to_ascii_uppercase().replace('-', "_")
            )
        };
        let mut sources = self.disks.clone();
        let mut names: Vec<String> = sources.iter().map(|(n, _)| n.clone()).collect();
        if let Some(list) = env("PLATFORM_STORAGE_DISKS") {
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
        }
        for name in &names {
            check_disk_name(name)?;
            match env(&var(name)) {
                Some(url) => match sources.iter_mut().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = Source::Url(url),
                    None => sources.push((name.clone(), Source::Url(url))),
                },
                None if !sources.iter().any(|(n, _)| n == name) => {
                    return Err(StorageError::backend(
                        "disks",
                        format!(
                            "PLATFORM_STORAGE_DISKS names the disk `{name}`, but {} is not set",
                            var(name)
                        ),
                    ));
                }
                None => {}
            }
        }
        if sources.is_empty() {
            sources.push(("local".to_owned(), Source::Url("file://storage".to_owned())));
        }
        let default = env("PLATFORM_STORAGE_DEFAULT")
            .or_else(|| self.default.clone())
            .unwrap_or_else(|| {
                if sources.iter().any(|(n, _)| n == "local") {
                    "local".to_owned()
                } else {
                    sources[0].0.clone()
                }
            });
        let mut opened = Vec::with_capacity(sources.len());
        for (name, source) in sources {
            let disk = match source {
                Source::Instance(s) => s,
                Source::Url(url) => self.open(&url).map_err(|e| match e {
                    StorageError::Backend { source, .. } => {
                        StorageError::backend("disks", format!("disk `{name}`: {source}"))
                    }
                    e => e,
                })?,
            };
            opened.push((name, disk));
        }
        Disks::new(default, opened)
    }
}

impl Capability for FileStorage {
    fn name(&self) -> &'static str {
        "storage"
    }

    fn setup(&self, setup: &mut Setup) {
        let this = self.clone();
        setup
            .service(move |p: Platform| {
                let this = this.clone();
                async move {
                    let base = format!("{}{}", p.config().public_url, this.route);
                    let disks = this
                        .resolve(|name| std::env::var(name).ok())
                        .map_err(|e| crate::Error::Configuration(format!("storage: {e}")))?;
                    Ok(disks.with_signing(p.crypto().clone(), base))
                }
            })
            .contribute(SignedFileRoute {
                prefix: self.route.clone(),
            })
            .health_check(StorageHealth);
    }
}

/// The path the health check asks about: it need not exist, the answer
/// "not found" shows the disk answers.
const HEALTH_PROBE: &str = "platform-health-probe";

/// `/health`'s `storage` check: every disk is asked about one path (a
/// `HEAD`, nothing written, so an S3 bucket is not charged for writes).
/// "Not found" is healthy; an unreachable server, a refused credential or
/// an unreadable directory is not, and names the disk.
struct StorageHealth;

#[async_trait::async_trait]
impl crate::capability::HealthCheck for StorageHealth {
    fn name(&self) -> &str {
        "storage"
    }
    async fn check(&self, platform: &Platform) -> crate::capability::HealthResult {
        let disks = platform
            .get::<Disks>()
            .ok_or_else(|| "the storage service is missing".to_owned())?;
        disks.check().await
    }
}

impl Disks {
    /// Asks every disk about one path; `Err` names each disk that did not
    /// answer, with why (what `/health` shows under `storage`).
    pub async fn check(&self) -> Result<(), String> {
        let probe = StoragePath::parse(HEALTH_PROBE).map_err(|e| e.to_string())?;
        let answers = futures::future::join_all(self.disks.iter().map(|(name, disk)| {
            let probe = &probe;
            async move { (name, disk.head(probe).await) }
        }))
        .await;
        let failed: Vec<String> = answers
            .into_iter()
            .filter_map(|(name, r)| match r {
                Ok(_) => None,
                Err(e) if e.is_not_found() => None,
                Err(e) => Some(format!("disk {name}: {e}")),
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AppKey;
    use crate::storage::StorageExt;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[tokio::test]
    async fn the_health_check_names_the_disk_that_does_not_answer() {
        // A local disk whose root is a file: every read fails (not "not found").
        let file = std::env::temp_dir().join(format!("platform-health-{}", std::process::id()));
        std::fs::write(&file, b"not a directory").unwrap();
        let ok = Disks::new(
            "mem",
            [(
                "mem".to_owned(),
                Arc::new(MemoryStorage::new()) as Arc<dyn Storage>,
            )],
        )
        .unwrap();
        assert_eq!(ok.check().await, Ok(()), "a missing file is an answer");
        let broken = Disks::new(
            "mem",
            [
                (
                    "mem".to_owned(),
                    Arc::new(MemoryStorage::new()) as Arc<dyn Storage>,
                ),
                (
                    "bad".to_owned(),
                    Arc::new(LocalStorage::new(&file)) as Arc<dyn Storage>,
                ),
            ],
        )
        .unwrap();
        let err = broken.check().await.unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert!(err.starts_with("disk bad: "), "{err}");
        assert!(!err.contains("disk mem"), "{err}");
    }

    #[test]
    fn disks_come_from_code_and_environment() {
        let fs = FileStorage::new()
            .disk_url("local", "memory://")
            .disk("public", MemoryStorage::new());
        let d = fs.resolve(vars(&[])).unwrap();
        assert_eq!(d.names().collect::<Vec<_>>(), ["local", "public"]);
        assert_eq!(d.default_name(), "local");
        let d = fs
            .resolve(vars(&[
                ("PLATFORM_STORAGE_DISKS", "archive, tmp-files"),
                (
                    "PLATFORM_STORAGE_ARCHIVE_URL",
                    "file:///tmp/platform-archive",
                ),
                ("PLATFORM_STORAGE_TMP_FILES_URL", "memory://"),
                ("PLATFORM_STORAGE_DEFAULT", "archive"),
            ]))
            .unwrap();
        assert_eq!(
            d.names().collect::<Vec<_>>(),
            ["archive", "local", "public", "tmp-files"]
        );
        assert_eq!(d.default_name(), "archive");
        assert!(format!("{:?}", d.disk("archive").unwrap()).contains("/tmp/platform-archive"));
        // Ignored when told to.
        let d = fs
            .clone()
            .ignore_env()
            .resolve(vars(&[("PLATFORM_STORAGE_DEFAULT", "public")]))
            .unwrap();
        assert_eq!(d.default_name(), "local");
        // Mistakes are named.
        let err = fs
            .resolve(vars(&[("PLATFORM_STORAGE_DISKS", "s3")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("PLATFORM_STORAGE_S3_URL is not set"), "{err}");
        let err = fs
            .resolve(vars(&[
                ("PLATFORM_STORAGE_DISKS", "s3"),
                ("PLATFORM_STORAGE_S3_URL", "s3://bucket"),
            ]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("disk `s3`") && err.contains("storage-s3"),
            "{err}"
        );
        let err = fs
            .resolve(vars(&[("PLATFORM_STORAGE_DEFAULT", "nope")]))
            .unwrap_err();
        assert!(
            matches!(err, StorageError::UnknownDisk(ref n) if n == "nope"),
            "{err}"
        );
        assert!(
            FileStorage::new()
                .disk_url("Bad Name", "memory://")
                .resolve(vars(&[]))
                .is_err()
        );
        // A registered scheme is used.
        let d = FileStorage::new()
            .disk_url("s3", "s3://bucket")
            .scheme("s3", |_| Ok(Arc::new(MemoryStorage::new())))
            .resolve(vars(&[]))
            .unwrap();
        assert_eq!(d.default_name(), "s3");
        // Nothing configured: `local` under ./storage.
        let d = FileStorage::new().resolve(vars(&[])).unwrap();
        assert!(format!("{:?}", d.default_disk()).contains("\"storage\""));
    }

    #[tokio::test]
    async fn signed_urls_are_checked() {
        let crypto = Arc::new(Crypto::new(&AppKey::generate(), &[]));
        let disks = Disks::new(
            "local",
            [(
                "local".to_owned(),
                Arc::new(MemoryStorage::new()) as Arc<dyn Storage>,
            )],
        )
        .unwrap()
        .with_signing(crypto.clone(), "https://app.example.com/files/");
        disks
            .default_disk()
            .put_bytes("a b/ü.txt", "hi")
            .await
            .unwrap();
        let url = disks
            .temporary_url(
                "local",
                "a b/ü.txt",
                Duration::from_secs(60),
                UrlOptions::download("ü.txt"),
            )
            .unwrap();
        assert!(
            url.starts_with("https://app.example.com/files/local/a%20b/%C3%BC.txt?expires="),
            "{url}"
        );
        let query = url.split_once('?').unwrap().1;
        let param = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .map(|v| v.replace("%3A", ":").replace("%C3%BC", "ü"))
                .unwrap()
        };
        let (expires, sig) = (param("expires"), param("signature"));
        let now = Utc::now();
        let ok = disks
            .verify("local", "a b/ü.txt", &expires, Some("ü.txt"), &sig, now)
            .unwrap();
        assert_eq!(ok.path.as_str(), "a b/ü.txt");
        assert_eq!(ok.disposition, Disposition::Attachment("ü.txt".into()));
        // Anything altered: refused.
        for (disk, path, exp, dl) in [
            ("local", "a b/other.txt", expires.as_str(), Some("ü.txt")),
            ("public", "a b/ü.txt", expires.as_str(), Some("ü.txt")),
            ("local", "a b/ü.txt", "99999999999", Some("ü.txt")),
            ("local", "a b/ü.txt", expires.as_str(), None),
            ("local", "a b/../a b/ü.txt", expires.as_str(), Some("ü.txt")),
        ] {
            assert_eq!(
                disks.verify(disk, path, exp, dl, &sig, now).unwrap_err(),
                Refusal::BadSignature
            );
        }
        assert_eq!(
            disks
                .verify("local", "a b/ü.txt", &expires, Some("ü.txt"), "00", now)
                .unwrap_err(),
            Refusal::BadSignature
        );
        // Expired.
        let later = now + chrono::Duration::seconds(61);
        assert_eq!(
            disks
                .verify("local", "a b/ü.txt", &expires, Some("ü.txt"), &sig, later)
                .unwrap_err(),
            Refusal::Expired
        );
        // Another application key does not accept it.
        let other = Disks::new("local", [("local".to_owned(), disks.default_disk())])
            .unwrap()
            .with_signing(
                Arc::new(Crypto::new(&AppKey::generate(), &[])),
                "https://x/files",
            );
        assert_eq!(
            other
                .verify("local", "a b/ü.txt", &expires, Some("ü.txt"), &sig, now)
                .unwrap_err(),
            Refusal::BadSignature
        );
        // Unsigned disks refuse to make URLs.
        let unsigned = Disks::new("local", [("local".to_owned(), disks.default_disk())]).unwrap();
        assert!(
            unsigned
                .temporary_url("local", "x", Duration::from_secs(1), UrlOptions::inline())
                .is_err()
        );
        assert!(
            disks
                .temporary_url(
                    "local",
                    "../x",
                    Duration::from_secs(1),
                    UrlOptions::inline()
                )
                .is_err()
        );
        assert!(
            disks
                .temporary_url("nope", "x", Duration::from_secs(1), UrlOptions::inline())
                .is_err()
        );
    }
}
