//! An import run as a job whose process is killed midway: the queue hands
//! the job to another process, which marks the batch failed instead of
//! importing its rows a second time; the committed chunks are whole (one
//! transaction each) and a rollback removes them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use platform_core::Platform;
use platform_core::access::NewUser;
use platform_core::context::{Actor, Context};
use platform_core::db::Backend;
use platform_exchange::Exchange;
use platform_exchange::import::{INTERRUPTED, ImportConfig, ImportRequest, Imports, Status};
use platform_jobs::Jobs;
use platform_tests::domain::{Customer, customer, registry};
use platform_tests::{TestDb, all_backends, test_key};

const CHUNK: usize = 20;
const ROWS: usize = 3_000;

fn jobs(backend: Backend, ns: &str, dir: &Path) -> Jobs {
    let mut jobs = Jobs::new()
        .ignore_env()
        .namespace(ns)
        .heartbeat(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(20));
    if backend == Backend::MySql {
        // MariaDB: the jobs wait in a SQLite file.
        jobs = jobs.queue_url(format!(
            "sqlite://{}?mode=rwc",
            dir.join("jobs.db").display()
        ));
    }
    jobs
}

async fn platform(url: &str, backend: Backend, ns: &str, dir: &Path) -> Platform {
    Platform::builder()
        .ignore_env()
        .database_url(url)
        .app_key(test_key())
        .registry(registry())
        .max_connections(8)
        .with(jobs(backend, ns, dir))
        .with(Exchange::default().import_config(ImportConfig {
            chunk_size: CHUNK,
            job_threshold: 2,
            temp_dir: dir.join("tmp"),
            ..ImportConfig::default()
        }))
        .build()
        .await
        .unwrap_or_else(|e| panic!("platform on {}: {e}", backend.name()))
}

async fn batch_status(p: &Platform, id: i64) -> (String, i64, Option<String>) {
    let mut q = p.db().sql();
    q.push("SELECT status, processed, error FROM platform_import_batches WHERE id = ")
        .bind_i64(id);
    use platform_core::value::FieldType as T;
    let row = p
        .db()
        .fetch_all(q, &[T::Text, T::I64, T::Text])
        .await
        .unwrap();
    let r = &row[0];
    (
        r[0].as_str().unwrap().to_owned(),
        r[1].as_i64().unwrap_or(0),
        r[2].as_str().map(str::to_owned),
    )
}

async fn invoices(p: &Platform) -> i64 {
    let mut q = p.db().sql();
    q.push("SELECT COUNT(*) FROM invoices");
    let row = p
        .db()
        .fetch_all(q, &[platform_core::value::FieldType::I64])
        .await
        .unwrap();
    row[0][0].as_i64().unwrap()
}

/// Starts the import in a process of its own (a thread with its own
/// runtime), waits until a few chunks are committed, then drops that
/// runtime without shutdown: the process is gone mid-job.
fn start_and_kill(db: &TestDb, ns: &str, dir: &Path) -> i64 {
    let (url, backend, ns, dir) = (db.url.clone(), db.backend, ns.to_owned(), dir.to_path_buf());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let id = rt.block_on(async move {
            let p = platform(&url, backend, &ns, &dir).await;
            p.start_workers();
            let console = Context::console();
            let access = p.access();
            let user = access
                .create_user(
                    &console,
                    NewUser {
                        email: "importer@example.com".into(),
                        name: "Importer".into(),
                        password: "correct horse battery staple".into(),
                    },
                )
                .await
                .unwrap();
            access
                .assign_role(&console, user.id, "super_admin")
                .await
                .unwrap();
            let acme = p
                .repo::<Customer>(&console)
                .create(&customer("Acme", "acme@example.com", "DE"))
                .await
                .unwrap()
                .id;
            let principal = access.principal(user.id).await.unwrap().unwrap();
            let ctx = Context::new(Actor::User(Arc::new(principal)));
            let file: PathBuf = dir.join("invoices.csv");
            let mut csv = "number,customer_id,status,amount_cents,issued_on\n".to_owned();
            for n in 0..ROWS {
                csv.push_str(&format!("INV-{n:06},{acme},sent,{n},2024-01-01\n"));
            }
            std::fs::write(&file, csv).unwrap();
            let submitted = p
                .get::<Imports>()
                .unwrap()
                .submit(
                    &p,
                    &ctx,
                    &ImportRequest {
                        resource: "invoices".into(),
                        file_name: Some("invoices.csv".into()),
                        content_type: Some("text/csv".into()),
                        mapping: Vec::new(),
                        dry_run: false,
                        key: None,
                    },
                    &file,
                )
                .await
                .unwrap();
            assert!(submitted.queued, "{ROWS} rows run as a job");
            let id = submitted.batch_id;
            let started = Instant::now();
            loop {
                let (status, processed, _) = batch_status(&p, id).await;
                if status == "running" && processed >= (2 * CHUNK) as i64 {
                    break;
                }
                assert!(
                    status == "queued" || status == "running",
                    "the batch ended before the kill: {status}"
                );
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the import did not start"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            id
        });
        rt.shutdown_background();
        id
    })
    .join()
    .unwrap()
}

#[tokio::test]
async fn an_import_killed_midway_is_marked_failed_and_rolls_back_whole() {
    for db in all_backends().await {
        let label = db.backend.name();
        let dir = std::env::temp_dir().join(format!(
            "import-kill-{}",
            platform_core::crypto::random_token(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        db.create_tables(&registry()).await;
        let ns = format!("kill{}", platform_core::crypto::random_token(6));

        let id = start_and_kill(&db, &ns, &dir);

        // Another process takes the orphaned job once the dead worker's
        // heartbeats are missed, and fails the batch instead of running it.
        let p = platform(&db.url, db.backend, &ns, &dir).await;
        // A statement sent before the kill may still finish on SQLite's
        // connection thread; what stands after that is what the run left.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed_at = invoices(&p).await;
        p.start_workers();
        let started = Instant::now();
        let (status, _, error) = loop {
            let s = batch_status(&p, id).await;
            if s.0 != "running" {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{label}: the orphaned import job was not taken again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(status, Status::Failed.name(), "{label}");
        assert_eq!(error.as_deref(), Some(INTERRUPTED), "{label}");

        // Not run twice, nothing half-written: whole chunks only.
        let n = invoices(&p).await;
        assert_eq!(n, killed_at, "{label}: rows were imported again");
        assert!(n > 0 && n < ROWS as i64, "{label}: {n}");
        assert_eq!(
            n % CHUNK as i64,
            0,
            "{label}: a chunk was half-written: {n}"
        );

        // The failed batch rolls back without force.
        let report = p
            .get::<Imports>()
            .unwrap()
            .rollback(&p, &Context::console(), id, false)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(report.deleted as i64, n, "{label}: {report:?}");
        assert_eq!(invoices(&p).await, 0, "{label}");
        p.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
