//! [`MediaLibrary`]: the service behind every entry point (API, panel,
//! host code): attach, list, get, reorder, delete, signed URLs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use platform_core::Platform;
use platform_core::context::Context;
use platform_core::db::Db;
use platform_core::error::{Error, Result};
use platform_core::permission::Ability;
use platform_core::repo::Record;
use platform_core::storage::{
    ByteStream, Disks, PutOptions, StorageError, StoragePath, UrlOptions,
};
use uuid::Uuid;

use crate::item::{MediaItem, RecordRef, Upload};
use crate::sniff::{SNIFF_LEN, sanitize_file_name, sniff_mime};
use crate::{CollectionDecl, Media, store};

/// The media library; see the [crate docs](crate). Found with
/// `platform.get::<MediaLibrary>()`.
///
/// Methods that act for someone take the [`Platform`] (to look the record
/// up through core, with its permissions and policy) and the actor's
/// [`Context`].
pub struct MediaLibrary {
    pub(crate) db: Db,
    pub(crate) disks: Arc<Disks>,
    pub(crate) jobs: Option<Arc<platform_jobs::Jobs>>,
    pub(crate) collections: Vec<CollectionDecl>,
    pub(crate) disk: String,
    pub(crate) url_ttl: Duration,
    pub(crate) sweep_grace: Duration,
}

impl std::fmt::Debug for MediaLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaLibrary")
            .field("disk", &self.disk)
            .field("collections", &self.collections)
            .field("jobs", &self.jobs.is_some())
            .finish_non_exhaustive()
    }
}

/// A record found for an actor: its resource's singular name and its id
/// as text.
pub(crate) struct Found {
    pub(crate) resource: &'static str,
    pub(crate) record_id: String,
}

impl MediaLibrary {
    pub(crate) fn new(p: &Platform, media: &Media) -> Result<Self> {
        let disks = p.get::<Disks>().ok_or_else(|| {
            Error::Configuration(
                "the media library needs storage disks: add FileStorage to the builder before Media"
                    .into(),
            )
        })?;
        let disk = media
            .disk
            .clone()
            .unwrap_or_else(|| disks.default_name().to_owned());
        disks
            .disk(&disk)
            .map_err(|e| Error::Configuration(format!("media: {e}")))?;
        for c in &media.collections {
            if let Some(d) = &c.spec.disk {
                disks.disk(d).map_err(|e| {
                    Error::Configuration(format!("media collection `{}`: {e}", c.name))
                })?;
            }
            if p.registry().by_name(c.resource).is_none() {
                return Err(Error::Configuration(format!(
                    "media collection `{}`: the resource `{}` is not registered",
                    c.name, c.resource
                )));
            }
        }
        Ok(Self {
            db: p.db().clone(),
            disks,
            jobs: p.get::<platform_jobs::Jobs>(),
            collections: media.collections.clone(),
            disk,
            url_ttl: media.url_ttl,
            sweep_grace: media.sweep_grace,
        })
    }

    /// Every declared collection.
    pub fn collections(&self) -> &[CollectionDecl] {
        &self.collections
    }

    /// The collections of the resource with this singular or plural name.
    pub fn collections_of(&self, resource: &str) -> Vec<&CollectionDecl> {
        self.collections
            .iter()
            .filter(|c| c.resource == resource || c.plural == resource)
            .collect()
    }

    /// The collection `name` of `resource` (singular or plural name).
    pub fn collection(&self, resource: &str, name: &str) -> Option<&CollectionDecl> {
        self.collections
            .iter()
            .find(|c| (c.resource == resource || c.plural == resource) && c.name == name)
    }

    /// The disk a collection's files go to.
    pub(crate) fn disk_of<'a>(&'a self, c: &'a CollectionDecl) -> &'a str {
        c.spec.disk.as_deref().unwrap_or(&self.disk)
    }

    /// Looks the record up for `ctx`: `ability`'s permission first (so a
    /// caller without it learns nothing), then the record, which must
    /// exist and be inside the actor's policy (else not found).
    pub(crate) async fn find(
        &self,
        platform: &Platform,
        ctx: &Context,
        record: &RecordRef,
        ability: Ability,
        with_trashed: bool,
    ) -> Result<Found> {
        let not_found = || Error::NotFound {
            resource: "record",
            id: record.id.chars().take(64).collect(),
        };
        let records = platform
            .records(&record.resource, ctx)
            .ok_or_else(not_found)?;
        ctx.authorize(records.entry().permission(ability))?;
        let meta = records.meta();
        // Read as the system (the actor may hold `update` without `view`),
        // then apply the actor's policy as core does on writes.
        let system = platform
            .records(meta.name(), &Context::system())
            .ok_or_else(not_found)?;
        let id = system.parse_id(&record.id)?;
        let found: Record = if with_trashed {
            system.find_with_trashed(id).await?
        } else {
            system.find(id).await?
        };
        if let Some(policy) = meta.policy_fn()
            && !policy(ctx).admits(|f| found.get(f))
        {
            return Err(not_found());
        }
        Ok(Found {
            resource: meta.name(),
            record_id: found.id().display(),
        })
    }

    /// Attaches `upload` to `record`'s collection `collection`, as `ctx`
    /// (who needs `update_<resource>` on the record).
    ///
    /// The type is sniffed from the first bytes and must be accepted; the
    /// size is counted while the content streams to the disk and the write
    /// is abandoned (nothing stored) past the collection's maximum. In a
    /// single-file collection the previous file is removed. Conversions
    /// are queued as a job (run at once when no
    /// [`Jobs`](platform_jobs::Jobs) is added).
    pub async fn attach(
        &self,
        platform: &Platform,
        ctx: &Context,
        record: &RecordRef,
        collection: &str,
        upload: Upload,
    ) -> Result<MediaItem> {
        let decl = self
            .collection(&record.resource, collection)
            .ok_or_else(|| Error::NotFound {
                resource: "media collection",
                id: collection.chars().take(64).collect(),
            })?
            .clone();
        let found = self
            .find(platform, ctx, record, Ability::Update, false)
            .await?;
        let max = decl.spec.max_size;
        let too_large = || {
            Error::invalid(
                "file",
                "too_large",
                format!("the file is larger than the collection's limit of {max} bytes"),
            )
        };
        // The first bytes, for the type.
        let mut body = upload.body;
        let mut head: Vec<u8> = Vec::new();
        let mut ended = false;
        while head.len() < SNIFF_LEN {
            match body.try_next().await.map_err(upload_error)? {
                Some(chunk) => {
                    head.extend_from_slice(&chunk);
                    if head.len() as u64 > max {
                        return Err(too_large());
                    }
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if head.is_empty() {
            return Err(Error::invalid("file", "empty", "the file is empty"));
        }
        let mime = sniff_mime(&head[..head.len().min(SNIFF_LEN)]);
        if !decl.spec.accepts(mime) {
            return Err(Error::invalid(
                "file",
                "mime_not_accepted",
                format!(
                    "files of type {mime} are not accepted here (accepted: {})",
                    decl.spec.accept.join(", ")
                ),
            ));
        }
        // The rest streams through, counted.
        let counted = Arc::new(AtomicU64::new(0));
        let over = Arc::new(AtomicBool::new(false));
        let rest: ByteStream = if ended {
            Box::pin(futures::stream::empty())
        } else {
            body
        };
        let (c, o) = (counted.clone(), over.clone());
        let stream: ByteStream = Box::pin(
            futures::stream::once(async move { Ok(Bytes::from(head)) })
                .chain(rest)
                .map(move |chunk| {
                    let chunk = chunk?;
                    let n = c.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
                    if n > max {
                        o.store(true, Ordering::Relaxed);
                        return Err(StorageError::backend(
                            "upload",
                            "the file is over the collection's size limit",
                        ));
                    }
                    Ok(chunk)
                }),
        );
        let id = Uuid::now_v7();
        let file_name = sanitize_file_name(&upload.file_name, mime);
        let path = format!(
            "media/{}/{}/{id}/{file_name}",
            found.resource,
            path_segment(&found.record_id)
        );
        let storage_path = StoragePath::parse(&path)?;
        let disk_name = self.disk_of(&decl).to_owned();
        let disk = self.disks.disk(&disk_name)?;
        let put = disk
            .put(
                &storage_path,
                stream,
                PutOptions::default().content_type(mime),
            )
            .await;
        if over.load(Ordering::Relaxed) {
            // A back end that kept a part anyway: remove it.
            let _ = disk.delete(&storage_path).await;
            return Err(too_large());
        }
        let meta = put.map_err(|e| match e {
            StorageError::Backend {
                backend: "upload",
                source,
            } => Error::invalid("file", "upload_failed", source.to_string()),
            e => Error::from(e),
        })?;
        let mut item = MediaItem {
            id,
            resource: found.resource.to_owned(),
            record_id: found.record_id.clone(),
            collection: decl.name.clone(),
            file_name,
            mime: mime.to_owned(),
            size: meta.size,
            disk: disk_name,
            path,
            position: 1,
            conversions: serde_json::json!({}),
            custom_properties: upload.custom_properties,
            created_at: now_micros(),
        };
        let replaced = match self.insert(&mut item, decl.spec.single).await {
            Ok(r) => r,
            Err(e) => {
                let _ = disk.delete(&storage_path).await;
                return Err(e);
            }
        };
        for old in replaced {
            self.remove_files(&old).await;
        }
        if !decl.spec.conversions.is_empty()
            && mime.starts_with("image/")
            && let Some(done) = self.queue_conversions(&item).await
        {
            item.conversions = done;
        }
        Ok(item)
    }

    /// Inserts `item` at the end of its collection (replacing what a
    /// single-file collection held); returns the rows replaced.
    async fn insert(&self, item: &mut MediaItem, single: bool) -> Result<Vec<MediaItem>> {
        let replaced = if single {
            store::of_record(
                &self.db,
                &item.resource,
                &item.record_id,
                Some(&item.collection),
            )
            .await?
        } else {
            Vec::new()
        };
        let mut tx = self.db.begin().await?;
        let result = async {
            for old in &replaced {
                store::delete(&mut tx, old.id).await?;
            }
            item.position =
                store::next_position(&mut tx, &item.resource, &item.record_id, &item.collection)
                    .await?;
            store::insert(&mut tx, item).await
        }
        .await;
        tx.finish(result).await?;
        Ok(replaced)
    }

    /// The files of `record` (of `collection`, or all), as `ctx` (who
    /// needs `view_<resource>` and the record inside its policy).
    pub async fn list(
        &self,
        platform: &Platform,
        ctx: &Context,
        record: &RecordRef,
        collection: Option<&str>,
    ) -> Result<Vec<MediaItem>> {
        let found = self
            .find(platform, ctx, record, Ability::View, true)
            .await?;
        store::of_record(&self.db, found.resource, &found.record_id, collection).await
    }

    /// The file `id`, as `ctx` (who may view its record).
    pub async fn get(&self, platform: &Platform, ctx: &Context, id: Uuid) -> Result<MediaItem> {
        let item = self.row(id).await?;
        self.find(platform, ctx, &item.record(), Ability::View, true)
            .await?;
        Ok(item)
    }

    /// The row `id`, unchecked.
    pub(crate) async fn row(&self, id: Uuid) -> Result<MediaItem> {
        store::one(&self.db, id).await?.ok_or(Error::NotFound {
            resource: "media",
            id: id.to_string(),
        })
    }

    /// Removes the file `id` and its conversions, as `ctx` (who needs
    /// `update_<resource>` on its record).
    pub async fn delete(&self, platform: &Platform, ctx: &Context, id: Uuid) -> Result<()> {
        let item = self.row(id).await?;
        self.find(platform, ctx, &item.record(), Ability::Update, true)
            .await?;
        let mut tx = self.db.begin().await?;
        let r = store::delete(&mut tx, id).await;
        tx.finish(r).await?;
        self.remove_files(&item).await;
        Ok(())
    }

    /// Puts the files `ids` (all of one record's collection) in this
    /// order, as `ctx` (who needs `update_<resource>` on the record).
    /// Files of the collection not named keep their order, after these.
    pub async fn reorder(&self, platform: &Platform, ctx: &Context, ids: &[Uuid]) -> Result<()> {
        let Some(first) = ids.first() else {
            return Err(Error::invalid("ids", "required", "name the files to order"));
        };
        if ids.len() > 1000 {
            return Err(Error::invalid("ids", "too_many", "at most 1000 files"));
        }
        let item = self.row(*first).await?;
        self.find(platform, ctx, &item.record(), Ability::Update, true)
            .await?;
        let all = store::of_record(
            &self.db,
            &item.resource,
            &item.record_id,
            Some(&item.collection),
        )
        .await?;
        let mut order: Vec<Uuid> = Vec::with_capacity(all.len());
        for id in ids {
            if !all.iter().any(|m| m.id == *id) {
                return Err(Error::invalid(
                    "ids",
                    "foreign",
                    format!("{id} is not a file of this record's collection"),
                ));
            }
            if !order.contains(id) {
                order.push(*id);
            }
        }
        order.extend(all.iter().map(|m| m.id).filter(|id| !ids.contains(id)));
        let mut tx = self.db.begin().await?;
        let result = async {
            for (i, id) in order.iter().enumerate() {
                store::set_position(
                    &mut tx,
                    *id,
                    &item.resource,
                    &item.record_id,
                    i64::try_from(i).unwrap_or(i64::MAX) + 1,
                )
                .await?;
            }
            Ok(())
        }
        .await;
        tx.finish(result).await
    }

    /// A signed URL of the file (or of its conversion `conversion`), valid
    /// for the library's URL lifetime. Images are shown inline; other files
    /// download under their name.
    pub fn url(&self, item: &MediaItem, conversion: Option<&str>) -> Result<String> {
        let path = match conversion {
            None => item.path.as_str(),
            Some(c) => item.conversion_path(c).ok_or_else(|| Error::NotFound {
                resource: "conversion",
                id: c.chars().take(32).collect(),
            })?,
        };
        let options = if item.mime.starts_with("image/") {
            UrlOptions::inline()
        } else {
            UrlOptions::download(item.file_name.clone())
        };
        Ok(self
            .disks
            .temporary_url(&item.disk, path, self.url_ttl, options)?)
    }

    /// `item` as the API shows it: its fields, a signed `url`, and each
    /// finished conversion with its `url`, `width` and `height`.
    pub fn to_json(&self, item: &MediaItem) -> serde_json::Value {
        let mut conversions = serde_json::Map::new();
        if let Some(done) = item.conversions.as_object() {
            for (name, c) in done {
                if c.get("path").is_some() {
                    conversions.insert(
                        name.clone(),
                        serde_json::json!({
                            "url": self.url(item, Some(name)).ok(),
                            "width": c.get("width"),
                            "height": c.get("height"),
                            "mime": c.get("mime"),
                        }),
                    );
                }
            }
        }
        serde_json::json!({
            "id": item.id,
            "collection": item.collection,
            "file_name": item.file_name,
            "mime": item.mime,
            "size": item.size,
            "position": item.position,
            "custom_properties": item.custom_properties,
            "created_at": item.created_at,
            "url": self.url(item, None).ok(),
            "conversions": conversions,
            "conversion_error": item.conversions.get("error"),
        })
    }

    /// Removes a stored file's directory (the file and its conversions);
    /// failures are logged (the sweep removes what is left).
    pub(crate) async fn remove_files(&self, item: &MediaItem) {
        let Ok(disk) = self.disks.disk(&item.disk) else {
            return;
        };
        let dir = item.dir();
        let paths = match StoragePath::parse(&dir) {
            Ok(prefix) => match disk.list(Some(&prefix)).await {
                Ok(files) => files.into_iter().map(|m| m.path).collect(),
                Err(e) => {
                    tracing::warn!(media = %item.id, error = %e, "media: cannot list the files to remove");
                    StoragePath::parse(&item.path).into_iter().collect()
                }
            },
            Err(_) => Vec::new(),
        };
        for p in paths {
            if let Err(e) = disk.delete(&p).await {
                tracing::warn!(media = %item.id, path = %p, error = %e, "media: cannot remove a file");
            }
        }
    }
}

/// A record id as one path segment: `[A-Za-z0-9_.-]` kept, the rest `_`
/// (the media id next to it keeps paths unique).
fn path_segment(id: &str) -> String {
    let s: String = id
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "_".to_owned() } else { s }
}

/// An error of the upload's own stream (the client went away).
fn upload_error(e: StorageError) -> Error {
    Error::invalid("file", "upload_failed", e.to_string())
}

/// Now, to the microsecond (what every back end stores).
fn now_micros() -> chrono::DateTime<Utc> {
    let now = Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
