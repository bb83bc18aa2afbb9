//! Helpers shared by the media library's tests (`media.rs`,
//! `media_web.rs`): a product resource, a platform with the media library on
//! a local disk, images.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use platform_core::context::Context;
use platform_core::storage::{FileStorage, LocalStorage};
use platform_core::{Platform, Registry, Resource};
use platform_media::{Collection, Media, MediaLibrary, Upload};
use platform_tests::{TestDb, test_key};
use tower::ServiceExt;

/// A product with images (soft-deleted first, force-deleted for good).
#[derive(Resource, Debug, Clone, PartialEq)]
#[resource(table = "media_products", soft_delete)]
pub struct Product {
    /// Id.
    #[resource(primary_key, sortable)]
    pub id: i64,
    /// Name.
    pub name: String,
    /// Stock-keeping unit.
    #[resource(unique, max_length = 40)]
    pub sku: String,
    /// Price in cents.
    #[resource(money)]
    pub price_cents: i64,
    /// Soft-deletion time.
    pub deleted_at: Option<DateTime<Utc>>,
}

pub fn registry() -> Registry {
    Registry::builder()
        .register::<Product>()
        .build()
        .expect("registry")
}

pub fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "platform-media-{}",
        platform_core::crypto::random_token(8).to_ascii_lowercase()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn media() -> Media {
    Media::new()
        .disk("public")
        .sweep_grace(Duration::ZERO)
        .collection::<Product>(
            "images",
            Collection::many()
                .accept(["image/png", "image/jpeg", "image/webp"])
                .max_size(5 << 20)
                .conversion("thumb", 200, 200)
                .conversion("web", 1200, 1200),
        )
        .collection::<Product>(
            "manual",
            Collection::single()
                .accept(["application/pdf", "text/plain"])
                .max_size(1024),
        )
}

/// A platform over `db` with files under `dir` (no jobs: conversions run
/// at once).
pub async fn platform(db: &TestDb, dir: &Path) -> Platform {
    platform_with(
        db,
        FileStorage::new().disk("public", LocalStorage::new(dir)),
    )
    .await
}

pub async fn platform_with(db: &TestDb, storage: FileStorage) -> Platform {
    let registry = registry();
    db.create_tables(&registry).await;
    Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(registry)
        .max_connections(4)
        .outbox_retry_after(Duration::from_millis(300))
        .with(storage.ignore_env())
        .with(media())
        .build()
        .await
        .unwrap_or_else(|e| panic!("platform on {}: {e}", db.backend.name()))
}

pub async fn product(p: &Platform, sku: &str) -> i64 {
    p.repo::<Product>(&Context::system())
        .create(&Product {
            id: 0,
            name: format!("Product {sku}"),
            sku: sku.into(),
            price_cents: 1999,
            deleted_at: None,
        })
        .await
        .unwrap()
        .id
}

/// A PNG of `w` x `h`.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Every file under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn lib(p: &Platform) -> Arc<MediaLibrary> {
    p.get::<MediaLibrary>().expect("the media library")
}

pub async fn get(app: &Router, url: &str) -> (StatusCode, Vec<u8>) {
    let path = &url[url.find("/files/").expect("a file URL")..];
    let res = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    (
        status,
        res.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}

/// A body that arrives in `chunks` chunks of `size` bytes, after `head`.
pub fn chunked(head: Vec<u8>, chunks: usize, size: usize) -> Upload {
    let first = futures::stream::once(async move { Ok(platform_core::bytes::Bytes::from(head)) });
    let rest = futures::stream::iter(
        (0..chunks).map(move |_| Ok(platform_core::bytes::Bytes::from(vec![b'a'; size]))),
    );
    Upload::stream("big.txt", Box::pin(futures::StreamExt::chain(first, rest)))
}
