//! Checks every [`Storage`] back end must pass (feature `testing`).
//!
//! ```
//! # async fn run() {
//! let disk = platform_core::storage::MemoryStorage::new();
//! platform_core::testing::storage::run_all(&disk).await;
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(run());
//! ```
//!
//! Each check works under its own random directory and removes what it
//! wrote, so a shared bucket can run the suite repeatedly.

use bytes::Bytes;
use futures::TryStreamExt;

use super::{ByteStream, PutOptions, Storage, StorageError, StorageExt, StoragePath};

/// Runs every check.
pub async fn run_all(disk: &dyn Storage) {
    round_trip(disk).await;
    empty_file(disk).await;
    overwrite(disk).await;
    missing_file(disk).await;
    delete(disk).await;
    list_with_prefix(disk).await;
    copy(disk).await;
    hostile_paths(disk).await;
    large_file_streams(disk).await;
    failed_upload_leaves_nothing(disk).await;
    concurrent_writers(disk).await;
}

fn dir() -> String {
    format!(
        "conformance-{}",
        crate::crypto::random_token(8).to_ascii_lowercase()
    )
}

fn path(p: &str) -> StoragePath {
    StoragePath::parse(p).expect("a valid path")
}

async fn cleanup(disk: &dyn Storage, dir: &str) {
    for m in disk.list(Some(&path(dir))).await.expect("list") {
        disk.delete(&m.path).await.expect("delete");
    }
}

/// Bytes written come back unchanged, with their size; a content type is
/// kept where the back end records one.
pub async fn round_trip(disk: &dyn Storage) {
    let d = dir();
    let p = format!("{d}/docs/été 2026 (final).bin");
    let content: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let meta = disk
        .put_bytes_with(
            &p,
            content.clone(),
            PutOptions::default().content_type("application/x-test"),
        )
        .await
        .expect("put");
    assert_eq!(meta.size, 10_000, "put returns the size written");
    assert_eq!(meta.path.as_str(), p);
    assert_eq!(disk.get_bytes(&p).await.expect("get"), content);
    let head = disk.head(&path(&p)).await.expect("head");
    assert_eq!(head.size, 10_000);
    if let Some(t) = &head.content_type {
        assert_eq!(
            t, "application/x-test",
            "a recorded content type is the one given"
        );
    }
    let object = disk.get(&path(&p)).await.expect("get");
    assert_eq!(object.meta.size, 10_000, "get's metadata has the size");
    assert!(disk.exists(&p).await.expect("exists"));
    cleanup(disk, &d).await;
}

/// An empty file is a file.
pub async fn empty_file(disk: &dyn Storage) {
    let d = dir();
    let p = format!("{d}/empty.txt");
    assert_eq!(disk.put_bytes(&p, Bytes::new()).await.expect("put").size, 0);
    assert!(disk.exists(&p).await.expect("exists"));
    assert_eq!(disk.head(&path(&p)).await.expect("head").size, 0);
    assert!(disk.get_bytes(&p).await.expect("get").is_empty());
    assert_eq!(disk.list_paths(&d).await.expect("list"), vec![p]);
    cleanup(disk, &d).await;
}

/// A second put replaces the content (longer, then shorter).
pub async fn overwrite(disk: &dyn Storage) {
    let d = dir();
    let p = format!("{d}/file.txt");
    disk.put_bytes(&p, "first version").await.expect("put");
    disk.put_bytes(&p, "second, longer version")
        .await
        .expect("put");
    assert_eq!(
        disk.get_bytes(&p).await.expect("get"),
        "second, longer version"
    );
    disk.put_bytes(&p, "3").await.expect("put");
    assert_eq!(disk.get_bytes(&p).await.expect("get"), "3");
    assert_eq!(disk.head(&path(&p)).await.expect("head").size, 1);
    assert_eq!(disk.list_paths(&d).await.expect("list").len(), 1);
    cleanup(disk, &d).await;
}

/// Reading a missing file is `NotFound`, and so is reading a directory.
pub async fn missing_file(disk: &dyn Storage) {
    let d = dir();
    let p = path(&format!("{d}/missing.txt"));
    assert!(
        matches!(disk.get(&p).await, Err(StorageError::NotFound { .. })),
        "get of a missing file"
    );
    assert!(
        matches!(disk.head(&p).await, Err(StorageError::NotFound { .. })),
        "head of a missing file"
    );
    assert!(!disk.exists(p.as_str()).await.expect("exists"));
    assert!(matches!(
        disk.copy(&p, &path(&format!("{d}/to.txt"))).await,
        Err(StorageError::NotFound { .. })
    ));
    disk.put_bytes(&format!("{d}/sub/file.txt"), "x")
        .await
        .expect("put");
    assert!(
        matches!(
            disk.get(&path(&format!("{d}/sub"))).await,
            Err(StorageError::NotFound { .. })
        ),
        "a directory is not a file"
    );
    assert!(
        disk.list(Some(&p))
            .await
            .expect("list of a missing prefix")
            .is_empty()
    );
    cleanup(disk, &d).await;
}

/// Delete removes the file; deleting a missing one succeeds.
pub async fn delete(disk: &dyn Storage) {
    let d = dir();
    let p = format!("{d}/a/b/file.txt");
    disk.put_bytes(&p, "x").await.expect("put");
    disk.put_bytes(&format!("{d}/a/keep.txt"), "y")
        .await
        .expect("put");
    disk.delete_file(&p).await.expect("delete");
    assert!(!disk.exists(&p).await.expect("exists"));
    disk.delete_file(&p)
        .await
        .expect("deleting a missing file succeeds");
    assert_eq!(
        disk.list_paths(&d).await.expect("list"),
        vec![format!("{d}/a/keep.txt")]
    );
    // The emptied directory can be written again.
    disk.put_bytes(&p, "z").await.expect("put after delete");
    assert_eq!(disk.get_bytes(&p).await.expect("get"), "z");
    cleanup(disk, &d).await;
    assert!(disk.list_paths(&d).await.expect("list").is_empty());
}

/// List returns every file under a directory prefix, recursively and
/// sorted, and nothing from a sibling sharing the prefix's text.
pub async fn list_with_prefix(disk: &dyn Storage) {
    let d = dir();
    for p in [
        "inv/1.pdf",
        "inv/2024/2.pdf",
        "inv/2024/q1/3.pdf",
        "invoices/4.pdf",
        "other/5.pdf",
    ] {
        disk.put_bytes(&format!("{d}/{p}"), p).await.expect("put");
    }
    assert_eq!(
        disk.list_paths(&format!("{d}/inv")).await.expect("list"),
        vec![
            format!("{d}/inv/1.pdf"),
            format!("{d}/inv/2024/2.pdf"),
            format!("{d}/inv/2024/q1/3.pdf"),
        ],
    );
    assert_eq!(
        disk.list_paths(&format!("{d}/inv/2024/"))
            .await
            .expect("a trailing slash is allowed"),
        vec![
            format!("{d}/inv/2024/2.pdf"),
            format!("{d}/inv/2024/q1/3.pdf")
        ],
    );
    let all = disk.list(Some(&path(&d))).await.expect("list");
    assert_eq!(all.len(), 5);
    assert!(
        all.windows(2).all(|w| w[0].path < w[1].path),
        "sorted by path"
    );
    assert_eq!(all[0].size, "inv/1.pdf".len() as u64, "sizes are listed");
    let everything = disk.list(None).await.expect("list everything");
    assert!(
        everything
            .iter()
            .filter(|m| m.path.as_str().starts_with(&d))
            .count()
            == 5
    );
    cleanup(disk, &d).await;
}

/// Copy duplicates a file, replacing the target.
pub async fn copy(disk: &dyn Storage) {
    let d = dir();
    let (a, b) = (format!("{d}/a.txt"), format!("{d}/sub/b.txt"));
    disk.put_bytes(&a, "original").await.expect("put");
    disk.put_bytes(&b, "to be replaced").await.expect("put");
    disk.copy(&path(&a), &path(&b)).await.expect("copy");
    assert_eq!(disk.get_bytes(&b).await.expect("get"), "original");
    assert_eq!(
        disk.get_bytes(&a).await.expect("the source stays"),
        "original"
    );
    disk.rename(&a, &format!("{d}/c.txt"))
        .await
        .expect("rename");
    assert!(!disk.exists(&a).await.expect("exists"));
    assert_eq!(
        disk.get_bytes(&format!("{d}/c.txt")).await.expect("get"),
        "original"
    );
    cleanup(disk, &d).await;
}

/// Hostile paths are refused before the back end sees them, and nothing
/// is written.
pub async fn hostile_paths(disk: &dyn Storage) {
    let d = dir();
    let before = disk.list(None).await.expect("list").len();
    for p in [
        "../escape.txt".to_owned(),
        format!("{d}/../../escape.txt"),
        "/etc/passwd".to_owned(),
        format!("{d}/a\0b"),
        format!("{d}\\..\\escape.txt"),
        format!("{d}//x"),
        format!("{d}/./x"),
        String::new(),
        format!("{d}/{}", "x".repeat(1100)),
    ] {
        for result in [
            disk.put_bytes(&p, "x").await.map(|_| ()),
            disk.get_bytes(&p).await.map(|_| ()),
            disk.delete_file(&p).await,
        ] {
            assert!(
                matches!(result, Err(StorageError::InvalidPath { .. })),
                "{p:?} is refused with InvalidPath"
            );
        }
    }
    assert_eq!(
        disk.list(None).await.expect("list").len(),
        before,
        "nothing was written"
    );
}

/// An 8 MiB file goes in as a stream of chunks and comes back as a stream
/// of several chunks, byte for byte.
pub async fn large_file_streams(disk: &dyn Storage) {
    const CHUNK: usize = 256 * 1024;
    const CHUNKS: usize = 32;
    let d = dir();
    let p = path(&format!("{d}/large.bin"));
    let chunk_of = |i: usize| -> Bytes {
        (0..CHUNK)
            .map(|j| ((i * 31 + j * 7) % 251) as u8)
            .collect::<Vec<u8>>()
            .into()
    };
    let body: ByteStream = Box::pin(futures::stream::iter(
        (0..CHUNKS).map(move |i| Ok(chunk_of(i))),
    ));
    let meta = disk
        .put(&p, body, PutOptions::default())
        .await
        .expect("put a stream");
    assert_eq!(meta.size, (CHUNK * CHUNKS) as u64);
    let object = disk.get(&p).await.expect("get");
    assert_eq!(object.meta.size, (CHUNK * CHUNKS) as u64);
    let mut pieces = 0usize;
    let mut offset = 0usize;
    let mut body = object.body;
    let expected: Vec<u8> = (0..CHUNKS).flat_map(|i| chunk_of(i).to_vec()).collect();
    while let Some(piece) = body.try_next().await.expect("read") {
        assert_eq!(
            &piece[..],
            &expected[offset..offset + piece.len()],
            "content at {offset}"
        );
        offset += piece.len();
        pieces += 1;
    }
    assert_eq!(offset, CHUNK * CHUNKS, "the whole file");
    assert!(
        pieces > 1,
        "the file comes back as a stream, not one buffer"
    );
    cleanup(disk, &d).await;
}

/// A stream that fails part-way leaves the old content (or nothing).
pub async fn failed_upload_leaves_nothing(disk: &dyn Storage) {
    let d = dir();
    let failing = || -> ByteStream {
        Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from(vec![b'x'; 64 * 1024])),
            Err(StorageError::backend("conformance", "the client went away")),
        ]))
    };
    let fresh = path(&format!("{d}/fresh.bin"));
    assert!(
        disk.put(&fresh, failing(), PutOptions::default())
            .await
            .is_err()
    );
    assert!(
        !disk.exists(fresh.as_str()).await.expect("exists"),
        "no half file"
    );
    let old = format!("{d}/old.txt");
    disk.put_bytes(&old, "old").await.expect("put");
    assert!(
        disk.put(&path(&old), failing(), PutOptions::default())
            .await
            .is_err()
    );
    assert_eq!(
        disk.get_bytes(&old).await.expect("get"),
        "old",
        "the old content stays"
    );
    assert_eq!(disk.list_paths(&d).await.expect("list"), vec![old]);
    cleanup(disk, &d).await;
}

/// Eight writers at once to one path: one wins entirely, no mixture.
pub async fn concurrent_writers(disk: &dyn Storage) {
    let d = dir();
    let p = path(&format!("{d}/contended.bin"));
    let content = |i: u8| -> Vec<u8> { vec![i; 256 * 1024 + usize::from(i)] };
    let writes = (0..8u8).map(|i| {
        let p = p.clone();
        async move {
            let bytes = Bytes::from(content(i));
            let body: ByteStream = Box::pin(futures::stream::iter(
                bytes
                    .chunks(16 * 1024)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect::<Vec<_>>(),
            ));
            disk.put(&p, body, PutOptions::default()).await
        }
    });
    for r in futures::future::join_all(writes).await {
        r.expect("every concurrent put succeeds");
    }
    let got = disk.get_bytes(p.as_str()).await.expect("get");
    let first = got[0];
    assert!(first < 8);
    assert_eq!(got.to_vec(), content(first), "one writer's content, whole");
    assert_eq!(disk.list_paths(&d).await.expect("list").len(), 1);
    cleanup(disk, &d).await;
}
