//! File storage: the [`Storage`] trait, its local-disk ([`LocalStorage`])
//! and in-memory ([`MemoryStorage`]) back ends, named [`Disks`], and signed,
//! expiring URLs for private files. S3 lives in `platform-adapters`
//! (feature `storage-s3`).
//!
//! ```
//! use platform_core::storage::{MemoryStorage, Storage, StorageExt};
//!
//! # async fn run() -> Result<(), platform_core::storage::StorageError> {
//! let disk = MemoryStorage::new();
//! disk.put_bytes("reports/q3.csv", "id,total\n1,10\n").await?;
//! assert_eq!(disk.get_bytes("reports/q3.csv").await?, "id,total\n1,10\n");
//! assert!(disk.exists("reports/q3.csv").await?);
//! disk.delete_file("reports/q3.csv").await?;
//! assert!(!disk.exists("reports/q3.csv").await?);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
//! ```
//!
//! The required methods of [`Storage`] are few (put a stream, get a
//! stream, head, delete, list, copy); everything else is [`StorageExt`],
//! implemented for every back end. Paths are [`StoragePath`]s, checked
//! once, so no back end can be handed `../../etc/passwd`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::error::{BoxError, Error};

mod disks;
mod local;
mod memory;
mod path;
mod signed;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

pub use disks::{DiskOpener, Disks, FileStorage, SignedFileRoute};
pub use local::LocalStorage;
pub use memory::MemoryStorage;
pub use path::{MAX_PATH_LEN, MAX_SEGMENT_LEN, StoragePath};
pub use signed::{Disposition, Refusal, SignedFile, UrlOptions, content_type_for};

/// A stream of bytes: a file's content going into or coming out of a
/// [`Storage`]. Chunks arrive as they are read; nothing forces the whole
/// file into memory.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send + 'static>>;

/// A [`ByteStream`] of one chunk.
pub fn bytes_stream(bytes: impl Into<Bytes>) -> ByteStream {
    let bytes = bytes.into();
    Box::pin(futures::stream::once(async move { Ok(bytes) }))
}

/// A [`ByteStream`] reading `reader` in chunks of 64 KiB (an uploaded file,
/// a [`tokio::fs::File`]); a read error ends it with
/// [`StorageError::Backend`].
pub fn reader_stream<R>(reader: R) -> ByteStream
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
{
    Box::pin(local::read_chunks(reader, "reader"))
}

/// What went wrong in a storage operation.
///
/// Converts into [`crate::Error`] (`NotFound`, `Validation`,
/// `Configuration`, `Unavailable`, `Backend`), so `?` works in code that
/// returns the platform's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// No file at this path.
    #[error("file `{path}` not found")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// The path was refused (see [`StoragePath`]); nothing was read or
    /// written.
    #[error("invalid storage path {path:?}: {reason}")]
    InvalidPath {
        /// The path given (at most its first 200 characters).
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No disk of this name is configured.
    #[error("no storage disk named `{0}` is configured")]
    UnknownDisk(String),
    /// The back end cannot be reached (its server is down, the network
    /// failed); nothing was written. Retry later.
    #[error("{backend} storage is unavailable: {source}")]
    Unavailable {
        /// Which back end (`local`, `s3`).
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The back end refused or failed (permissions, a full disk, a
    /// malformed answer).
    #[error("{backend} storage error: {source}")]
    Backend {
        /// Which back end.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl StorageError {
    /// A [`StorageError::Backend`] from any error.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            backend,
            source: source.into(),
        }
    }
    /// A [`StorageError::Unavailable`] from any error.
    pub fn unavailable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            backend,
            source: source.into(),
        }
    }
    /// Whether this is [`StorageError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound { path } => Error::NotFound {
                resource: "file",
                id: path,
            },
            e @ StorageError::InvalidPath { .. } => {
                Error::invalid("path", "invalid", e.to_string())
            }
            e @ StorageError::UnknownDisk(_) => Error::Configuration(e.to_string()),
            StorageError::Unavailable { backend, source } => Error::Unavailable { backend, source },
            StorageError::Backend { backend, source } => Error::Backend { backend, source },
        }
    }
}

/// What a back end knows about a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metadata {
    /// Its path.
    pub path: StoragePath,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, where the back end records it.
    pub last_modified: Option<DateTime<Utc>>,
    /// The content type given when it was written, where the back end
    /// keeps it (memory, S3; not the local disk).
    pub content_type: Option<String>,
    /// An opaque version tag, where the back end has one.
    pub etag: Option<String>,
}

impl Metadata {
    /// A file of `size` bytes at `path`, nothing else known.
    pub fn new(path: StoragePath, size: u64) -> Self {
        Self {
            path,
            size,
            last_modified: None,
            content_type: None,
            etag: None,
        }
    }
    /// With its modification time.
    #[must_use]
    pub fn with_last_modified(mut self, at: DateTime<Utc>) -> Self {
        self.last_modified = Some(at);
        self
    }
    /// With its content type.
    #[must_use]
    pub fn with_content_type(mut self, content_type: Option<String>) -> Self {
        self.content_type = content_type;
        self
    }
    /// With its version tag.
    #[must_use]
    pub fn with_etag(mut self, etag: Option<String>) -> Self {
        self.etag = etag;
        self
    }
}

/// A file being read: its [`Metadata`] and its content as a stream.
pub struct Object {
    /// What is known about it.
    pub meta: Metadata,
    /// Its content, in chunks.
    pub body: ByteStream,
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl Object {
    /// Writes the content to `writer` chunk by chunk (a file, a socket),
    /// never holding more than one chunk; returns the number of bytes
    /// written.
    pub async fn copy_to<W>(self, writer: &mut W) -> Result<u64, StorageError>
    where
        W: tokio::io::AsyncWrite + Unpin + ?Sized,
    {
        use tokio::io::AsyncWriteExt;
        let mut body = self.body;
        let mut n = 0u64;
        while let Some(chunk) = body.try_next().await? {
            writer
                .write_all(&chunk)
                .await
                .map_err(|e| StorageError::backend("writer", e))?;
            n += chunk.len() as u64;
        }
        writer
            .flush()
            .await
            .map_err(|e| StorageError::backend("writer", e))?;
        Ok(n)
    }

    /// Reads the whole content into memory.
    pub async fn bytes(self) -> Result<Bytes, StorageError> {
        let mut buf = Vec::with_capacity(usize::try_from(self.meta.size).unwrap_or(0).min(1 << 26));
        let mut body = self.body;
        while let Some(chunk) = body.try_next().await? {
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.into())
    }
}

/// How to write a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOptions {
    /// The content type to record (`application/pdf`), where the back end
    /// keeps one.
    pub content_type: Option<String>,
}

impl PutOptions {
    /// With a content type.
    #[must_use]
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }
}

/// A place files are kept: a directory, memory, an S3 bucket.
///
/// Contract (checked by [`conformance::run_all`]):
/// - [`put`](Storage::put) writes the whole stream or nothing: a reader
///   never sees half a file, and when the stream fails the previous
///   content (or absence) stays. It replaces an existing file and creates
///   the directories it needs. Of concurrent writers to one path, one
///   wins entirely.
/// - [`get`](Storage::get) and [`head`](Storage::head) of a missing file
///   fail with [`StorageError::NotFound`].
/// - [`delete`](Storage::delete) of a missing file succeeds.
/// - [`list`](Storage::list) returns every file under a directory prefix
///   (`a` lists `a/x` and `a/b/y`, not `ab`), sorted by path.
/// - a back end that cannot reach its server fails with
///   [`StorageError::Unavailable`], never panics.
///
/// Back ends are held as `Arc<dyn Storage>`; the conveniences are in
/// [`StorageExt`].
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Writes `body` to `path`, replacing what was there.
    async fn put(
        &self,
        path: &StoragePath,
        body: ByteStream,
        options: PutOptions,
    ) -> Result<Metadata, StorageError>;
    /// Reads the file at `path` as a stream.
    async fn get(&self, path: &StoragePath) -> Result<Object, StorageError>;
    /// What is known about the file at `path`, without reading it.
    async fn head(&self, path: &StoragePath) -> Result<Metadata, StorageError>;
    /// Removes the file at `path` (a missing file is not an error).
    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError>;
    /// Every file under the directory `prefix` (every file when `None`),
    /// sorted by path.
    async fn list(&self, prefix: Option<&StoragePath>) -> Result<Vec<Metadata>, StorageError>;
    /// Copies the file at `from` to `to`, replacing what was there.
    async fn copy(&self, from: &StoragePath, to: &StoragePath) -> Result<(), StorageError>;
}

type ExtFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// Conveniences over every [`Storage`], taking paths as text (checked
/// with [`StoragePath::parse`]).
pub trait StorageExt: Storage {
    /// Writes `bytes` to `path`.
    fn put_bytes<'a>(&'a self, path: &'a str, bytes: impl Into<Bytes>) -> ExtFuture<'a, Metadata> {
        self.put_bytes_with(path, bytes, PutOptions::default())
    }
    /// Writes `bytes` to `path` with `options` (a content type).
    fn put_bytes_with<'a>(
        &'a self,
        path: &'a str,
        bytes: impl Into<Bytes>,
        options: PutOptions,
    ) -> ExtFuture<'a, Metadata> {
        let body = bytes_stream(bytes);
        Box::pin(async move { self.put(&StoragePath::parse(path)?, body, options).await })
    }
    /// Writes what `reader` yields to `path`, in chunks.
    fn put_reader<'a, R>(&'a self, path: &'a str, reader: R) -> ExtFuture<'a, Metadata>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
    {
        let body = reader_stream(reader);
        Box::pin(async move {
            self.put(&StoragePath::parse(path)?, body, PutOptions::default())
                .await
        })
    }
    /// Reads the whole file at `path` into memory (for small files; stream
    /// large ones with [`Storage::get`]).
    fn get_bytes<'a>(&'a self, path: &'a str) -> ExtFuture<'a, Bytes> {
        Box::pin(async move { self.get(&StoragePath::parse(path)?).await?.bytes().await })
    }
    /// Whether a file exists at `path`.
    fn exists<'a>(&'a self, path: &'a str) -> ExtFuture<'a, bool> {
        Box::pin(async move {
            match self.head(&StoragePath::parse(path)?).await {
                Ok(_) => Ok(true),
                Err(e) if e.is_not_found() => Ok(false),
                Err(e) => Err(e),
            }
        })
    }
    /// The size in bytes of the file at `path`.
    fn size<'a>(&'a self, path: &'a str) -> ExtFuture<'a, u64> {
        Box::pin(async move { Ok(self.head(&StoragePath::parse(path)?).await?.size) })
    }
    /// Removes the file at `path` (a missing file is not an error).
    fn delete_file<'a>(&'a self, path: &'a str) -> ExtFuture<'a, ()> {
        Box::pin(async move { self.delete(&StoragePath::parse(path)?).await })
    }
    /// The paths of every file under the directory `prefix` (`""`: all).
    fn list_paths<'a>(&'a self, prefix: &'a str) -> ExtFuture<'a, Vec<String>> {
        Box::pin(async move {
            let prefix = if prefix.is_empty() {
                None
            } else {
                Some(StoragePath::parse(prefix.trim_end_matches('/'))?)
            };
            Ok(self
                .list(prefix.as_ref())
                .await?
                .into_iter()
                .map(|m| m.path.as_str().to_owned())
                .collect())
        })
    }
    /// Moves the file at `from` to `to` (a copy, then a delete).
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> ExtFuture<'a, ()> {
        Box::pin(async move {
            let (from, to) = (StoragePath::parse(from)?, StoragePath::parse(to)?);
            self.copy(&from, &to).await?;
            self.delete(&from).await
        })
    }
}

impl<S: Storage + ?Sized> StorageExt for S {}

/// Splits `bytes` into a stream of chunks of at most `chunk` bytes
/// (without copying).
pub(crate) fn chunked(bytes: Bytes, chunk: usize) -> ByteStream {
    let n = bytes.len().div_ceil(chunk.max(1));
    Box::pin(
        futures::stream::iter(
            (0..n).map(move |i| Ok(bytes.slice(i * chunk..((i + 1) * chunk).min(bytes.len())))),
        )
        .boxed(),
    )
}
