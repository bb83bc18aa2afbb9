//! [`MemoryStorage`]: files in a map, for tests and throwaway disks.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;

use super::{
    ByteStream, Metadata, Object, PutOptions, Storage, StorageError, StoragePath, chunked,
};

/// Files kept in memory, lost when the last clone is dropped. Clones share
/// the files. A `put` collects its stream before storing it, so readers
/// never see half a file; reads come back in chunks of 64 KiB.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    files: Arc<RwLock<BTreeMap<StoragePath, (Bytes, Metadata)>>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<StoragePath, (Bytes, Metadata)>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is one insert or remove).
        self.files
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<StoragePath, (Bytes, Metadata)>> {
        self.files
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

const CHUNK: usize = 64 * 1024;

#[async_trait]
impl Storage for MemoryStorage {
    async fn put(
        &self,
        path: &StoragePath,
        body: ByteStream,
        options: PutOptions,
    ) -> Result<Metadata, StorageError> {
        let buf: BytesMut = body
            .try_fold(BytesMut::new(), |mut acc, chunk| async move {
                acc.extend_from_slice(&chunk);
                Ok(acc)
            })
            .await?;
        let bytes = buf.freeze();
        let meta = Metadata::new(path.clone(), bytes.len() as u64)
            .with_last_modified(chrono::Utc::now())
            .with_content_type(options.content_type)
            .with_etag(Some(crate::crypto::sha256_hex(&bytes)[..16].to_owned()));
        self.write().insert(path.clone(), (bytes, meta.clone()));
        Ok(meta)
    }

    async fn get(&self, path: &StoragePath) -> Result<Object, StorageError> {
        let (bytes, meta) =
            self.read()
                .get(path)
                .cloned()
                .ok_or_else(|| StorageError::NotFound {
                    path: path.to_string(),
                })?;
        Ok(Object {
            meta,
            body: chunked(bytes, CHUNK),
        })
    }

    async fn head(&self, path: &StoragePath) -> Result<Metadata, StorageError> {
        self.read()
            .get(path)
            .map(|(_, m)| m.clone())
            .ok_or_else(|| StorageError::NotFound {
                path: path.to_string(),
            })
    }

    async fn delete(&self, path: &StoragePath) -> Result<(), StorageError> {
        self.write().remove(path);
        Ok(())
    }

    async fn list(&self, prefix: Option<&StoragePath>) -> Result<Vec<Metadata>, StorageError> {
        Ok(self
            .read()
            .iter()
            .filter(|(p, _)| prefix.is_none_or(|pre| p.is_under(pre)))
            .map(|(_, (_, m))| m.clone())
            .collect())
    }

    async fn copy(&self, from: &StoragePath, to: &StoragePath) -> Result<(), StorageError> {
        let mut files = self.write();
        let (bytes, meta) = files
            .get(from)
            .cloned()
            .ok_or_else(|| StorageError::NotFound {
                path: from.to_string(),
            })?;
        let mut meta = meta;
        meta.path = to.clone();
        meta.last_modified = Some(chrono::Utc::now());
        files.insert(to.clone(), (bytes, meta));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        crate::storage::conformance::run_all(&MemoryStorage::new()).await;
    }
}
