//! The media library (platform-media) on every configured database: attach,
//! list, reorder, delete; conversions decoded back; hostile uploads
//! (traversal in names, a script named `.png`, oversize, a decompression
//! bomb); permissions through the API; files removed on force-delete; the
//! orphan sweep; an S3 disk when `PLATFORM_TEST_S3_URL` is set.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use platform_core::access::NewUser;
use platform_core::context::Context;
use platform_core::storage::{Disks, FileStorage, LocalStorage, Storage, StorageExt};
use platform_core::{Platform, Registry, Resource};
use platform_media::{Collection, Media, MediaLibrary, RecordRef, Upload};
use platform_tests::{TestDb, all_backends, test_key};
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

fn registry() -> Registry {
    Registry::builder()
        .register::<Product>()
        .build()
        .expect("registry")
}

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "platform-media-{}",
        platform_core::crypto::random_token(8).to_ascii_lowercase()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn media() -> Media {
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
async fn platform(db: &TestDb, dir: &Path) -> Platform {
    platform_with(
        db,
        FileStorage::new().disk("public", LocalStorage::new(dir)),
    )
    .await
}

async fn platform_with(db: &TestDb, storage: FileStorage) -> Platform {
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

async fn product(p: &Platform, sku: &str) -> i64 {
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
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
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

fn lib(p: &Platform) -> Arc<MediaLibrary> {
    p.get::<MediaLibrary>().expect("the media library")
}

#[tokio::test]
async fn attach_list_reorder_delete_and_conversions_on_every_backend() {
    for db in all_backends().await {
        let dir = temp_dir();
        let p = platform(&db, &dir).await;
        let b = db.backend.name();
        let lib = lib(&p);
        let sys = Context::system();
        let id = product(&p, "P-1").await;
        let rec = RecordRef::new("products", id);
        let mut ids = Vec::new();
        for n in 0..3 {
            let item = lib
                .attach(
                    &p,
                    &sys,
                    &rec,
                    "images",
                    Upload::bytes(format!("photo {n}.PNG"), png(800, 400)),
                )
                .await
                .unwrap_or_else(|e| panic!("{b}: attach: {e}"));
            assert_eq!(item.mime, "image/png", "{b}");
            assert_eq!(item.file_name, format!("photo {n}.png"), "{b}");
            assert_eq!(item.position, n + 1, "{b}");
            ids.push(item.id);
        }
        let listed = lib.list(&p, &sys, &rec, Some("images")).await.unwrap();
        assert_eq!(listed.iter().map(|m| m.id).collect::<Vec<_>>(), ids, "{b}");
        // Conversions (run at once without jobs): decoded back, the right size.
        let first = &listed[0];
        for (name, w, h) in [("thumb", 200, 100), ("web", 800, 400)] {
            let path = first
                .conversion_path(name)
                .unwrap_or_else(|| panic!("{b}: {name} missing: {}", first.conversions));
            let bytes = std::fs::read(dir.join(path)).unwrap();
            let img = image::load_from_memory(&bytes).unwrap();
            assert_eq!((img.width(), img.height()), (w, h), "{b}: {name}");
            assert_eq!(first.conversions[name]["width"], w, "{b}");
        }
        // Reorder: the last first.
        let order = vec![ids[2], ids[0]];
        lib.reorder(&p, &sys, &order).await.unwrap();
        let listed = lib.list(&p, &sys, &rec, Some("images")).await.unwrap();
        assert_eq!(
            listed.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![ids[2], ids[0], ids[1]],
            "{b}"
        );
        // An id of another record is refused.
        let other = product(&p, "P-2").await;
        let foreign = lib
            .attach(
                &p,
                &sys,
                &RecordRef::new("products", other),
                "images",
                Upload::bytes("x.png", png(10, 10)),
            )
            .await
            .unwrap();
        let err = lib
            .reorder(&p, &sys, &[ids[0], foreign.id])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "validation_failed", "{b}: {err}");
        // Delete: the row, the file and its conversions go.
        let gone = listed[1].clone();
        assert!(dir.join(&gone.path).exists());
        lib.delete(&p, &sys, gone.id).await.unwrap();
        assert!(!dir.join(&gone.path).exists(), "{b}");
        assert!(
            !dir.join(gone.conversion_path("thumb").unwrap()).exists(),
            "{b}"
        );
        assert_eq!(
            lib.list(&p, &sys, &rec, None).await.unwrap().len(),
            2,
            "{b}"
        );
        assert!(lib.get(&p, &sys, gone.id).await.is_err());
        // A single-file collection replaces its file.
        let a = lib
            .attach(
                &p,
                &sys,
                &rec,
                "manual",
                Upload::bytes("manual.txt", "version one"),
            )
            .await
            .unwrap();
        let b2 = lib
            .attach(
                &p,
                &sys,
                &rec,
                "manual",
                Upload::bytes("manual.txt", "version two"),
            )
            .await
            .unwrap();
        let manual = lib.list(&p, &sys, &rec, Some("manual")).await.unwrap();
        assert_eq!(
            manual.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![b2.id],
            "{b}"
        );
        assert!(!dir.join(&a.path).exists(), "{b}: the replaced file stays");
        // Signed URLs are served by the file route.
        let app = platform_admin::app_router(&p)
            .unwrap()
            .with_state(p.clone());
        let url = lib.url(&listed[0], Some("thumb")).unwrap();
        let (status, body) = get(&app, &url).await;
        assert_eq!(status, StatusCode::OK, "{b}: {url}");
        assert_eq!(image::load_from_memory(&body).unwrap().width(), 200);
        p.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

async fn get(app: &Router, url: &str) -> (StatusCode, Vec<u8>) {
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
fn chunked(head: Vec<u8>, chunks: usize, size: usize) -> Upload {
    let first = futures::stream::once(async move { Ok(platform_core::bytes::Bytes::from(head)) });
    let rest = futures::stream::iter(
        (0..chunks).map(move |_| Ok(platform_core::bytes::Bytes::from(vec![b'a'; size]))),
    );
    Upload::stream("big.txt", Box::pin(futures::StreamExt::chain(first, rest)))
}

#[tokio::test]
async fn hostile_uploads_are_refused_and_nothing_is_written() {
    for db in all_backends().await {
        let dir = temp_dir();
        let p = platform(&db, &dir).await;
        let b = db.backend.name();
        let lib = lib(&p);
        let sys = Context::system();
        let id = product(&p, "H-1").await;
        let rec = RecordRef::new("products", id);
        // Path traversal in the name: only the last segment is kept.
        let item = lib
            .attach(
                &p,
                &sys,
                &rec,
                "images",
                Upload::bytes("../../../../etc/cron.d/x.png", png(4, 4)),
            )
            .await
            .unwrap();
        assert_eq!(item.file_name, "x.png", "{b}");
        assert!(
            item.path.starts_with(&format!("media/product/{id}/")),
            "{b}: {}",
            item.path
        );
        for f in files_under(&dir) {
            assert!(
                f.starts_with(dir.join("media")),
                "{b}: {f:?} outside the media directory"
            );
        }
        let before = files_under(&dir).len();
        // A script named `.png`: refused by its content.
        let err = lib
            .attach(
                &p,
                &sys,
                &rec,
                "images",
                Upload::bytes("cat.png", "<script>alert(document.cookie)</script>"),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not accepted"), "{b}: {err}");
        // A PNG where only text is accepted, and a PDF claimed as an image.
        let err = lib
            .attach(
                &p,
                &sys,
                &rec,
                "manual",
                Upload::bytes("manual.txt", png(4, 4)),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("image/png"), "{b}: {err}");
        let err = lib
            .attach(
                &p,
                &sys,
                &rec,
                "images",
                Upload::bytes("a.jpg", "%PDF-1.7 ..."),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("application/pdf"), "{b}: {err}");
        // Oversize, found while streaming (the limit is 1 KiB): nothing written.
        let err = lib
            .attach(
                &p,
                &sys,
                &rec,
                "manual",
                chunked(b"plain text ".to_vec(), 64, 100),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("larger than"), "{b}: {err}");
        // Oversize in the first chunk.
        let err = lib
            .attach(
                &p,
                &sys,
                &rec,
                "manual",
                Upload::bytes("big.txt", vec![b'a'; 5000]),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("larger than"), "{b}: {err}");
        // Empty.
        assert!(
            lib.attach(&p, &sys, &rec, "manual", Upload::bytes("e.txt", ""))
                .await
                .is_err()
        );
        // An unknown collection, a missing record.
        assert!(
            lib.attach(&p, &sys, &rec, "nope", Upload::bytes("a.txt", "x"))
                .await
                .is_err()
        );
        let err = lib
            .attach(
                &p,
                &sys,
                &RecordRef::new("products", 999_999),
                "manual",
                Upload::bytes("a.txt", "x"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "not_found", "{b}");
        assert_eq!(
            files_under(&dir).len(),
            before,
            "{b}: a refused upload left a file"
        );
        assert_eq!(
            lib.list(&p, &sys, &rec, None).await.unwrap().len(),
            1,
            "{b}"
        );
        p.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// CRC-32 (PNG chunks).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG claiming `w` x `h` RGB pixels whose data is a few hundred bytes
/// of zeros (a zlib stream of stored blocks): what a decompression bomb
/// looks like to the decoder's header checks.
fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(data);
        out.extend_from_slice(&c);
        out.extend_from_slice(&crc32(&c).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let raw = vec![0u8; 512];
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    z.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    z.extend_from_slice(&raw);
    let (mut a, mut s) = (1u32, 0u32);
    for &x in &raw {
        a = (a + u32::from(x)) % 65521;
        s = (s + a) % 65521;
    }
    z.extend_from_slice(&((s << 16) | a).to_be_bytes());
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The process's peak resident memory (VmHWM), in KiB, where Linux tells.
fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_decompression_bomb_fails_its_conversions_clearly_with_bounded_memory() {
    let db = TestDb::sqlite();
    let dir = temp_dir();
    let p = platform(&db, &dir).await;
    let lib = lib(&p);
    let sys = Context::system();
    let id = product(&p, "B-1").await;
    let rec = RecordRef::new("products", id);
    let before = peak_rss_kib();
    let started = Instant::now();
    // 100,000 x 100,000 RGB would be 30 GB; 9,000 x 9,000 passes the side
    // limit but not the allocation limit (243 MB > 256 MiB? no: 243 MB of
    // RGB, 324 MB once RGBA): both refused before any pixel buffer.
    for (w, h) in [(100_000, 100_000), (11_000, 11_000)] {
        let bomb = bomb_png(w, h);
        assert!(bomb.len() < 1024);
        // It is a PNG: accepted as a file...
        let item = lib
            .attach(&p, &sys, &rec, "images", Upload::bytes("bomb.png", bomb))
            .await
            .unwrap();
        // ...whose conversions fail with the reason recorded.
        let err = lib.convert(item.id).await.unwrap_err();
        assert!(
            err.to_string().contains("decoding limits"),
            "{w}x{h}: {err}"
        );
        let row = lib.get(&p, &sys, item.id).await.unwrap();
        assert!(
            row.conversions["error"]
                .as_str()
                .is_some_and(|e| e.contains("limits")),
            "{}",
            row.conversions
        );
        assert!(row.conversion_path("thumb").is_none());
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    if let (Some(a), Some(b)) = (before, peak_rss_kib()) {
        assert!(
            b.saturating_sub(a) < 200 * 1024,
            "peak memory grew by {} KiB",
            b - a
        );
    }
    p.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A multipart body with one file part.
fn multipart(name: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----platform-media-test-boundary".to_owned();
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: image/gif\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn user(p: &Platform, email: &str, role: Option<(&str, &[&str])>) -> String {
    let console = Context::console();
    let access = p.access();
    let u = access
        .create_user(
            &console,
            NewUser {
                email: email.into(),
                name: email.into(),
                password: "correct horse battery staple".into(),
            },
        )
        .await
        .unwrap();
    if let Some((role, perms)) = role {
        if role != "super_admin" {
            access.create_role(&console, role).await.unwrap();
            let perms: Vec<String> = perms.iter().map(|s| (*s).to_owned()).collect();
            access
                .set_role_permissions(&console, role, &perms)
                .await
                .unwrap();
        }
        access.assign_role(&console, u.id, role).await.unwrap();
    }
    access
        .create_token(&console, u.id, "test", &[], None)
        .await
        .unwrap()
        .plain_text
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<(String, Vec<u8>)>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some((ct, b)) => req
            .header(header::CONTENT_TYPE, ct)
            .header(header::CONTENT_LENGTH, b.len())
            .body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn the_api_uploads_lists_reorders_deletes_and_checks_permissions() {
    for db in all_backends().await {
        let dir = temp_dir();
        let p = platform(&db, &dir).await;
        let b = db.backend.name();
        let app = platform_admin::app_router(&p)
            .unwrap()
            .with_state(p.clone());
        let admin = user(&p, "admin@example.com", Some(("super_admin", &[]))).await;
        let viewer = user(
            &p,
            "viewer@example.com",
            Some(("product_viewer", &["view_any_product", "view_product"])),
        )
        .await;
        let editor = user(
            &p,
            "editor@example.com",
            Some(("product_editor", &["update_product"])),
        )
        .await;
        let nobody = user(&p, "nobody@example.com", None).await;
        let id = product(&p, "A-1").await;
        let upload = format!("/api/products/{id}/media/images");
        // Upload as the admin: 201, sniffed type, conversions listed with URLs.
        let (s, body) = send(
            &app,
            Method::POST,
            &upload,
            Some(&admin),
            Some(multipart("a.gif", &png(640, 480))),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}: {body}");
        assert_eq!(body["data"]["mime"], "image/png", "{b}");
        assert_eq!(body["data"]["file_name"], "a.png", "{b}");
        assert_eq!(
            body["data"]["conversions"]["thumb"]["width"], 200,
            "{b}: {body}"
        );
        let first = body["data"]["id"].as_str().unwrap().to_owned();
        // An editor with `update_product` only may attach (no `view`).
        let (s, body) = send(
            &app,
            Method::POST,
            &upload,
            Some(&editor),
            Some(multipart("b.png", &png(20, 20))),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}: {body}");
        let second = body["data"]["id"].as_str().unwrap().to_owned();
        // Refused: a viewer, a user without permissions, nobody.
        for (who, token, want) in [
            ("viewer", Some(viewer.as_str()), StatusCode::FORBIDDEN),
            ("nobody", Some(nobody.as_str()), StatusCode::FORBIDDEN),
            ("anonymous", None, StatusCode::UNAUTHORIZED),
        ] {
            let (s, _) = send(
                &app,
                Method::POST,
                &upload,
                token,
                Some(multipart("c.png", &png(8, 8))),
            )
            .await;
            assert_eq!(s, want, "{b}: {who} uploads");
        }
        // Listing: the viewer may, with signed URLs that serve the files.
        let (s, body) = send(
            &app,
            Method::GET,
            &format!("/api/products/{id}/media"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}: {body}");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{b}");
        let url = data[0]["conversions"]["thumb"]["url"].as_str().unwrap();
        let (s, bytes) = get(&app, url).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(image::load_from_memory(&bytes).unwrap().width(), 200);
        for token in [Some(editor.as_str()), Some(nobody.as_str())] {
            let (s, _) = send(
                &app,
                Method::GET,
                &format!("/api/products/{id}/media"),
                token,
                None,
            )
            .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        }
        let (s, _) = send(
            &app,
            Method::GET,
            &format!("/api/products/{id}/media"),
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        // Wrong type and oversize over HTTP.
        let (s, body) = send(
            &app,
            Method::POST,
            &upload,
            Some(&admin),
            Some(multipart("x.png", b"<?php system($_GET['c']); ?>")),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {body}");
        let (s, _) = send(
            &app,
            Method::POST,
            &format!("/api/products/{id}/media/manual"),
            Some(&admin),
            Some(multipart("m.txt", &vec![b'a'; 200 << 10])),
        )
        .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
        let (s, _) = send(
            &app,
            Method::POST,
            &format!("/api/products/{id}/media/nope"),
            Some(&admin),
            Some(multipart("m.txt", b"x")),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        // Reorder, then delete.
        let reorder = |ids: Vec<&str>| {
            (
                String::from("application/json"),
                serde_json::to_vec(&serde_json::json!({ "ids": ids })).unwrap(),
            )
        };
        let (s, _) = send(
            &app,
            Method::POST,
            "/api/media/reorder",
            Some(&viewer),
            Some(reorder(vec![&second, &first])),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, _) = send(
            &app,
            Method::POST,
            "/api/media/reorder",
            None,
            Some(reorder(vec![&second, &first])),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        let (s, _) = send(
            &app,
            Method::POST,
            "/api/media/reorder",
            Some(&editor),
            Some(reorder(vec![&second, &first])),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        let (_, body) = send(
            &app,
            Method::GET,
            &format!("/api/products/{id}/media?collection=images"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(body["data"][0]["id"], second.as_str(), "{b}");
        let (s, _) = send(
            &app,
            Method::DELETE,
            &format!("/api/media/{first}"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, _) = send(
            &app,
            Method::DELETE,
            &format!("/api/media/{first}"),
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        let (s, _) = send(
            &app,
            Method::DELETE,
            &format!("/api/media/{first}"),
            Some(&editor),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        let (s, _) = send(
            &app,
            Method::DELETE,
            &format!("/api/media/{first}"),
            Some(&editor),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        let (s, _) = send(
            &app,
            Method::DELETE,
            "/api/media/not-a-uuid",
            Some(&editor),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        p.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn force_delete_removes_files_and_the_sweep_removes_orphans() {
    for db in all_backends().await {
        let dir = temp_dir();
        let p = platform(&db, &dir).await;
        let b = db.backend.name();
        let lib = lib(&p);
        let sys = Context::system();
        let keep = product(&p, "K-1").await;
        let gone = product(&p, "G-1").await;
        let orphan = product(&p, "O-1").await;
        let mut paths = std::collections::HashMap::new();
        for id in [keep, gone, orphan] {
            let item = lib
                .attach(
                    &p,
                    &sys,
                    &RecordRef::new("products", id),
                    "images",
                    Upload::bytes("p.png", png(300, 300)),
                )
                .await
                .unwrap();
            paths.insert(id, item);
        }
        let repo = p.repo::<Product>(&sys);
        // A soft delete keeps the files (the record can come back).
        repo.delete(gone).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(dir.join(&paths[&gone].path).exists(), "{b}");
        // Force-deleted: gone, through the outbox.
        repo.force_delete(gone).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while dir.join(&paths[&gone].path).exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !dir.join(&paths[&gone].path).exists(),
            "{b}: force-delete left the file"
        );
        assert!(
            files_under(&dir.join(paths[&gone].dir_for_test())).is_empty(),
            "{b}"
        );
        assert!(lib.get(&p, &sys, paths[&gone].id).await.is_err(), "{b}");
        // A record removed behind the write path's back, and a stray file.
        let mut q = p.db().sql();
        q.push("DELETE FROM media_products WHERE id = ")
            .bind_i64(orphan);
        p.db().execute(q).await.unwrap();
        let disks = p.get::<Disks>().unwrap();
        let stray = format!("media/product/{keep}/{}/stray.png", uuid::Uuid::now_v7());
        disks
            .disk("public")
            .unwrap()
            .put_bytes(&stray, png(2, 2))
            .await
            .unwrap();
        let report = lib.sweep(&p).await.unwrap();
        assert_eq!(report.rows_removed, 1, "{b}: {report:?}");
        assert_eq!(report.files_removed, 1, "{b}: {report:?}");
        assert!(!dir.join(&paths[&orphan].path).exists(), "{b}");
        assert!(!dir.join(&stray).exists(), "{b}");
        assert!(
            dir.join(&paths[&keep].path).exists(),
            "{b}: the sweep removed a live file"
        );
        assert!(
            dir.join(paths[&keep].conversion_path("thumb").unwrap())
                .exists(),
            "{b}"
        );
        // Nothing left to do.
        assert_eq!(lib.sweep(&p).await.unwrap(), Default::default(), "{b}");
        p.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

trait DirForTest {
    fn dir_for_test(&self) -> String;
}

impl DirForTest for platform_media::MediaItem {
    fn dir_for_test(&self) -> String {
        self.path.rsplit_once('/').unwrap().0.to_owned()
    }
}

#[tokio::test]
async fn conversions_run_as_a_job_when_jobs_are_added() {
    let db = TestDb::sqlite();
    let dir = temp_dir();
    let registry = registry();
    db.create_tables(&registry).await;
    let p = Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(registry)
        .max_connections(4)
        .with(
            FileStorage::new()
                .ignore_env()
                .disk("public", LocalStorage::new(&dir)),
        )
        .with(
            platform_jobs::Jobs::new()
                .ignore_env()
                .poll_interval(Duration::from_millis(50)),
        )
        .with(media())
        .build()
        .await
        .unwrap();
    let lib = lib(&p);
    let sys = Context::system();
    let id = product(&p, "J-1").await;
    let item = lib
        .attach(
            &p,
            &sys,
            &RecordRef::new("products", id),
            "images",
            Upload::bytes("j.png", png(500, 1000)),
        )
        .await
        .unwrap();
    assert_eq!(item.conversions, serde_json::json!({}), "queued, not run");
    p.start_workers();
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let row = lib.get(&p, &sys, item.id).await.unwrap();
        if row.conversion_path("thumb").is_some() || Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        done.conversions["thumb"]["width"], 100,
        "{}",
        done.conversions
    );
    assert_eq!(done.conversions["thumb"]["height"], 200);
    assert_eq!(done.conversions["web"]["height"], 1000, "never scaled up");
    p.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The media library on an S3 disk (`PLATFORM_TEST_S3_URL`, the moto server
/// `.ci/run` starts).
#[tokio::test]
async fn media_on_an_s3_disk() {
    let url = match std::env::var("PLATFORM_TEST_S3_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "PLATFORM_TEST_S3_URL must be set under CI=true"
            );
            eprintln!("skipping: PLATFORM_TEST_S3_URL is not set");
            return;
        }
    };
    let db = TestDb::sqlite();
    let p = platform_with(
        &db,
        FileStorage::new()
            .disk_url("public", url)
            .scheme("s3", platform_adapters::storage::S3Storage::open),
    )
    .await;
    let lib = lib(&p);
    let sys = Context::system();
    let id = product(
        &p,
        &format!("S3-{}", platform_core::crypto::random_token(6)),
    )
    .await;
    let rec = RecordRef::new("products", id);
    let item = lib
        .attach(
            &p,
            &sys,
            &rec,
            "images",
            Upload::bytes("s3.png", png(400, 400)),
        )
        .await
        .unwrap();
    let s3: Arc<dyn Storage> = p.get::<Disks>().unwrap().disk("public").unwrap();
    let thumb = s3
        .get_bytes(
            item.conversion_path("thumb")
                .unwrap_or_else(|| panic!("{}", item.conversions)),
        )
        .await;
    let row = lib.get(&p, &sys, item.id).await.unwrap();
    let thumb = match thumb {
        Ok(t) => t,
        Err(_) => s3
            .get_bytes(row.conversion_path("thumb").unwrap())
            .await
            .unwrap(),
    };
    assert_eq!(image::load_from_memory(&thumb).unwrap().width(), 200);
    // Oversize on S3: nothing stored.
    let before = s3.list_paths("media").await.unwrap().len();
    assert!(
        lib.attach(
            &p,
            &sys,
            &rec,
            "manual",
            chunked(b"text ".to_vec(), 40, 100)
        )
        .await
        .is_err()
    );
    assert_eq!(s3.list_paths("media").await.unwrap().len(), before);
    // Force-delete removes the objects.
    p.repo::<Product>(&sys).force_delete(id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s3.exists(&row.path).await.unwrap() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!s3.exists(&row.path).await.unwrap());
    p.shutdown().await;
}

#[tokio::test]
async fn the_media_routes_are_in_the_permission_matrix_on_every_backend() {
    for db in all_backends().await {
        let dir = temp_dir();
        let p = platform(&db, &dir).await;
        let b = db.backend.name();
        let report = platform_admin::matrix::PermissionMatrix::new(&p)
            .run()
            .await
            .unwrap_or_else(|e| panic!("{b}: {e}"));
        assert!(report.is_ok(), "{b}:\n{}", report.mismatch_table());
        // Upload and list for products, delete and reorder.
        assert_eq!(report.capability_routes(), 4, "{b}");
        p.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

const CSRF: &str = "media-test-csrf";

/// Stands in for the session layer: the user of `x-test-user`.
async fn test_auth(
    platform: Platform,
    mut req: Request<Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let user = req
        .headers()
        .get("x-test-user")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    if let Some(id) = user
        && let Ok(Some(auth)) =
            platform_admin::panel::PanelAuth::for_user(&platform, id, CSRF).await
    {
        req.extensions_mut().insert(auth);
    }
    next.run(req).await
}

async fn panel_user(p: &Platform, email: &str, role: Option<(&str, &[&str])>) -> i64 {
    let console = Context::console();
    let access = p.access();
    let u = access
        .create_user(
            &console,
            NewUser {
                email: email.into(),
                name: email.into(),
                password: "correct horse battery staple".into(),
            },
        )
        .await
        .unwrap();
    if let Some((role, perms)) = role {
        if role != "super_admin" {
            access.create_role(&console, role).await.unwrap();
            let perms: Vec<String> = perms.iter().map(|s| (*s).to_owned()).collect();
            access
                .set_role_permissions(&console, role, &perms)
                .await
                .unwrap();
        }
        access.assign_role(&console, u.id, role).await.unwrap();
    }
    u.id
}

/// A section form: `_csrf` first, then `fields`, then the file if any.
fn section_form(
    csrf: &str,
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> (String, Vec<u8>) {
    let boundary = "----media-panel-boundary";
    let mut body = Vec::new();
    let mut all = vec![("_csrf", csrf)];
    all.extend_from_slice(fields);
    for (k, v) in all {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, content)) = file {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn panel_send(
    app: &Router,
    user: i64,
    method: Method,
    uri: &str,
    body: Option<(String, Vec<u8>)>,
) -> (StatusCode, String, Option<String>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-test-user", user.to_string());
    let req = match body {
        Some((ct, b)) => req.header(header::CONTENT_TYPE, ct).body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let location = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8_lossy(&bytes).into_owned(),
        location,
    )
}

#[tokio::test]
async fn the_panel_shows_a_gallery_and_uploads_and_removes_without_javascript() {
    for db in all_backends().await {
        let dir = temp_dir();
        let p = platform(&db, &dir).await;
        let b = db.backend.name();
        let lib = lib(&p);
        let pp = p.clone();
        let app = Router::new()
            .nest("/admin", platform_admin::panel_router())
            .layer(axum::middleware::from_fn(
                move |req: Request<Body>, next: axum::middleware::Next| {
                    test_auth(pp.clone(), req, next)
                },
            ))
            .with_state(p.clone());
        let admin = panel_user(&p, "admin@example.com", Some(("super_admin", &[]))).await;
        let viewer = panel_user(
            &p,
            "viewer@example.com",
            Some(("product_viewer", &["view_any_product", "view_product"])),
        )
        .await;
        let id = product(&p, "PANEL-1").await;
        let page = format!("/admin/products/{id}");
        let action = format!("{page}/sections/media");
        // The view page: an empty gallery and an upload form per collection.
        let (s, html, _) = panel_send(&app, admin, Method::GET, &page, None).await;
        assert_eq!(s, StatusCode::OK, "{b}: {html}");
        assert!(
            html.contains(&format!(
                "action=\"{action}\" enctype=\"multipart/form-data\""
            )),
            "{b}: {html}"
        );
        assert!(
            html.contains("accept=\"image/png,image/jpeg,image/webp\""),
            "{b}"
        );
        // Upload, without JavaScript: a redirect back with a message.
        let form = section_form(
            CSRF,
            &[("op", "upload"), ("collection", "images")],
            Some(("<b>shot<b>.png", &png(400, 200))),
        );
        let (s, body, location) = panel_send(&app, admin, Method::POST, &action, Some(form)).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{b}: {body}");
        assert_eq!(location.as_deref(), Some(page.as_str()), "{b}");
        let items = lib
            .list(
                &p,
                &Context::system(),
                &RecordRef::new("products", id),
                None,
            )
            .await
            .unwrap();
        assert_eq!(items.len(), 1, "{b}");
        assert_eq!(items[0].file_name, "_b_shot_b_.png", "{b}");
        // The gallery shows the thumbnail through a signed, relative URL.
        let (_, html, _) = panel_send(&app, admin, Method::GET, &page, None).await;
        assert!(
            html.contains("<img src=\"/files/public/media/product/"),
            "{b}: {html}"
        );
        assert!(html.contains("thumb.png?expires="), "{b}");
        assert!(!html.contains("<b>shot"), "{b}: unescaped name");
        // The edit page has it too, and posts come back to it.
        let (_, html, _) =
            panel_send(&app, admin, Method::GET, &format!("{page}/edit"), None).await;
        assert!(
            html.contains(&format!("action=\"{action}?from=edit\"")),
            "{b}"
        );
        // A wrong or missing CSRF token: refused, nothing stored.
        for csrf in ["forged", ""] {
            let form = section_form(
                csrf,
                &[("op", "upload"), ("collection", "images")],
                Some(("x.png", &png(8, 8))),
            );
            let (s, _, _) = panel_send(&app, admin, Method::POST, &action, Some(form)).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{b}: csrf {csrf:?}");
        }
        // A viewer sees the gallery without forms, and may not post.
        let (s, html, _) = panel_send(&app, viewer, Method::GET, &page, None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert!(
            html.contains("_b_shot_b_.png") && !html.contains("enctype=\"multipart/form-data\""),
            "{b}"
        );
        let form = section_form(
            CSRF,
            &[("op", "upload"), ("collection", "images")],
            Some(("v.png", &png(8, 8))),
        );
        let (s, _, _) = panel_send(&app, viewer, Method::POST, &action, Some(form)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        // A wrong type comes back as a message on the page.
        let form = section_form(
            CSRF,
            &[("op", "upload"), ("collection", "images")],
            Some(("evil.png", b"<script>alert(1)</script>")),
        );
        let (s, _, _) = panel_send(&app, admin, Method::POST, &action, Some(form)).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(
            lib.list(
                &p,
                &Context::system(),
                &RecordRef::new("products", id),
                None
            )
            .await
            .unwrap()
            .len(),
            1,
            "{b}"
        );
        // Remove.
        let media = items[0].id.to_string();
        let form = section_form(CSRF, &[("op", "delete"), ("media", &media)], None);
        let (s, _, _) = panel_send(&app, viewer, Method::POST, &action, Some(form.clone())).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, _, _) = panel_send(&app, admin, Method::POST, &action, Some(form)).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{b}");
        assert!(
            lib.list(
                &p,
                &Context::system(),
                &RecordRef::new("products", id),
                None
            )
            .await
            .unwrap()
            .is_empty(),
            "{b}"
        );
        assert!(!dir.join(&items[0].path).exists(), "{b}");
        p.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
