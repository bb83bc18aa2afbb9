//! Storage through the platform: named disks found with
//! `platform.get::<Disks>()`, and signed, expiring URLs served by the file
//! route (good, tampered, expired, traversal, missing, large, S3).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use platform_core::storage::{
    Disks, FileStorage, LocalStorage, MemoryStorage, StorageExt, UrlOptions,
};
use platform_core::{Platform, Registry};
use platform_tests::{TestDb, test_key};
use tower::ServiceExt;

async fn platform(db: &TestDb, storage: FileStorage) -> Platform {
    Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(Registry::default())
        .background_tasks(false)
        .max_connections(4)
        .with(storage)
        .build()
        .await
        .unwrap()
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

async fn get(app: &Router, url: &str) -> Answer {
    let path = url.strip_prefix("http://127.0.0.1:8080").unwrap_or(url);
    let res = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

fn temp_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "platform-storage-route-{}",
        platform_core::crypto::random_token(8)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const SECRET: &str = "TOP-SECRET-INVOICE-CONTENT";

#[tokio::test]
async fn signed_urls_serve_private_files_and_refuse_everything_else() {
    let db = TestDb::sqlite();
    let dir = temp_dir();
    let p = platform(
        &db,
        FileStorage::new()
            .ignore_env()
            .disk("local", LocalStorage::new(dir.join("private")))
            .disk("public", MemoryStorage::new())
            .disk_url("scratch", "memory://"),
    )
    .await;
    let disks = p.get::<Disks>().expect("the capability registers Disks");
    assert_eq!(
        disks.names().collect::<Vec<_>>(),
        ["local", "public", "scratch"]
    );
    assert_eq!(disks.default_name(), "local");
    let local = disks.disk("local").unwrap();
    local
        .put_bytes("invoices/2026/INV 7.pdf", SECRET)
        .await
        .unwrap();
    local
        .put_bytes("page.html", "<script>alert(1)</script>")
        .await
        .unwrap();
    let app = platform_admin::app_router(&p)
        .unwrap()
        .with_state(p.clone());
    let ttl = Duration::from_secs(60);

    // A good link: the file, its type and length, nosniff, inline.
    let url = disks
        .temporary_url(
            "local",
            "invoices/2026/INV 7.pdf",
            ttl,
            UrlOptions::inline(),
        )
        .unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:8080/files/local/invoices/2026/INV%207.pdf?expires="),
        "{url}"
    );
    let a = get(&app, &url).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, SECRET.as_bytes());
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(
        a.headers[header::CONTENT_LENGTH],
        SECRET.len().to_string().as_str()
    );
    assert_eq!(a.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(a.headers[header::CONTENT_DISPOSITION], "inline");
    // A download link names the file.
    let url = disks
        .temporary_url(
            "local",
            "invoices/2026/INV 7.pdf",
            ttl,
            UrlOptions::download("Rechnung 7.pdf"),
        )
        .unwrap();
    let a = get(&app, &url).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"Rechnung 7.pdf\"; filename*=UTF-8''Rechnung%207.pdf"
    );
    // HTML is served sandboxed: no script runs on the site's origin.
    let url = disks
        .temporary_url("local", "page.html", ttl, UrlOptions::inline())
        .unwrap();
    let a = get(&app, &url).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );

    // Tampered: another path, another disk, a later expiry, a dropped or
    // added download name, a changed signature: 403 and no content.
    let good = disks
        .temporary_url(
            "local",
            "invoices/2026/INV 7.pdf",
            ttl,
            UrlOptions::inline(),
        )
        .unwrap();
    let (base, query) = good.split_once('?').unwrap();
    let expires: i64 = query
        .split('&')
        .next()
        .unwrap()
        .strip_prefix("expires=")
        .unwrap()
        .parse()
        .unwrap();
    let sig = query.split("signature=").nth(1).unwrap();
    let tampered = [
        format!("{}?{query}", base.replace("INV%207.pdf", "INV%208.pdf")),
        format!("{}?{query}", base.replace("/local/", "/public/")),
        good.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 3600),
        ),
        format!("{good}&download=x.pdf"),
        good.replace(sig, &"0".repeat(sig.len())),
        format!("{base}?expires={expires}"),
        base.to_owned(),
        // Traversal, encoded or not, never reaches a file.
        format!("/files/local/invoices/2026/../../invoices/2026/INV%207.pdf?{query}"),
        format!("/files/local/%2e%2e/%2e%2e/etc/passwd?{query}"),
        format!("/files/local/..%2f..%2fetc%2fpasswd?{query}"),
    ];
    for url in tampered {
        let a = get(&app, &url).await;
        assert!(
            matches!(a.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
            "{url}: {}",
            a.status
        );
        assert!(!String::from_utf8_lossy(&a.body).contains(SECRET), "{url}");
        assert!(
            a.headers.get(header::CONTENT_DISPOSITION).is_none(),
            "{url}"
        );
    }

    // Expired: 403.
    let expired = disks
        .temporary_url_until(
            "local",
            "invoices/2026/INV 7.pdf",
            platform_core::chrono::Utc::now() - platform_core::chrono::Duration::seconds(1),
            UrlOptions::inline(),
        )
        .unwrap();
    let a = get(&app, &expired).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(String::from_utf8_lossy(&a.body), "this link has expired");

    // Signed but missing (deleted since): 404.
    let url = disks
        .temporary_url("local", "gone.txt", ttl, UrlOptions::inline())
        .unwrap();
    assert_eq!(get(&app, &url).await.status, StatusCode::NOT_FOUND);

    // A large file streams through.
    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    disks
        .disk("local")
        .unwrap()
        .put_bytes("big.bin", big.clone())
        .await
        .unwrap();
    let url = disks
        .temporary_url("local", "big.bin", ttl, UrlOptions::inline())
        .unwrap();
    let a = get(&app, &url).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(
        a.headers[header::CONTENT_LENGTH],
        big.len().to_string().as_str()
    );
    assert!(a.body == big);

    p.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without the capability there are no disks and no file route.
#[tokio::test]
async fn without_the_capability_there_is_no_file_route() {
    let db = TestDb::sqlite();
    let p = Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(Registry::default())
        .background_tasks(false)
        .build()
        .await
        .unwrap();
    assert!(p.get::<Disks>().is_none());
    let app = platform_admin::app_router(&p)
        .unwrap()
        .with_state(p.clone());
    assert_eq!(
        get(&app, "/files/local/a.txt?expires=1&signature=x")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    p.shutdown().await;
}

/// A disk chosen by URL scheme in configuration: S3 (the real server of
/// `PLATFORM_TEST_S3_URL`), served through a signed URL.
#[tokio::test]
async fn an_s3_disk_from_its_url_serves_signed_files() {
    let Some(url) = platform_tests::env("PLATFORM_TEST_S3_URL") else {
        eprintln!("skipping: PLATFORM_TEST_S3_URL is not set");
        return;
    };
    let db = TestDb::sqlite();
    let p = platform(
        &db,
        FileStorage::new()
            .ignore_env()
            .disk_url("s3", url)
            .scheme("s3", platform_adapters::storage::S3Storage::open),
    )
    .await;
    let disks = p.get::<Disks>().unwrap();
    let path = format!(
        "route-{}/report.csv",
        platform_core::crypto::random_token(6).to_ascii_lowercase()
    );
    let s3: Arc<dyn platform_core::storage::Storage> = disks.disk("s3").unwrap();
    s3.put_bytes(&path, "id,total\n1,10\n").await.unwrap();
    let app = platform_admin::app_router(&p)
        .unwrap()
        .with_state(p.clone());
    let signed = disks
        .temporary_url(
            "s3",
            &path,
            Duration::from_secs(30),
            UrlOptions::download("report.csv"),
        )
        .unwrap();
    let a = get(&app, &signed).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, b"id,total\n1,10\n");
    assert_eq!(a.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    // `/health` asks every disk: the live server answers.
    let h = get(&app, "/health").await;
    let body = String::from_utf8_lossy(&h.body).into_owned();
    assert_eq!(h.status, StatusCode::OK, "{body}");
    assert!(body.contains("\"name\":\"storage\""), "{body}");
    s3.delete_file(&path).await.unwrap();
    p.shutdown().await;

    // An S3 disk whose server is down: `/health` says which disk, and why.
    let dead = platform(
        &TestDb::sqlite(),
        FileStorage::new()
            .ignore_env()
            .disk_url("local", "memory://")
            .disk_url(
                "archive",
                "s3://gone?endpoint=http://127.0.0.1:1&retries=0&timeout=2&access_key_id=x&secret_access_key=y",
            )
            .scheme("s3", platform_adapters::storage::S3Storage::open),
    )
    .await;
    let app = platform_admin::app_router(&dead)
        .unwrap()
        .with_state(dead.clone());
    let h = get(&app, "/health").await;
    let body = String::from_utf8_lossy(&h.body).into_owned();
    assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("disk archive: "), "{body}");
    assert!(!body.contains("disk local"), "{body}");
    assert!(
        !body.contains("secret_access_key") && !body.contains("=y"),
        "{body}"
    );
    dead.shutdown().await;
}
