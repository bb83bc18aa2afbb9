//! Export (issue 11): CSV and XLSX of a resource through the API, the
//! pipeline and the job path, on every configured database.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::NaiveDate;
use http_body_util::BodyExt;
use platform_core::Resource;
use platform_core::context::Context;
use platform_core::mail::MemoryMailer;
use platform_core::query::{Count, ListQuery};
use platform_core::resource::Registry;
use platform_core::storage::{Disks, FileStorage, MemoryStorage, StorageExt};
use platform_core::{Actor, Platform};
use platform_exchange::Exchange;
use platform_exchange::export::{Export, Format};
use platform_tests::{TestDb, all_backends, test_key, users};
use tower::ServiceExt;

/// A resource with every kind of column an export must treat.
#[derive(Resource, Debug, Clone)]
#[resource(table = "ledger_rows", search(name), import(key = code))]
pub struct LedgerRow {
    /// Id.
    #[resource(primary_key, sortable)]
    pub id: i64,
    /// Unique code.
    #[resource(unique, sortable, filter, label = "Ledger code")]
    pub code: String,
    /// Free text (may hold a formula).
    pub name: String,
    /// Personal data.
    #[resource(pii)]
    pub email: String,
    /// Encrypted.
    #[resource(encrypted)]
    pub iban: Option<String>,
    /// Filterable.
    #[resource(filter)]
    pub status: String,
    /// Whole number.
    pub amount: i64,
    /// Real number.
    pub ratio: f64,
    /// Boolean.
    pub paid: bool,
    /// Date.
    pub due: NaiveDate,
    /// Never exported.
    #[resource(export = false)]
    pub internal: String,
}

fn registry() -> Registry {
    Registry::builder()
        .register::<LedgerRow>()
        .build()
        .expect("registry")
}

fn row(i: i64, name: &str, status: &str) -> LedgerRow {
    LedgerRow {
        id: 0,
        code: format!("L-{i:06}"),
        name: name.into(),
        email: format!("person{i}@example.com"),
        iban: Some(format!("DE89SECRET{i}")),
        status: status.into(),
        amount: -i,
        ratio: 0.5,
        paid: i % 2 == 0,
        due: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
        internal: "INTERNAL-NOTE".into(),
    }
}

struct App {
    platform: Platform,
    router: Router,
    backend: &'static str,
}

async fn app(db: &TestDb, exchange: Exchange, storage: bool, jobs: bool) -> App {
    app_with(db, exchange, storage, jobs, None).await
}

/// [`app`], with the notifications capability sending mail to `mailer`
/// when one is given.
async fn app_with(
    db: &TestDb,
    exchange: Exchange,
    storage: bool,
    jobs: bool,
    mailer: Option<Arc<MemoryMailer>>,
) -> App {
    let registry = registry();
    db.create_tables(&registry).await;
    let mut b = Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(registry)
        .background_tasks(jobs)
        .max_connections(8)
        .with(exchange);
    if storage {
        b = b.with(
            FileStorage::new()
                .ignore_env()
                .disk("local", MemoryStorage::new()),
        );
    }
    if jobs {
        b = b.with(
            platform_jobs::Jobs::new()
                .ignore_env()
                .namespace(format!("export{}", std::process::id()))
                .poll_interval(Duration::from_millis(20)),
        );
    }
    if let Some(m) = mailer {
        b = b.mailer(m).with(platform_notify::Notifications::new());
    }
    let platform = b.build().await.unwrap();
    let router = platform_admin::app_router(&platform)
        .unwrap()
        .with_state(platform.clone());
    App {
        platform,
        router,
        backend: db.backend.name(),
    }
}

impl App {
    async fn user(&self, email: &str, permissions: &[&str]) -> (i64, String) {
        let role = email.split('@').next().unwrap();
        users::role(&self.platform, role, permissions).await;
        users::with_token(&self.platform, email, Some(role), &[]).await
    }

    async fn get(&self, uri: &str, token: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let req = Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, headers, body)
    }

    async fn seed(&self, rows: impl IntoIterator<Item = LedgerRow>) {
        let repo = self.platform.repo::<LedgerRow>(&Context::system());
        let rows: Vec<LedgerRow> = rows.into_iter().collect();
        for chunk in rows.chunks(500) {
            repo.create_many(chunk).await.unwrap();
        }
    }
}

const READER: &[&str] = &["view_any_ledger_row", "export_ledger_row"];
const FULL: &[&str] = &[
    "view_any_ledger_row",
    "export_ledger_row",
    "view_pii",
    "view_encrypted",
];

fn csv_rows(body: &[u8]) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body);
    r.records()
        .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn csv_follows_permissions_visibility_filters_and_neutralises_formulas() {
    for db in all_backends().await {
        let app = app(&db, Exchange::default(), false, false).await;
        let b = app.backend;
        app.seed([
            row(1, "=HYPERLINK(\"http://evil\")", "paid"),
            row(2, "+1", "open"),
            row(3, "@SUM(A1)", "paid"),
            row(4, "\tTabbed", "open"),
            row(5, "Plain, with \"quotes\"\nand a line", "paid"),
        ])
        .await;
        let (_, reader) = app.user("reader@example.com", READER).await;
        let (_, full) = app.user("full@example.com", FULL).await;
        let (_, viewer) = app
            .user("viewer@example.com", &["view_any_ledger_row"])
            .await;

        // Without export_<resource>: 403; without a token: 401.
        let (status, _, _) = app.get("/api/ledger_rows/export", &viewer).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}");
        let res = app
            .router
            .clone()
            .oneshot(
                Request::get("/api/ledger_rows/export")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{b}");

        // The reader: pii masked, encrypted left out, export = false left out.
        let (status, headers, body) = app.get("/api/ledger_rows/export?format=csv", &reader).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{b}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        assert!(
            headers[header::CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .contains("ledger_rows-")
        );
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            !text.contains("SECRET"),
            "{b}: encrypted plaintext leaked: {text}"
        );
        assert!(
            !text.contains("INTERNAL-NOTE"),
            "{b}: export = false leaked"
        );
        assert!(!text.contains("person1@example.com"), "{b}: pii unmasked");
        let rows = csv_rows(&body);
        assert_eq!(
            rows[0],
            [
                "Id",
                "Ledger code",
                "Name",
                "Email",
                "Status",
                "Amount",
                "Ratio",
                "Paid",
                "Due"
            ],
            "{b}"
        );
        assert_eq!(rows.len(), 6, "{b}");
        assert_eq!(rows[1][1], "L-000001");
        assert_eq!(rows[1][2], "'=HYPERLINK(\"http://evil\")", "{b}");
        assert_eq!(rows[2][2], "'+1", "{b}");
        assert_eq!(rows[3][2], "'@SUM(A1)", "{b}");
        assert_eq!(rows[4][2], "'\tTabbed", "{b}");
        assert_eq!(rows[5][2], "Plain, with \"quotes\"\nand a line", "{b}");
        assert_eq!(rows[1][3], "p***@example.com", "{b}");
        assert_eq!(rows[1][5], "-1", "{b}: numbers stay numbers");
        assert_eq!(rows[1][8], "2026-01-02", "{b}");

        // With view_pii and view_encrypted: plain, and the encrypted column.
        let (_, _, body) = app.get("/api/ledger_rows/export", &full).await;
        let rows = csv_rows(&body);
        assert_eq!(rows[0][4], "Iban", "{b}");
        assert_eq!(rows[1][3], "person1@example.com", "{b}");
        assert_eq!(rows[1][4], "DE89SECRET1", "{b}");
        assert!(!String::from_utf8_lossy(&body).contains("INTERNAL-NOTE"));

        // The list's filters, search and sort; chosen columns.
        let (status, _, body) = app
            .get(
                "/api/ledger_rows/export?filter[status]=paid&sort=-code&columns=code,status",
                &reader,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert_eq!(
            csv_rows(&body),
            [
                vec!["Ledger code", "Status"],
                vec!["L-000005", "paid"],
                vec!["L-000003", "paid"],
                vec!["L-000001", "paid"],
            ],
            "{b}"
        );
        let (_, _, body) = app
            .get("/api/ledger_rows/export?search=Tabbed&columns=id", &reader)
            .await;
        assert_eq!(csv_rows(&body).len(), 2, "{b}");

        // Hostile and malformed parameters: 422 naming them, nothing leaks.
        for (uri, field) in [
            ("/api/ledger_rows/export?columns=iban", "columns"),
            ("/api/ledger_rows/export?columns=internal", "columns"),
            ("/api/ledger_rows/export?columns=nope", "columns"),
            ("/api/ledger_rows/export?format=pdf", "format"),
            ("/api/ledger_rows/export?filter[email]=x", "filter[email]"),
            ("/api/ledger_rows/export?sort=email", "sort"),
            ("/api/ledger_rows/export?page[size]=5", "page[size]"),
            ("/api/ledger_rows/export?bogus=1", "bogus"),
        ] {
            let (status, _, body) = app.get(uri, &reader).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {uri}");
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(
                json["error"]["fields"][field].is_array(),
                "{b}: {uri}: {json}"
            );
        }
        let (status, _, _) = app.get("/api/nothing_here/export", &full).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{b}");
        app.platform.shutdown().await;
    }
}

/// A Python with openpyxl: `PLATFORM_CI_VENV`'s, then `python3`.
fn python_with_openpyxl() -> Option<String> {
    let venv =
        std::env::var("PLATFORM_CI_VENV").unwrap_or_else(|_| "/var/cache/platform-ci/venv".into());
    for py in [format!("{venv}/bin/python3"), "python3".into()] {
        let ok = std::process::Command::new(&py)
            .args(["-c", "import openpyxl"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(py);
        }
    }
    None
}

#[tokio::test]
async fn xlsx_opens_in_openpyxl_with_typed_cells() {
    let Some(py) = python_with_openpyxl() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI: openpyxl is required (pip install openpyxl into PLATFORM_CI_VENV)"
        );
        eprintln!("skipped: openpyxl is not installed (set PLATFORM_CI_VENV to a venv with it)");
        return;
    };
    for db in all_backends().await {
        let app = app(&db, Exchange::default(), false, false).await;
        let b = app.backend;
        app.seed([row(1, "=1+2", "paid"), row(2, "Plain", "open")])
            .await;
        let (_, reader) = app.user("reader@example.com", READER).await;
        let (status, headers, body) = app
            .get("/api/ledger_rows/export?format=xlsx", &reader)
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{b}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .contains("spreadsheetml")
        );
        assert!(body.starts_with(b"PK"), "{b}: not a zip");
        let path =
            std::env::temp_dir().join(format!("export-test-{}-{b}.xlsx", std::process::id()));
        std::fs::write(&path, &body).unwrap();
        let script = r#"
import json, sys, datetime, openpyxl
wb = openpyxl.load_workbook(sys.argv[1])
ws = wb.worksheets[0]
rows = []
for row in ws.iter_rows(values_only=True):
    rows.append([v.isoformat() if isinstance(v, (datetime.date, datetime.datetime)) else v for v in row])
types = [type(c.value).__name__ for c in ws[2]]
print(json.dumps({"rows": rows, "types": types}))
"#;
        let out = std::process::Command::new(&py)
            .args(["-c", script, path.to_str().unwrap()])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "{b}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 3, "{b}: {v}");
        assert_eq!(rows[0][1], "Ledger code");
        assert_eq!(rows[1][2], "'=1+2", "{b}: the formula is text");
        assert_eq!(rows[1][3], "p***@example.com", "{b}");
        assert_eq!(rows[1][5], -1, "{b}");
        assert_eq!(rows[1][7], false, "{b}");
        assert_eq!(rows[1][8], "2026-01-02T00:00:00", "{b}");
        assert_eq!(
            v["types"],
            serde_json::json!([
                "int", "str", "str", "str", "str", "int", "float", "bool", "datetime"
            ]),
            "{b}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("SECRET"));
        app.platform.shutdown().await;
    }
}

/// `VmHWM` / `VmRSS` of this process in KiB (Linux).
fn memory_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Streams a CSV export of `rows` rows through the API without keeping
/// it, and prints the time and the peak RSS over the baseline (the peak
/// is reset first through `/proc/self/clear_refs`).
async fn measure(app: &App, token: &str, rows: i64) {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = memory_kib("VmRSS:");
    let start = std::time::Instant::now();
    let req = Request::get("/api/ledger_rows/export")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            bytes += data.len() as u64;
            lines += data.iter().filter(|b| **b == b'\n').count() as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(lines, u64::try_from(rows).unwrap() + 1);
    let peak = memory_kib("VmHWM:");
    eprintln!(
        "{}: CSV export of {rows} rows ({} MiB): {secs:.2} s, {:.0} rows/s, RSS before {} MiB, peak {} MiB (+{} MiB)",
        app.backend,
        bytes / 1_048_576,
        rows as f64 / secs,
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024
    );
}

#[tokio::test]
async fn a_large_export_streams_in_batches() {
    // PLATFORM_EXPORT_BENCH_ROWS=100000 makes this the memory benchmark.
    let bench: Option<i64> = std::env::var("PLATFORM_EXPORT_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok());
    for db in all_backends().await {
        let app = app(&db, Exchange::default().export_batch(500), false, false).await;
        let b = app.backend;
        if let Some(rows) = bench {
            app.seed((1..=rows).map(|i| row(i, "a plain name", "open")))
                .await;
            let (_, full) = app.user("full@example.com", FULL).await;
            measure(&app, &full, rows).await;
            app.platform.shutdown().await;
            continue;
        }
        let n = 5_000;
        app.seed((1..=n).map(|i| {
            let name = if i % 1_000 == 0 {
                "quarterly report"
            } else {
                "x"
            };
            row(i, name, "open")
        }))
        .await;
        // Below the API: the pipeline in batches of 500, as the console.
        let records = app
            .platform
            .records("ledger_rows", &Context::console())
            .unwrap();
        let mut export = Export::new(
            records.clone(),
            ListQuery::new(),
            Some(&["code".to_owned()]),
        )
        .unwrap()
        .batch_size(500);
        let mut batches = 0;
        let mut last = String::new();
        while let Some(page) = export.next_page().await.unwrap() {
            assert!(page.items.len() <= 500, "{b}");
            batches += 1;
            for r in &page.items {
                let code = r.get("code").unwrap().display();
                assert!(code > last, "{b}: keyset order");
                last = code;
            }
        }
        assert_eq!((export.rows(), batches), (5_000, 10), "{b}");
        let (_, reader) = app.user("reader@example.com", READER).await;
        let (status, _, body) = app
            .get("/api/ledger_rows/export?columns=code", &reader)
            .await;
        assert_eq!(status, StatusCode::OK, "{b}");
        let rows = csv_rows(&body);
        assert_eq!(rows.len(), 5_001, "{b}");
        assert_eq!(rows[5_000], ["L-005000"], "{b}");
        // Filtered, in key order: on MySQL/MariaDB the batches walk the
        // primary key (FORCE INDEX), the filter checked row by row.
        let (status, _, body) = app
            .get(
                "/api/ledger_rows/export?filter[status]=open&columns=code",
                &reader,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert_eq!(csv_rows(&body).len(), 5_001, "{b}");
        // Searching: no hint (MATCH needs the FULLTEXT index); the batches
        // find what a count of the same search finds.
        let search = ListQuery::new().search("quarterly");
        let mut export = Export::new(records.clone(), search.clone(), Some(&["code".to_owned()]))
            .unwrap()
            .batch_size(500);
        let mut found = 0u64;
        while let Some(page) = export.next_page().await.unwrap() {
            found += page.items.len() as u64;
        }
        let counted = records.count(&search).await.unwrap();
        assert_eq!((found, counted), (5, Count::Exact(5)), "{b}");
        app.platform.shutdown().await;
    }
}

#[tokio::test]
async fn exports_above_the_threshold_run_as_a_job_and_notify_a_signed_link() {
    // The notice goes to the bell; with the notifications capability
    // (`ExportReady`), to the bell and by mail.
    for mail in [false, true] {
        for db in all_backends().await {
            if db.backend == platform_core::db::Backend::MySql {
                eprintln!("skipped on MariaDB: the job queue runs on SQLite, PostgreSQL or Redis");
                continue;
            }
            let mailer = mail.then(|| Arc::new(MemoryMailer::new()));
            queued_export(&db, mailer).await;
        }
    }
}

async fn queued_export(db: &TestDb, mailer: Option<Arc<MemoryMailer>>) {
    let app = app_with(
        db,
        Exchange::default().export_threshold(3),
        true,
        true,
        mailer.clone(),
    )
    .await;
    let b = app.backend;
    app.seed((1..=5).map(|i| row(i, "=cmd", "open"))).await;
    let (user, reader) = app.user("reader@example.com", READER).await;
    app.platform.start_workers();
    let (status, _, body) = app
        .get("/api/ledger_rows/export?columns=code,name,email", &reader)
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{b}: {}",
        String::from_utf8_lossy(&body)
    );
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["data"]["status"], "queued", "{b}");
    // Below the threshold: answered directly.
    let (status, _, _) = app
        .get(
            "/api/ledger_rows/export?columns=code&filter[code]=L-000001",
            &reader,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{b}");
    // The notification arrives with a signed link.
    let mut url = None;
    for _ in 0..400 {
        let notes = app.platform.notifications().latest(user, 10).await.unwrap();
        if let Some(n) = notes.into_iter().find(|n| n.url.is_some()) {
            url = n.url;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = url.unwrap_or_else(|| panic!("{b}: no notification"));
    assert!(url.contains("signature="), "{b}: {url}");
    if let Some(m) = &mailer {
        let mut mail = None;
        for _ in 0..400 {
            mail = m.last_to("reader@example.com");
            if mail.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mail = mail.unwrap_or_else(|| panic!("{b}: no mail"));
        assert_eq!(mail.subject, "Export of Ledger rows ready", "{b}");
        assert!(mail.text.contains("5 rows exported"), "{b}: {}", mail.text);
        assert!(mail.text.contains(&url), "{b}: the link: {}", mail.text);
    }
    let path = url
        .split_once("/files/")
        .map(|(_, p)| format!("/files/{p}"))
        .unwrap();
    let res = app
        .router
        .clone()
        .oneshot(Request::get(&path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{b}: {path}");
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    let rows = csv_rows(&body);
    assert_eq!(rows.len(), 6, "{b}");
    assert_eq!(rows[1], ["L-000001", "'=cmd", "p***@example.com"], "{b}");
    // The file is on the disk; a tampered link is refused.
    let disks = app.platform.get::<Disks>().unwrap();
    let files = disks.default_disk().list_paths("exports").await.unwrap();
    assert_eq!(files.len(), 1, "{b}: {files:?}");
    let tampered = path.replace("signature=", "signature=x");
    let res = app
        .router
        .clone()
        .oneshot(Request::get(&tampered).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_ne!(res.status(), StatusCode::OK, "{b}");
    app.platform.shutdown().await;
}

#[tokio::test]
async fn a_resource_with_export_off_is_never_exported() {
    #[derive(Resource, Debug, Clone)]
    #[resource(table = "secrets_off", export = false)]
    struct SecretOff {
        #[resource(primary_key)]
        id: i64,
        name: String,
    }
    let db = TestDb::sqlite();
    let registry = Registry::builder().register::<SecretOff>().build().unwrap();
    let p = db.platform(registry).await;
    let records = p
        .records("secret_offs", &Context::new(Actor::System))
        .unwrap();
    let err = Export::new(records, ListQuery::new(), None).unwrap_err();
    assert!(matches!(err, platform_core::Error::Unsupported(_)), "{err}");
    let _ = Format::Csv;
    p.shutdown().await;
}
