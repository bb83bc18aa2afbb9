//! The S3 server going down in the middle of an upload: the attach fails
//! with a clear error, no media row is left and no object is stored.
//!
//! A loopback TCP relay stands between the platform and the real S3 server
//! (`PLATFORM_TEST_S3_URL`, the moto server `.ci/run` starts); after the
//! first 64 KiB of the upload it cuts every connection and refuses new
//! ones, as a server that died would.

mod media_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use media_common::*;
use platform_core::context::Context;
use platform_core::storage::{FileStorage, Storage, StorageExt};
use platform_media::{RecordRef, Upload};
use platform_tests::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes sent to the server before it "dies".
const CUT_AFTER: usize = 64 * 1024;

/// A relay to `upstream` that dies once `CUT_AFTER` bytes went up.
struct Relay {
    port: u16,
    sent: Arc<AtomicUsize>,
    dead: Arc<AtomicBool>,
}

async fn relay(upstream: String) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicUsize::new(0));
    let dead = Arc::new(AtomicBool::new(false));
    let (s, d) = (sent.clone(), dead.clone());
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            if d.load(Ordering::SeqCst) {
                // Down: the connection is closed at once.
                drop(client);
                continue;
            }
            let (s, d, upstream) = (s.clone(), d.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = vec![0u8; 8192];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if s.fetch_add(n, Ordering::SeqCst) + n > CUT_AFTER {
                            d.store(true, Ordering::SeqCst);
                            return;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async {
                    let mut buf = vec![0u8; 8192];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if d.load(Ordering::SeqCst) || cw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                // Whichever side ends first ends the connection.
                tokio::select! {
                    () = up => {}
                    () = down => {}
                }
            });
        }
    });
    Relay { port, sent, dead }
}

/// A PNG of noise (about 1 MiB: it does not compress).
fn noisy_png() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let img = image::RgbImage::from_fn(600, 600, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let b = state.to_le_bytes();
        image::Rgb([b[0], b[1], b[2]])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn s3_going_down_mid_upload_leaves_nothing_attached() {
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
    // The server's address, from `endpoint=http://HOST:PORT` in the URL.
    let endpoint = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("endpoint="))
        .expect("the S3 URL names its endpoint");
    let upstream = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let relay = relay(upstream).await;
    let relayed = format!(
        "{}&retries=0&timeout=5",
        url.replace(endpoint, &format!("http://127.0.0.1:{}", relay.port))
    );

    let db = TestDb::sqlite();
    let p = platform_with(
        &db,
        FileStorage::new()
            .disk_url("public", relayed)
            .disk_url("direct", url)
            .scheme("s3", platform_adapters::storage::S3Storage::open),
    )
    .await;
    let disks = p.get::<platform_core::storage::Disks>().unwrap();
    let direct: Arc<dyn Storage> = disks.disk("direct").unwrap();
    let before = direct.list_paths("media").await.unwrap();
    let lib = lib(&p);
    let sys = Context::system();
    let id = product(
        &p,
        &format!("DOWN-{}", platform_core::crypto::random_token(6)),
    )
    .await;
    let rec = RecordRef::new("products", id);

    let png = noisy_png();
    assert!(png.len() > 4 * CUT_AFTER, "{} bytes", png.len());
    let err = lib
        .attach(&p, &sys, &rec, "images", Upload::bytes("big.png", png))
        .await
        .expect_err("the upload cannot complete");
    assert!(
        relay.dead.load(Ordering::SeqCst),
        "the relay cut the upload"
    );
    assert!(
        relay.sent.load(Ordering::SeqCst) > CUT_AFTER,
        "the upload had started"
    );
    let msg = err.to_string();
    assert!(msg.contains("unavailable"), "a clear error: {msg}");
    assert!(
        !msg.contains("secret_access_key") && !msg.contains("test&"),
        "no credentials in the error: {msg}"
    );

    // Nothing half-attached: no media row, no object.
    assert!(
        lib.list(&p, &sys, &rec, None).await.unwrap().is_empty(),
        "a media row was left"
    );
    assert_eq!(
        direct.list_paths("media").await.unwrap(),
        before,
        "an object was left on the server"
    );
    p.shutdown().await;
}
