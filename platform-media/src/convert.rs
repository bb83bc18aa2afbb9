//! Image conversions: decoded with limits (no decompression bomb gets a
//! buffer), scaled down to fit each conversion's box, written next to the
//! original, run by [`ConversionJob`].

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use platform_core::error::{Error, Result};
use platform_core::storage::{PutOptions, StoragePath, bytes_stream};
use platform_jobs::{Job, JobContext, JobError, job};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::library::MediaLibrary;
use crate::{Conversion, store};

/// The widest and tallest image decoded, in pixels (each way).
pub const DECODE_LIMIT_SIDE: u32 = 12_000;
/// The most memory one decode may allocate, in bytes (256 MiB: a 8,000 x
/// 8,000 RGBA image).
pub const DECODE_LIMIT_ALLOC: u64 = 256 << 20;

/// Runs the conversions of one attached file (queued by
/// [`MediaLibrary::attach`]). A file that cannot be decoded (corrupt, or
/// over the decoding limits) fails for good at once, with its reason
/// recorded in the file's `conversions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversionJob {
    /// The file's id.
    pub media_id: Uuid,
}

#[job(
    name = "media_conversions",
    queue = "default",
    max_attempts = 3,
    timeout = "120s"
)]
impl Job for ConversionJob {
    async fn handle(self, cx: &JobContext) -> std::result::Result<(), JobError> {
        let lib = cx
            .platform()
            .get::<MediaLibrary>()
            .ok_or_else(|| JobError::fatal("the media library is not added"))?;
        match lib.convert(self.media_id).await {
            Ok(_) => Ok(()),
            Err(Error::Validation(e)) => Err(JobError::fatal(e)),
            Err(e) => Err(JobError::new(e)),
        }
    }
}

/// One rendered conversion.
pub(crate) struct Rendered {
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) mime: &'static str,
    pub(crate) ext: &'static str,
}

/// Decodes `bytes` under the limits and renders each conversion, in the
/// original's format (GIF as PNG). Blocking: run it off the async threads.
pub(crate) fn render(
    bytes: &[u8],
    conversions: &[Conversion],
) -> std::result::Result<Vec<Rendered>, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the image: {e}"))?;
    let format = reader
        .format()
        .ok_or_else(|| "the image's format is not known".to_owned())?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(DECODE_LIMIT_SIDE);
    limits.max_image_height = Some(DECODE_LIMIT_SIDE);
    limits.max_alloc = Some(DECODE_LIMIT_ALLOC);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => format!(
            "the image is over the decoding limits ({DECODE_LIMIT_SIDE} pixels each way, \
             {} MiB): {l}",
            DECODE_LIMIT_ALLOC >> 20
        ),
        e => format!("cannot decode the image: {e}"),
    })?;
    let (out_format, mime, ext) = match format {
        ImageFormat::Jpeg => (ImageFormat::Jpeg, "image/jpeg", "jpg"),
        ImageFormat::WebP => (ImageFormat::WebP, "image/webp", "webp"),
        _ => (ImageFormat::Png, "image/png", "png"),
    };
    let mut out = Vec::with_capacity(conversions.len());
    for c in conversions {
        let scaled = if img.width() > c.width || img.height() > c.height {
            img.thumbnail(c.width, c.height)
        } else {
            img.clone()
        };
        let scaled = match out_format {
            ImageFormat::Jpeg => DynamicImage::ImageRgb8(scaled.to_rgb8()),
            ImageFormat::WebP => DynamicImage::ImageRgba8(scaled.to_rgba8()),
            _ => scaled,
        };
        let mut buf = Cursor::new(Vec::new());
        scaled
            .write_to(&mut buf, out_format)
            .map_err(|e| format!("cannot encode the conversion `{}`: {e}", c.name))?;
        out.push(Rendered {
            name: c.name.clone(),
            bytes: buf.into_inner(),
            width: scaled.width(),
            height: scaled.height(),
            mime,
            ext,
        });
    }
    Ok(out)
}

impl MediaLibrary {
    /// Runs the conversions of the file `id` now (what [`ConversionJob`]
    /// does) and returns what it records in the file's `conversions`. A
    /// file that is gone (deleted meanwhile) is nothing to do; an image
    /// that cannot be decoded fails with a validation error (and the
    /// reason is recorded).
    pub async fn convert(&self, id: Uuid) -> Result<serde_json::Value> {
        let Some(item) = store::one(&self.db, id).await? else {
            return Ok(serde_json::json!({}));
        };
        let Some(decl) = self.collection(&item.resource, &item.collection) else {
            return Ok(serde_json::json!({}));
        };
        let conversions = decl.spec.conversions.clone();
        if conversions.is_empty() || !item.mime.starts_with("image/") {
            return Ok(serde_json::json!({}));
        }
        let disk = self.disks.disk(&item.disk)?;
        let bytes = disk
            .get(&StoragePath::parse(&item.path)?)
            .await?
            .bytes()
            .await?;
        let rendered = tokio::task::spawn_blocking(move || render(&bytes, &conversions))
            .await
            .map_err(|e| Error::Configuration(format!("the conversion panicked: {e}")))?;
        let rendered = match rendered {
            Ok(r) => r,
            Err(reason) => {
                store::set_conversions(&self.db, id, &serde_json::json!({ "error": reason }))
                    .await?;
                return Err(Error::invalid("file", "not_convertible", reason));
            }
        };
        let mut done = serde_json::Map::new();
        for r in rendered {
            let path = format!("{}/conversions/{}.{}", item.dir(), r.name, r.ext);
            let size = r.bytes.len();
            disk.put(
                &StoragePath::parse(&path)?,
                bytes_stream(r.bytes),
                PutOptions::default().content_type(r.mime),
            )
            .await?;
            done.insert(
                r.name,
                serde_json::json!({
                    "path": path, "width": r.width, "height": r.height,
                    "mime": r.mime, "size": size,
                }),
            );
        }
        let done = serde_json::Value::Object(done);
        store::set_conversions(&self.db, id, &done).await?;
        // Deleted while converting: remove what was just written.
        if store::one(&self.db, id).await?.is_none() {
            self.remove_files(&item).await;
        }
        Ok(done)
    }

    /// Queues (or, without jobs, runs) the conversions of `item`; what
    /// they recorded when they ran at once.
    pub(crate) async fn queue_conversions(
        &self,
        item: &crate::MediaItem,
    ) -> Option<serde_json::Value> {
        if let Some(jobs) = &self.jobs {
            match jobs.dispatch(ConversionJob { media_id: item.id }).await {
                Ok(_) => return None,
                Err(e) => {
                    tracing::warn!(media = %item.id, error = %e, "media: cannot queue the conversions; running them now");
                }
            }
        }
        match self.convert(item.id).await {
            Ok(done) => Some(done),
            Err(e) => {
                tracing::warn!(media = %item.id, error = %e, "media: conversions failed");
                store::one(&self.db, item.id)
                    .await
                    .ok()
                    .flatten()
                    .map(|m| m.conversions)
            }
        }
    }
}
