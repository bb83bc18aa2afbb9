//! The media library of Platform (Spatie Media Library): files attached to
//! any record of a resource, in named collections, stored on a storage disk.
//!
//! A host declares the collections in code, on the capability, and adds it
//! after [`FileStorage`](platform_core::storage::FileStorage) (which gives
//! the disks and signs URLs) and, optionally,
//! [`Jobs`](platform_jobs::Jobs) (which runs the image conversions):
//!
//! ```
//! use platform_core::prelude::*;
//! use platform_core::storage::{FileStorage, MemoryStorage};
//! use platform_media::{Collection, Media};
//!
//! #[derive(Resource, Debug, Clone)]
//! pub struct Product {
//!     #[resource(primary_key)]
//!     pub id: i64,
//!     pub name: String,
//! }
//!
//! # async fn run() -> platform_core::Result<()> {
//! let platform = Platform::builder()
//! #   .ignore_env()
//! #   .database_url("sqlite::memory:")
//! #   .app_key(platform_core::crypto::AppKey::generate())
//! #   .check_schema(false)
//! #   .registry(platform_core::Registry::builder().register::<Product>().build().expect("registry"))
//!     .with(FileStorage::new().disk("public", MemoryStorage::new()))
//!     .with(
//!         Media::new().disk("public").collection::<Product>(
//!             "images",
//!             Collection::many()
//!                 .accept(["image/png", "image/jpeg", "image/webp"])
//!                 .max_size(5 << 20)
//!                 .conversion("thumb", 200, 200)
//!                 .conversion("web", 1200, 1200),
//!         ),
//!     )
//!     .build()
//!     .await?;
//! let media = platform.get::<platform_media::MediaLibrary>().expect("Media is added");
//! assert_eq!(media.collections().len(), 1);
//! # platform.shutdown().await;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
//! ```
//!
//! What the capability adds:
//!
//! | part | what |
//! |---|---|
//! | table | `platform_media` (one row per file: record, collection, sniffed mime, size, disk, path, position, conversions done, custom properties) |
//! | service | [`MediaLibrary`]: [`attach`](MediaLibrary::attach), [`list`](MediaLibrary::list), [`get`](MediaLibrary::get), [`reorder`](MediaLibrary::reorder), [`delete`](MediaLibrary::delete), signed URLs, [`sweep`](MediaLibrary::sweep) |
//! | job | `media_conversions`: the collection's image conversions, after each attach (inline when [`Jobs`](platform_jobs::Jobs) is not added) |
//! | listener | files removed when their record is force-deleted (or deleted, for a resource without soft deletes) |
//! | task, command | the orphan sweep (daily in `serve`; `media:sweep` by hand) |
//! | API | `POST /api/{plural}/{id}/media/{collection}` (multipart), `GET /api/{plural}/{id}/media`, `DELETE /api/media/{id}`, `POST /api/media/reorder` |
//! | panel | a gallery (thumbnails, remove buttons) with an upload form per collection, on the record's view page and under its edit form |
//!
//! Rules, the same from every entry point: attaching and removing need
//! `update_<resource>` on the record, listing needs `view_<resource>`
//! (and the record must be inside the actor's policy); the type is
//! sniffed from the content (never taken from the client or the name)
//! and must be one the collection accepts; the size is checked while the
//! upload streams, and nothing is written when it is over.

mod api;
mod cleanup;
mod convert;
mod item;
mod library;
mod panel;
mod sniff;
mod store;

pub use cleanup::SweepReport;
pub use convert::{ConversionJob, DECODE_LIMIT_ALLOC, DECODE_LIMIT_SIDE};
pub use item::{MediaItem, RecordRef, Upload};
pub use library::MediaLibrary;
pub use sniff::{SNIFF_LEN, sanitize_file_name, sniff_mime};
pub use store::MIGRATIONS;

use std::sync::Arc;
use std::time::Duration;

use platform_admin::capability::SetupExt;
use platform_core::Platform;
use platform_core::capability::{Capability, Setup, TaskKind};
use platform_core::resource::Resource;

/// The default largest file of a collection: 10 MiB (Spatie's default).
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;

/// One image conversion of a collection: the image scaled down to fit
/// `width` x `height` (the aspect ratio kept; never scaled up), stored next
/// to the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// Its name (`thumb`), unique in the collection: 1 to 32 of `a-z`,
    /// `0-9`, `_`, `-`.
    pub name: String,
    /// The largest width.
    pub width: u32,
    /// The largest height.
    pub height: u32,
}

/// A collection's rules: how many files, which types, how large, which
/// conversions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    single: bool,
    accept: Vec<String>,
    max_size: u64,
    conversions: Vec<Conversion>,
    disk: Option<String>,
}

impl Collection {
    /// A collection of any number of files, ordered by position.
    pub fn many() -> Self {
        Self {
            single: false,
            accept: Vec::new(),
            max_size: DEFAULT_MAX_SIZE,
            conversions: Vec::new(),
            disk: None,
        }
    }
    /// A collection of one file: attaching another replaces it (an avatar).
    pub fn single() -> Self {
        Self {
            single: true,
            ..Self::many()
        }
    }
    /// Accepts only these (sniffed) types (`image/png`); every type when
    /// none is given. `image/*` accepts every image type.
    #[must_use]
    pub fn accept<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.accept = types.into_iter().map(Into::into).collect();
        self
    }
    /// The largest file accepted, in bytes (default [`DEFAULT_MAX_SIZE`]).
    #[must_use]
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }
    /// Adds a conversion `name` fitting `width` x `height`.
    #[must_use]
    pub fn conversion(mut self, name: impl Into<String>, width: u32, height: u32) -> Self {
        self.conversions.push(Conversion {
            name: name.into(),
            width,
            height,
        });
        self
    }
    /// Stores this collection's files on `disk` instead of the media
    /// library's disk.
    #[must_use]
    pub fn disk(mut self, disk: impl Into<String>) -> Self {
        self.disk = Some(disk.into());
        self
    }
    /// Whether it holds one file.
    pub fn is_single(&self) -> bool {
        self.single
    }
    /// The accepted types (empty: all).
    pub fn accepted(&self) -> &[String] {
        &self.accept
    }
    /// Whether `mime` is accepted.
    pub fn accepts(&self, mime: &str) -> bool {
        self.accept.is_empty()
            || self.accept.iter().any(|a| {
                a.eq_ignore_ascii_case(mime)
                    || a.strip_suffix("/*").is_some_and(|major| {
                        mime.split('/')
                            .next()
                            .is_some_and(|m| m.eq_ignore_ascii_case(major))
                    })
            })
    }
    /// The largest file accepted, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_size
    }
    /// The conversions.
    pub fn conversions(&self) -> &[Conversion] {
        &self.conversions
    }
}

type Subscribe = Arc<dyn Fn(&Platform, Arc<MediaLibrary>) + Send + Sync>;

/// A collection declared for a resource.
#[derive(Clone)]
pub struct CollectionDecl {
    resource: &'static str,
    plural: &'static str,
    name: String,
    spec: Collection,
    subscribe: Subscribe,
}

impl std::fmt::Debug for CollectionDecl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectionDecl")
            .field("resource", &self.resource)
            .field("name", &self.name)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl CollectionDecl {
    /// The resource's singular name (`product`).
    pub fn resource(&self) -> &'static str {
        self.resource
    }
    /// The resource's plural (URL) name (`products`).
    pub fn plural(&self) -> &'static str {
        self.plural
    }
    /// The collection's name (`images`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its rules.
    pub fn spec(&self) -> &Collection {
        &self.spec
    }
}

/// The media library capability; see the [crate docs](crate).
#[derive(Clone, Debug)]
pub struct Media {
    disk: Option<String>,
    collections: Vec<CollectionDecl>,
    url_ttl: Duration,
    sweep_every: Duration,
    sweep_grace: Duration,
}

impl Default for Media {
    fn default() -> Self {
        Self::new()
    }
}

impl Media {
    /// No collections yet; files on the default disk; URLs valid for 5
    /// minutes; the orphan sweep once a day.
    pub fn new() -> Self {
        Self {
            disk: None,
            collections: Vec::new(),
            url_ttl: Duration::from_secs(300),
            sweep_every: Duration::from_secs(24 * 3600),
            sweep_grace: Duration::from_secs(3600),
        }
    }
    /// Stores files on the disk `name` (of
    /// [`Disks`](platform_core::storage::Disks)) instead of the default
    /// disk.
    #[must_use]
    pub fn disk(mut self, name: impl Into<String>) -> Self {
        self.disk = Some(name.into());
        self
    }
    /// Declares the collection `name` of the resource `R`.
    #[must_use]
    pub fn collection<R: Resource>(mut self, name: impl Into<String>, spec: Collection) -> Self {
        let name = name.into();
        let meta = R::meta();
        let resource = meta.name();
        let subscribe: Subscribe = Arc::new(move |p: &Platform, lib: Arc<MediaLibrary>| {
            p.outbox().subscribe_to_where::<R>(
                format!("media:cleanup:{resource}"),
                cleanup::removes_record::<R>,
                move |e: platform_core::outbox::Event| {
                    let lib = lib.clone();
                    async move { lib.remove_record(&e.resource, &e.record_id).await }
                },
            );
        });
        self.collections
            .retain(|c| !(c.resource == resource && c.name == name));
        self.collections.push(CollectionDecl {
            resource,
            plural: meta.plural(),
            name,
            spec,
            subscribe,
        });
        self
    }
    /// How long signed URLs stay valid (default 5 minutes).
    #[must_use]
    pub fn url_ttl(mut self, ttl: Duration) -> Self {
        self.url_ttl = ttl;
        self
    }
    /// How often `serve` runs the orphan sweep (default daily).
    #[must_use]
    pub fn sweep_every(mut self, every: Duration) -> Self {
        self.sweep_every = every;
        self
    }

    /// How old a stored file must be before the sweep may remove it as
    /// nobody's (default an hour: an attach writes its file before its
    /// row).
    #[must_use]
    pub fn sweep_grace(mut self, grace: Duration) -> Self {
        self.sweep_grace = grace;
        self
    }

    /// Mistakes in the declarations, all of them.
    fn problems(&self) -> Vec<String> {
        let ok = |s: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        let mut out = Vec::new();
        for c in &self.collections {
            if !ok(&c.name, 64) {
                out.push(format!(
                    "media collection {:?} of `{}`: use 1 to 64 of a-z, 0-9, `_`, `-`",
                    c.name, c.resource
                ));
            }
            if c.spec.max_size == 0 {
                out.push(format!(
                    "media collection `{}` of `{}`: max_size is 0",
                    c.name, c.resource
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for v in &c.spec.conversions {
                if !ok(&v.name, 32) || !seen.insert(v.name.as_str()) {
                    out.push(format!(
                        "media collection `{}` of `{}`: conversion {:?} is not a unique name of 1 to 32 of a-z, 0-9, `_`, `-`",
                        c.name, c.resource, v.name
                    ));
                }
                if v.width == 0 || v.height == 0 || v.width > 10_000 || v.height > 10_000 {
                    out.push(format!(
                        "media collection `{}` of `{}`: conversion `{}` must be 1 to 10000 pixels each way",
                        c.name, c.resource, v.name
                    ));
                }
            }
        }
        out
    }
}

impl Capability for Media {
    fn name(&self) -> &'static str {
        "media"
    }

    fn setup(&self, setup: &mut Setup) {
        let this = self.clone();
        setup
            .migrations(MIGRATIONS)
            .service(move |p: Platform| {
                let this = this.clone();
                async move {
                    let problems = this.problems();
                    if !problems.is_empty() {
                        return Err(platform_core::Error::Configuration(problems.join("; ")));
                    }
                    MediaLibrary::new(&p, &this)
                }
            })
            .on_start(|p: Platform| async move {
                let lib = p.get::<MediaLibrary>().ok_or_else(|| {
                    platform_core::Error::Configuration("the media library is missing".into())
                })?;
                let mut done = std::collections::HashSet::new();
                for c in lib.collections() {
                    if done.insert(c.resource) {
                        (c.subscribe)(&p, lib.clone());
                    }
                }
                Ok(())
            });
        let every = self.sweep_every;
        setup.task("media orphan sweep", TaskKind::Worker, move |p, stop| {
            cleanup::sweep_task(p, stop, every)
        });
        setup.command(cleanup::sweep_command());
        if !self.collections.is_empty() {
            setup.api(api::routes(&self.collections));
            setup.api_doc(api::api_doc(&self.collections));
            let largest = self
                .collections
                .iter()
                .map(|c| c.spec.max_size)
                .max()
                .unwrap_or(0);
            panel::contribute(setup, largest);
        }
    }
}
