//! [`LocalStorage`]: files in a directory of the local file system.

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{Stream, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ByteStream, Metadata, Object, PutOptions, Storage, StorageError, StoragePath};

const CHUNK: usize = 64 * 1024;
const BACKEND: &str = "local";
/// Files being written are named `.platform-upload-<random>.partial` in
/// their target's directory until they are complete; listings skip them.
const TMP_PREFIX: &str = ".platform-upload-";
const TMP_SUFFIX: &str = ".partial";

/// Files under a root directory on the local file system.
///
/// - A path is always resolved segment by segment under the root: a
///   [`StoragePath`] cannot hold `..`, an absolute path or a NUL, so no
///   name reaches outside it. (Symbolic links placed inside the root by
///   someone with access to the machine are followed.)
/// - `put` streams into a temporary file next to the target, flushes it
///   to disk and renames it over the target: readers see the old file or
///   the new one, never half of one, and a failed upload leaves nothing.
///   Directories are created as needed, and `delete` removes the ones it
///   leaves empty.
/// - Reads stream the file in chunks of 64 KiB: a large file is never
///   held in memory.
/// - Content types are not recorded ([`Metadata::content_type`] is
///   `None`); the file route guesses them from the extension.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Files under `root` (created on the first write when missing).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `path` lives on the file system.
    pub fn full_path(&self, path: &StoragePath) -> PathBuf {
        let mut full = self.root.clone();
        for segment in path.segments() {
            full.push(segment);
        }
        full
    }

    fn io_error(path: &StoragePath, e: io::Error) -> StorageError {
        if e.kind() == io::ErrorKind::NotFound {
            StorageError::NotFound {
                path: path.to_string(),
            }
        } else {
            StorageError::backend(BACKEND, format!("`{path}`: {e}"))
        }
    }

    async fn file_meta(
        &self,
        path: &StoragePath,
    ) -> Result<(PathBuf, std::fs::Metadata), StorageError> {
        let full = self.full_path(path);
        let meta = tokio::fs::metadata(&full)
            .await
            .map_err(|e| Self::io_error(path, e))?;
        if !meta.is_file() {
            return Err(StorageError::NotFound {
                path: path.to_string(),
            });
        }
        Ok((full, meta))
    }

    fn metadata(path: StoragePath, meta: &std::fs::Metadata) -> Metadata {
        let m = Metadata::new(path, meta.len());
        match meta.modified() {
            Ok(t) => m.with_last_modified(t.into()),
            Err(_) => m,
        }
    }

    /// Creates a temporary file in `dir`, creating `dir` first (again if a
    /// concurrent `delete` pruned it in between).
    async fn create_temp(
        &self,
        path: &StoragePath,
        dir: &Path,
    ) -> Result<(PathBuf, tokio::fs::File), StorageError> {
        let mut attempt = 0;
        loop {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                StorageError::backend(BACKEND, format!("creating the directory of `{path}`: {e}"))
            })?;
            let tmp = dir.join(format!(
                "{TMP_PREFIX}{}{TMP_SUFFIX}",
                crate::crypto::random_token(12)
            ));
            match tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .await
            {
                Ok(f) => return Ok((tmp, f)),
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 5 => attempt += 1,
                Err(e) => {
                    return Err(StorageError::backend(
                        BACKEND,
                        format!("creating a temporary file for `{path}`: {e}"),
                    ));
                }
            }
        }
    }

    async fn write_all(
        file: &mut tokio::fs::File,
        mut body: ByteStream,
        path: &StoragePath,
    ) -> Result<u64, StorageError> {
        let mut size = 0u64;
        while let Some(chunk) = body.try_next().await? {
            file.write_all(&chunk)
                .await
                .map_err(|e| StorageError::backend(BACKEND, format!("writing `{path}`: {e}")))?;
            size += chunk.len() as u64;
        }
        file.flush()
            .await
            .and(file.sync_all().await)
            .map_err(|e| StorageError::backend(BACKEND, format!("writing `{path}`: {e}")))?;
        Ok(size)
    }
}

/// Reads `reader` in chunks of up to 64 KiB.
pub(crate) fn read_chunks<R>(
    reader: R,
    backend: &'static str,
) -> impl Stream<Item = Result<Bytes, StorageError>> + Send + 'static
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
{
    futures::stream::try_unfold(reader, move |mut r| async move {
        let mut buf = BytesMut::with_capacity(CHUNK);
        let n = r
            .read_buf(&mut buf)
            .await
            .map_err(|e| StorageError::backend(backend, e))?;
        Ok((n > 0).then(|| (buf.freeze(), r)))
    })
}

fn is_temp(name: &str) -> bool {
    name.starts_with(TMP_PREFIX) && name.ends_with(TMP_SUFFIX)
}

#[async_trait]
impl Storage for LocalStorage {
    async fn put(
        &self,
        path: &StoragePath,
        body: ByteStream,
        _options: PutOptions,
    ) -> Result<Metadata, StorageError> {
        let target = self.full_path(path);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        let (tmp, mut file) = self.create_temp(path, &dir).await?;
        let written = Self::write_all(&mut file, body, path).await;
        drop(file);
        let result = match written {
            Ok(_) => tokio::fs::rename(&tmp, &target)
                .await
                .map_err(|e| StorageError::backend(BACKEND, format!("storing `{path}`: {e}"))),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let (_, meta) = self.file_meta(path).await?;
        Ok(Self::metadata(path.clone(), &meta))
    }

    async fn get(&self, path: &StoragePath) -> Result<Object, StorageError> {
        let (full, _) = self.file_meta(path).await?;
        let file = tokio::fs::File::open(&full)
            .await
            .map_err(|e| Self::io_error(path, e))?;
        // The size and time of the file opened, not of a later replacement.
        let meta = file.metadata().await.map_err(|e| Self::io_error(path, e))?;
        Ok(Object {
            meta: Self::metadata(path.clone(), &meta),
            body: Box::pin(read_chunks(file, BACKEND)),
        })
    }

    async fn head(&self, path: &StoragePath) -> Result<Metadata, StorageError> {
        let (_, meta) = self.file_meta(path).await?;
        Ok(Self::metadata(path.clone(), &meta))
    }

    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError> {
        let full = self.full_path(path);
        match tokio::fs::symlink_metadata(&full).await {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Self::io_error(path, e)),
        }
        match tokio::fs::remove_file(&full).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Self::io_error(path, e)),
        }
        // Prune the directories this left empty (not the root); stops at the
        // first one that is not empty.
        let mut dir = full.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == self.root
                || !d.starts_with(&self.root)
                || tokio::fs::remove_dir(&d).await.is_err()
            {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(())
    }

    async fn list(&self, prefix: Option<&StoragePath>) -> Result<Vec<Metadata>, StorageError> {
        let start = match prefix {
            Some(p) => self.full_path(p),
            None => self.root.clone(),
        };
        let base: Vec<String> = prefix
            .map(|p| p.segments().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        let mut stack = vec![(start, base)];
        while let Some((dir, rel)) = stack.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(e) => e,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    return Err(StorageError::backend(
                        BACKEND,
                        format!("listing {}: {e}", dir.display()),
                    ));
                }
            };
            while let Some(entry) = entries.next_entry().await.map_err(|e| {
                StorageError::backend(BACKEND, format!("listing {}: {e}", dir.display()))
            })? {
                let Ok(name) = entry.file_name().into_string() else {
                    continue; // not UTF-8: not a name this store writes
                };
                let Ok(kind) = entry.file_type().await else {
                    continue; // removed meanwhile
                };
                let mut segs = rel.clone();
                segs.push(name.clone());
                if kind.is_dir() {
                    stack.push((entry.path(), segs));
                    continue;
                }
                if is_temp(&name) {
                    continue;
                }
                // Files and links to files (links to directories are not
                // followed, so a loop cannot trap the walk).
                let Ok(meta) = tokio::fs::metadata(entry.path()).await else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                if let Ok(path) = StoragePath::parse(&segs.join("/")) {
                    out.push(Self::metadata(path, &meta));
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn copy(&self, from: &StoragePath, to: &StoragePath) -> Result<(), StorageError> {
        let object = self.get(from).await?;
        self.put(to, object.body, PutOptions::default()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageExt;

    fn temp_root() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "platform-storage-{}",
            crate::crypto::random_token(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let root = temp_root();
        let disk = LocalStorage::new(root.join("disk"));
        crate::storage::conformance::run_all(&disk).await;
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn nothing_is_written_outside_the_root_and_no_temp_file_remains() {
        let root = temp_root();
        let disk = LocalStorage::new(root.join("disk"));
        for p in [
            "../escaped.txt",
            "a/../../escaped.txt",
            "/tmp/escaped.txt",
            "a\0b",
        ] {
            assert!(matches!(
                disk.put_bytes(p, "x").await,
                Err(StorageError::InvalidPath { .. })
            ));
        }
        assert!(!root.join("escaped.txt").exists());
        disk.put_bytes("a/b/c.txt", "hello").await.unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("disk/a/b/c.txt")).unwrap(),
            "hello"
        );
        // A failing upload leaves the old content and no temporary file.
        let failing: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(StorageError::backend("test", "the client went away")),
        ]));
        let path = StoragePath::parse("a/b/c.txt").unwrap();
        assert!(
            disk.put(&path, failing, PutOptions::default())
                .await
                .is_err()
        );
        assert_eq!(disk.get_bytes("a/b/c.txt").await.unwrap(), "hello");
        let names: Vec<_> = std::fs::read_dir(root.join("disk/a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["c.txt"], "no temporary file is left");
        // Deleting the last file prunes the empty directories, not the root.
        disk.delete_file("a/b/c.txt").await.unwrap();
        assert!(!root.join("disk/a").exists());
        assert!(root.join("disk").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
