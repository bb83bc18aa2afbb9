//! Imports on every configured database: CSV and XLSX through the API and
//! the command, coercion, validation failures with row, column and reason
//! and the failed-rows file, upserts by key, permissions, dry runs, and
//! rolling a batch back (audited, refused over later changes unless
//! forced); and hostile files: non-UTF-8, UTF-16, ragged rows, formulas,
//! oversize uploads, zip bombs, malformed archives, files that are not what
//! their name says, unknown headings, empty files.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use platform_core::Platform;
use platform_core::context::Context;
use platform_core::db::Sql;
use platform_core::value::FieldType;
use platform_exchange::Exchange;
use platform_exchange::import::{ImportConfig, ImportRequest, Imports, Limits};
use platform_tests::domain::{customer, registry};
use platform_tests::{TestDb, all_backends, test_key, users};
use tower::ServiceExt;

struct Env {
    platform: Platform,
    router: axum::Router,
    admin: String,
    label: &'static str,
    dir: PathBuf,
}

fn config(dir: &Path) -> ImportConfig {
    ImportConfig {
        chunk_size: 3,
        limits: Limits {
            max_bytes: 256 * 1024,
            max_unpacked: 4 * 1024 * 1024,
            max_rows: 10_000,
            max_columns: 50,
        },
        temp_dir: dir.join("tmp"),
        ..ImportConfig::default()
    }
}

async fn env(db: &TestDb) -> Env {
    env_with(db, registry()).await
}

async fn env_with(db: &TestDb, registry: platform_core::Registry) -> Env {
    let dir = std::env::temp_dir().join(format!(
        "import-test-{}",
        platform_core::crypto::random_token(8)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    db.create_tables(&registry).await;
    let platform = Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(registry)
        .background_tasks(false)
        .max_connections(8)
        .with(Exchange::default().import_config(config(&dir)))
        .build()
        .await
        .unwrap_or_else(|e| panic!("platform on {}: {e}", db.backend.name()));
    let router = platform_admin::app_router(&platform)
        .unwrap()
        .with_state(platform.clone());
    let mut env = Env {
        platform,
        router,
        admin: String::new(),
        label: db.backend.name(),
        dir,
    };
    env.admin = env.user("admin@example.com", Some("super_admin")).await;
    env
}

impl Env {
    async fn user(&self, email: &str, role: Option<&str>) -> String {
        users::with_token(&self.platform, email, role, &[]).await.1
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Vec<u8>) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        (
            status,
            res.into_body().collect().await.unwrap().to_bytes().to_vec(),
        )
    }

    async fn json(&self, req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let (s, b) = self.send(req).await;
        (
            s,
            serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
        )
    }

    /// `POST /api/invoices/import?<query>` with `body` as `content_type`.
    async fn import(
        &self,
        token: &str,
        query: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, serde_json::Value) {
        self.json(
            Request::builder()
                .method(Method::POST)
                .uri(format!("/api/invoices/import?{query}"))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, content_type)
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    fn get(&self, uri: &str) -> Request<Body> {
        Request::builder()
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin))
            .body(Body::empty())
            .unwrap()
    }

    fn post(&self, uri: &str) -> Request<Body> {
        Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin))
            .body(Body::empty())
            .unwrap()
    }

    async fn count(&self, sql: &'static str) -> i64 {
        let db = self.platform.db();
        db.fetch_i64(Sql::literal(db.backend(), sql))
            .await
            .unwrap()
            .unwrap_or(0)
    }

    async fn invoice(&self, number: &str) -> Option<Vec<platform_core::value::Value>> {
        let db = self.platform.db();
        let mut q = db.sql();
        q.push("SELECT amount_cents, status, notes, customer_id, issued_on FROM invoices WHERE number = ")
            .bind_str(number);
        db.fetch_optional(
            q,
            &[
                FieldType::I64,
                FieldType::Text,
                FieldType::Text,
                FieldType::I64,
                FieldType::Date,
            ],
        )
        .await
        .unwrap()
    }

    /// `POST /api/imports/{batch}/rollback` (with `query`, say `?force=1`).
    async fn rollback(&self, batch: i64, query: &str) -> (StatusCode, serde_json::Value) {
        self.json(self.post(&format!("/api/imports/{batch}/rollback{query}")))
            .await
    }

    async fn audits_tagged(&self, tag: &str) -> i64 {
        let db = self.platform.db();
        let mut q = db.sql();
        q.push("SELECT COUNT(*) FROM platform_audits WHERE tags LIKE ")
            .bind_str(format!("%\"{tag}\"%"));
        db.fetch_i64(q).await.unwrap().unwrap_or(0)
    }
}

async fn customers(env: &Env) -> (i64, i64) {
    let console = Context::console();
    let repo = env
        .platform
        .repo::<platform_tests::domain::Customer>(&console);
    let a = repo
        .create(&customer("Acme", "acme@example.com", "DE"))
        .await
        .unwrap();
    let b = repo
        .create(&customer("Beta", "beta@example.com", "FR"))
        .await
        .unwrap();
    (a.id, b.id)
}

const MAP: &str = "map=customer%3Dcustomer_id&map=amount%3Damount_cents";

#[tokio::test]
async fn csv_import_validates_upserts_and_rolls_back() {
    for db in all_backends().await {
        let env = env(&db).await;
        let label = env.label;
        let (acme, _) = customers(&env).await;
        // Row 2 and 3 are good (a customer by id and by its unique name),
        // then: a bad status, a bad date, a missing number, an unknown
        // customer, a number repeated in the file, a ragged row.
        let csv = format!(
            "\u{feff}number,customer,status,amount,issued on,notes,extra\n\
             INV-000001,{acme},Paid,\"€1,234.50\",31.01.2024,first,x\n\
             INV-000002,Beta,draft,12,2024-02-01,\"=HYPERLINK(\"\"http://evil\"\")\",\n\
             INV-000003,{acme},lost,1,2024-02-01,,\n\
             INV-000004,{acme},sent,1,31/02/2024,,\n\
             ,{acme},sent,1,2024-02-01,,\n\
             INV-000006,Nobody,sent,1,2024-02-01,,\n\
             INV-000001,{acme},sent,1,2024-02-01,,\n\
             INV-000008,{acme},sent\n"
        );
        let (s, body) = env.import(&env.admin, MAP, "text/csv", csv.clone()).await;
        assert_eq!(s, StatusCode::OK, "{label}: {body}");
        let report = &body["data"]["report"];
        let batch = body["data"]["batch_id"].as_i64().unwrap();
        assert_eq!(report["status"], "done", "{label}: {report}");
        assert_eq!(report["counts"]["created"], 2, "{label}: {report}");
        assert_eq!(report["counts"]["failed"], 6, "{label}: {report}");
        assert_eq!(
            report["ignored_columns"],
            serde_json::json!(["extra"]),
            "{label}"
        );
        let failures = report["failures"].as_array().unwrap();
        let find = |row: u64| {
            failures
                .iter()
                .find(|f| f["row"] == row)
                .unwrap_or_else(|| panic!("{label}: no failure for row {row}: {report}"))
        };
        assert_eq!(find(4)["column"], "status", "{label}");
        assert_eq!(find(4)["code"], "type", "{label}");
        assert_eq!(find(5)["column"], "issued on", "{label}");
        assert_eq!(find(6)["column"], "number", "{label}");
        assert_eq!(find(6)["code"], "required", "{label}");
        assert_eq!(find(7)["column"], "customer", "{label}");
        assert_eq!(find(7)["code"], "exists", "{label}");
        assert_eq!(find(8)["code"], "unique", "{label}");
        assert_eq!(find(9)["code"], "ragged", "{label}");
        // Coercion: money, a date in German order, a choice by its label,
        // a relation by a unique label; a formula stays text.
        let one = env.invoice("INV-000001").await.unwrap();
        assert_eq!(one[0].as_i64(), Some(123_450), "{label}");
        assert_eq!(one[1].as_str(), Some("paid"), "{label}");
        assert_eq!(one[4].display(), "2024-01-31", "{label}");
        let two = env.invoice("INV-000002").await.unwrap();
        assert_eq!(
            two[2].as_str(),
            Some("=HYPERLINK(\"http://evil\")"),
            "{label}"
        );
        assert_ne!(two[3].as_i64(), Some(acme), "{label}: by name");
        // Audited in the batch, the touched records logged.
        assert_eq!(
            env.audits_tagged(&format!("import:{batch}")).await,
            2,
            "{label}"
        );
        // The failed-rows file: the original columns plus `error`, the
        // formula-looking cells neutralised.
        let (s, bytes) = env
            .send(env.get(&format!("/api/imports/{batch}/failed")))
            .await;
        assert_eq!(s, StatusCode::OK, "{label}");
        let text = String::from_utf8(bytes).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "number,customer,status,amount,issued on,notes,extra,error",
            "{label}"
        );
        assert_eq!(text.lines().count(), 7, "{label}: {text}");
        assert!(text.contains("INV-000003,"), "{label}: {text}");
        assert!(text.contains("status: must be one of"), "{label}: {text}");
        // The batch's status.
        let (s, b) = env.json(env.get(&format!("/api/imports/{batch}"))).await;
        assert_eq!(s, StatusCode::OK, "{label}");
        assert_eq!(b["data"]["counts"]["processed"], 8, "{label}: {b}");
        assert_eq!(
            b["data"]["actor_label"], "admin@example.com (token 1)",
            "{label}"
        );

        // Dry run: the report, nothing written.
        let before = env.count("SELECT COUNT(*) FROM invoices").await;
        let csv2 = format!(
            "number,customer,status,amount,issued on\n\
             INV-000001,{acme},paid,99,2024-01-31\n\
             INV-000010,{acme},draft,5,2024-03-01\n"
        );
        let (s, body) = env
            .import(
                &env.admin,
                &format!("{MAP}&key=number&dry_run=1"),
                "text/csv",
                csv2.clone(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{label}: {body}");
        let report = &body["data"]["report"];
        assert_eq!(report["status"], "dry_run", "{label}");
        assert_eq!(report["counts"]["created"], 1, "{label}: {report}");
        assert_eq!(report["counts"]["updated"], 1, "{label}: {report}");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM invoices").await,
            before,
            "{label}"
        );
        assert_eq!(
            env.invoice("INV-000001").await.unwrap()[0].as_i64(),
            Some(123_450),
            "{label}"
        );

        // Upsert by key: one updated, one created.
        let (s, body) = env
            .import(&env.admin, &format!("{MAP}&key=number"), "text/csv", csv2)
            .await;
        assert_eq!(s, StatusCode::OK, "{label}: {body}");
        let second = body["data"]["batch_id"].as_i64().unwrap();
        assert_eq!(
            body["data"]["report"]["counts"]["updated"], 1,
            "{label}: {body}"
        );
        assert_eq!(
            body["data"]["report"]["counts"]["created"], 1,
            "{label}: {body}"
        );
        assert_eq!(
            env.invoice("INV-000001").await.unwrap()[0].as_i64(),
            Some(9900),
            "{label}"
        );

        // Rolling the second batch back: the update reverted, the created
        // record removed, audited under the rollback's tag.
        let (s, b) = env.rollback(second, "").await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        assert_eq!(b["data"]["deleted"], 1, "{label}");
        assert_eq!(b["data"]["reverted"], 1, "{label}");
        assert_eq!(
            env.invoice("INV-000001").await.unwrap()[0].as_i64(),
            Some(123_450),
            "{label}"
        );
        assert!(env.invoice("INV-000010").await.is_none(), "{label}");
        assert_eq!(
            env.audits_tagged(&format!("rollback:{second}")).await,
            2,
            "{label}"
        );
        let (s, _) = env.rollback(second, "").await;
        assert_eq!(s, StatusCode::CONFLICT, "{label}: twice");

        // A record changed after the first import: its rollback is refused,
        // then forced.
        let console = Context::console();
        let records = env.platform.records("invoices", &console).unwrap();
        let id = records
            .list(&platform_core::query::ListQuery::default())
            .await
            .unwrap()
            .items
            .iter()
            .find(|r| r.get("number").and_then(|v| v.as_str()) == Some("INV-000002"))
            .map(|r| r.id().clone())
            .unwrap();
        records
            .update(
                id,
                platform_core::repo::Changes::new().set("notes", "edited by hand"),
            )
            .await
            .unwrap();
        let (s, b) = env.rollback(batch, "").await;
        assert_eq!(s, StatusCode::CONFLICT, "{label}: {b}");
        assert!(b.to_string().contains("changed"), "{label}: {b}");
        assert!(
            env.invoice("INV-000001").await.is_some(),
            "{label}: nothing rolled back"
        );
        let (s, b) = env.rollback(batch, "?force=1").await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        assert_eq!(b["data"]["deleted"], 2, "{label}: {b}");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM invoices").await,
            0,
            "{label}"
        );
        let (_, b) = env.json(env.get(&format!("/api/imports/{batch}"))).await;
        assert_eq!(b["data"]["status"], "rolled_back", "{label}: {b}");

        // Permission: creating invoices is not importing them.
        env.platform
            .access()
            .create_role(&console, "clerk")
            .await
            .unwrap();
        env.platform
            .access()
            .set_role_permissions(
                &console,
                "clerk",
                &["create_invoice".to_owned(), "view_any_invoice".to_owned()],
            )
            .await
            .unwrap();
        let clerk = env.user("clerk@example.com", Some("clerk")).await;
        let (s, b) = env.import(&clerk, MAP, "text/csv", "number\nINV-1\n").await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{label}: {b}");
        let (s, _) = env
            .json(
                Request::builder()
                    .uri(format!("/api/imports/{batch}"))
                    .header(header::AUTHORIZATION, format!("Bearer {clerk}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{label}: another's batch");
        let (s, _) = env.import("nope", MAP, "text/csv", "number\n").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{label}");
        let _ = std::fs::remove_dir_all(&env.dir);
    }
}

/// An XLSX workbook of invoices: typed cells (numbers, a date, a boolean,
/// a formula with its cached result).
fn workbook(path: &Path, customer: i64) {
    use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (c, h) in [
        "Number",
        "Customer",
        "Status",
        "Amount",
        "Issued on",
        "Notes",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    ws.write_string(1, 0, "INV-000100").unwrap();
    ws.write_number(1, 1, customer as f64).unwrap();
    ws.write_string(1, 2, "sent").unwrap();
    ws.write_number(1, 3, 12.5).unwrap();
    ws.write_datetime_with_format(1, 4, ExcelDateTime::from_ymd(2024, 5, 6).unwrap(), &date)
        .unwrap();
    ws.write_formula(1, 5, Formula::new("=1+1").set_result("2"))
        .unwrap();
    ws.write_string(2, 0, "INV-000101").unwrap();
    ws.write_number(2, 1, customer as f64).unwrap();
    ws.write_string(2, 2, "Draft").unwrap();
    ws.write_number(2, 3, 7).unwrap();
    ws.write_string(2, 4, "2024-05-07").unwrap();
    // A short row (no notes) is not ragged in a sheet; a bad amount fails.
    ws.write_string(3, 0, "INV-000102").unwrap();
    ws.write_number(3, 1, customer as f64).unwrap();
    ws.write_string(3, 2, "paid").unwrap();
    ws.write_string(3, 3, "lots").unwrap();
    ws.write_string(3, 4, "2024-05-08").unwrap();
    wb.save(path).unwrap();
}

/// A zip archive whose one member unpacks to `size` bytes of spaces.
fn zip_bomb(path: &Path, size: usize) {
    use std::io::Write;
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file("xl/sharedStrings.xml", opts).unwrap();
    let block = vec![b' '; 1024 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len());
        z.write_all(&block[..n]).unwrap();
        left -= n;
    }
    z.finish().unwrap();
}

#[tokio::test]
async fn xlsx_and_hostile_files() {
    for db in all_backends().await {
        let env = env(&db).await;
        let label = env.label;
        let (acme, _) = customers(&env).await;
        let xlsx = env.dir.join("in.xlsx");
        workbook(&xlsx, acme);
        let (s, body) = env
            .import(
                &env.admin,
                "map=amount%3Damount_cents&map=customer%3Dcustomer_id&file_name=in.xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                std::fs::read(&xlsx).unwrap(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{label}: {body}");
        let report = &body["data"]["report"];
        assert_eq!(report["counts"]["created"], 2, "{label}: {report}");
        assert_eq!(report["counts"]["failed"], 1, "{label}: {report}");
        assert_eq!(report["failures"][0]["row"], 4, "{label}: {report}");
        assert_eq!(
            report["failures"][0]["column"], "Amount",
            "{label}: {report}"
        );
        let a = env.invoice("INV-000100").await.unwrap();
        assert_eq!(a[0].as_i64(), Some(1250), "{label}");
        assert_eq!(a[4].display(), "2024-05-06", "{label}");
        assert_eq!(
            a[2].as_str(),
            Some("2"),
            "{label}: a formula's cached value, never the formula"
        );
        assert_eq!(
            env.invoice("INV-000101").await.unwrap()[1].as_str(),
            Some("draft"),
            "{label}"
        );
        // The failed rows of an XLSX import come back as XLSX: the
        // original columns plus `error`.
        let batch = body["data"]["batch_id"].as_i64().unwrap();
        let res = env
            .router
            .clone()
            .oneshot(env.get(&format!("/api/imports/{batch}/failed")))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{label}");
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "{label}"
        );
        assert_eq!(
            res.headers()[header::CONTENT_DISPOSITION],
            format!("attachment; filename=\"import-{batch}-failed.xlsx\""),
            "{label}"
        );
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec()))
            .unwrap_or_else(|e| panic!("{label}: not an XLSX archive: {e}"));
        let mut xml = String::new();
        for name in ["xl/worksheets/sheet1.xml", "xl/sharedStrings.xml"] {
            if let Ok(mut f) = zip.by_name(name) {
                std::io::Read::read_to_string(&mut f, &mut xml).unwrap();
            }
        }
        for text in [
            "Number",
            "Amount",
            "error",
            "INV-000102",
            "lots",
            "Amount: ",
        ] {
            assert!(xml.contains(text), "{label}: {text} in {xml}");
        }
        assert!(!xml.contains("INV-000100"), "{label}: only the failed row");

        // The command: the same file as a dry run, then for real with a key.
        let imports = env.platform.get::<Imports>().unwrap();
        let req = ImportRequest {
            resource: "invoices".into(),
            mapping: vec![
                ("Amount".into(), "amount_cents".into()),
                ("Customer".into(), "customer_id".into()),
            ],
            key: Some("number".into()),
            ..ImportRequest::default()
        };
        let r = imports
            .import_file(&env.platform, &Context::console(), &req, &xlsx, &|_| {})
            .await
            .unwrap();
        assert_eq!(
            (r.counts.unchanged, r.counts.failed),
            (2, 1),
            "{label}: {r:?}"
        );

        let before = env.count("SELECT COUNT(*) FROM invoices").await;
        let batches = env
            .count("SELECT COUNT(*) FROM platform_import_chunks")
            .await;
        let refused = |body: &serde_json::Value, code: &str| {
            assert_eq!(
                body["error"]["fields"]["file"][0]["code"], code,
                "{label}: {body}"
            );
        };
        // Latin-1.
        let (s, b) = env
            .import(
                &env.admin,
                MAP,
                "text/csv",
                b"number,notes\nINV-9,caf\xe9\n".to_vec(),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{label}: {b}");
        refused(&b, "encoding");
        assert!(b.to_string().contains("line 2"), "{label}: {b}");
        // UTF-16 with a BOM.
        let (s, b) = env
            .import(&env.admin, MAP, "text/csv", b"\xff\xfen\x00u\x00".to_vec())
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{label}: {b}");
        refused(&b, "encoding");
        // Too large.
        let big = "number\n".to_owned() + &"INV-1\n".repeat(60_000);
        let (s, _) = env.import(&env.admin, MAP, "text/csv", big).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{label}");
        // A zip bomb: 20 MiB of spaces in a few KiB.
        let bomb = env.dir.join("bomb.xlsx");
        zip_bomb(&bomb, 20 * 1024 * 1024);
        let bytes = std::fs::read(&bomb).unwrap();
        assert!(bytes.len() < 256 * 1024, "{label}: the bomb is small");
        let (s, b) = env
            .import(
                &env.admin,
                "file_name=bomb.xlsx",
                "application/octet-stream",
                bytes,
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{label}: {b}");
        refused(&b, "too_large");
        assert!(b.to_string().contains("zip bomb"), "{label}: {b}");
        // A malformed archive, and a CSV named .xlsx.
        let (s, b) = env
            .import(
                &env.admin,
                "file_name=x.xlsx",
                "application/octet-stream",
                b"PK\x03\x04garbage".to_vec(),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{label}: {b}");
        refused(&b, "format");
        let (s, b) = env
            .import(
                &env.admin,
                "file_name=x.xlsx",
                "application/octet-stream",
                "number\nINV-1\n",
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{label}: {b}");
        refused(&b, "format");
        // Empty, and a mapping naming a column the file lacks.
        let (s, b) = env.import(&env.admin, "", "text/csv", "").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{label}: {b}");
        let (s, b) = env
            .import(
                &env.admin,
                "map=nope%3Dnumber",
                "text/csv",
                "number\nINV-1\n",
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{label}: {b}");
        refused(&b, "mapping");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM invoices").await,
            before,
            "{label}"
        );
        assert_eq!(
            env.count("SELECT COUNT(*) FROM platform_import_chunks")
                .await,
            batches,
            "{label}"
        );

        // Multipart, as a browser form sends it.
        let boundary = "XyZ";
        let form = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\ncustomer=customer_id\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\namount=amount_cents\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../etc/x.csv\"\r\nContent-Type: text/csv\r\n\r\n\
             number,customer,status,amount,issued on\nINV-000200,{acme},sent,3,2024-01-01\n\r\n--{boundary}--\r\n"
        );
        let (s, b) = env
            .import(
                &env.admin,
                "",
                &format!("multipart/form-data; boundary={boundary}"),
                form,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        assert_eq!(b["data"]["report"]["counts"]["created"], 1, "{label}: {b}");
        let id = b["data"]["batch_id"].as_i64().unwrap();
        let (_, b) = env.json(env.get(&format!("/api/imports/{id}"))).await;
        assert_eq!(b["data"]["file_name"], "x.csv", "{label}: {b}");

        // The command line: `import` and `import:rollback`.
        let csv = env.dir.join("cli.csv");
        std::fs::write(&csv, format!("number,customer,status,amount_cents,issued_on\nINV-000300,{acme},sent,300,2024-01-01\n")).unwrap();
        let builder = || {
            Platform::builder()
                .ignore_env()
                .database_url(&db.url)
                .app_key(test_key())
                .registry(registry())
                .with(Exchange::default().import_config(config(&env.dir)))
        };
        let commands = builder().contributions::<platform_admin::capability::Command>();
        let cmd = |name: &str| {
            commands
                .iter()
                .find(|c| c.name() == name)
                .unwrap_or_else(|| panic!("no command {name}"))
                .clone()
        };
        let import = cmd("import");
        let m = import
            .definition()
            .clone()
            .try_get_matches_from(["import", "invoices", csv.to_str().unwrap(), "--quiet"])
            .unwrap();
        import.run(builder(), m).await.unwrap();
        assert!(env.invoice("INV-000300").await.is_some(), "{label}");
        let last = env
            .count("SELECT MAX(id) FROM platform_import_batches")
            .await;
        let rollback = cmd("import:rollback");
        let m = rollback
            .definition()
            .clone()
            .try_get_matches_from(["import:rollback", &last.to_string()])
            .unwrap();
        rollback.run(builder(), m).await.unwrap();
        assert!(env.invoice("INV-000300").await.is_none(), "{label}");
        let _ = std::fs::remove_dir_all(&env.dir);
    }
}

#[tokio::test]
async fn panel_upload_preview_dry_run_run_and_roll_back() {
    for db in all_backends().await {
        let env = env(&db).await;
        let label = env.label;
        let (acme, _) = customers(&env).await;
        let uid = env
            .platform
            .access()
            .find_user_by_email("admin@example.com")
            .await
            .unwrap()
            .unwrap()
            .id;
        let app = platform_tests::panel::signed_in_by_header(
            platform_admin::app_router(&env.platform).unwrap(),
            &env.platform,
            "csrf-t",
        );
        let send = |req: Request<Body>| {
            let app = app.clone();
            async move {
                let res = app.oneshot(req).await.unwrap();
                let status = res.status();
                let location = res
                    .headers()
                    .get(header::LOCATION)
                    .map(|v| v.to_str().unwrap().to_owned());
                let body = res.into_body().collect().await.unwrap().to_bytes();
                (
                    status,
                    location,
                    String::from_utf8_lossy(&body).into_owned(),
                )
            }
        };
        let get = |uri: &str| {
            Request::builder()
                .uri(uri)
                .header("x-test-user", uid.to_string())
                .body(Body::empty())
                .unwrap()
        };
        let form = |uri: &str, body: &str| {
            Request::builder()
                .method(Method::POST)
                .uri(uri)
                .header("x-test-user", uid.to_string())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body.to_owned()))
                .unwrap()
        };
        let (s, _, html) = send(get("/admin/imports")).await;
        assert_eq!(s, StatusCode::OK, "{label}: {html}");
        assert!(html.contains("id=\"import-upload\""), "{label}: {html}");

        assert!(
            html.contains("action=\"/admin/imports/upload\""),
            "{label}: the upload goes under the panel's path, where its cookie goes"
        );
        let csv = format!(
            "Number,Customer,Status,Betrag,Issued on\nINV-000500,{acme},paid,10.5,2024-01-02\n"
        );
        let upload_file = |csrf: &str, content: &str| {
            let b = "BoUnD";
            let body = format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n{csrf}\r\n\
                 --{b}\r\nContent-Disposition: form-data; name=\"_base\"\r\n\r\n/admin\r\n\
                 --{b}\r\nContent-Disposition: form-data; name=\"resource\"\r\n\r\ninvoices\r\n\
                 --{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.csv\"\r\nContent-Type: text/csv\r\n\r\n\
                 {content}\r\n--{b}--\r\n"
            );
            Request::builder()
                .method(Method::POST)
                .uri("/admin/imports/upload")
                .header("x-test-user", uid.to_string())
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={b}"),
                )
                .body(Body::from(body))
                .unwrap()
        };
        let upload = |csrf: &str| upload_file(csrf, &csv);
        let (s, _, _) = send(upload("wrong")).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{label}: the CSRF token");
        // A file over the limit (256 KiB here): back to the imports page,
        // which shows the reason; nothing is kept.
        let big = "x".repeat(300 * 1024);
        let res = app
            .clone()
            .oneshot(upload_file("csrf-t", &big))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{label}: over-size");
        assert_eq!(res.headers()[header::LOCATION], "/admin/imports", "{label}");
        let flash = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("platform_flash="))
            .unwrap_or_else(|| panic!("{label}: no flash"));
        let shown = send(
            Request::builder()
                .uri("/admin/imports")
                .header("x-test-user", uid.to_string())
                .header(header::COOKIE, flash.split(';').next().unwrap())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .2;
        assert!(
            shown.contains("The file is too large: at most 256 KiB are accepted."),
            "{label}: {shown}"
        );
        // An empty file: its preview says so, and offers no run.
        let (s, location, body) = send(upload_file("csrf-t", "")).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{label}: {body}");
        let (s, _, html) = send(get(&location.unwrap())).await;
        assert_eq!(s, StatusCode::OK, "{label}: {html}");
        assert!(
            html.contains("in.csv cannot be imported: the file is empty"),
            "{label}: {html}"
        );
        assert!(!html.contains("actions/run/"), "{label}: {html}");
        let (s, location, body) = send(upload("csrf-t")).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{label}: {body}");
        let preview = location.unwrap();
        assert!(
            preview.starts_with("/admin/import-preview/"),
            "{label}: {preview}"
        );
        let token = preview.rsplit('/').next().unwrap().to_owned();
        let (s, _, html) = send(get(&preview)).await;
        assert_eq!(s, StatusCode::OK, "{label}: {html}");
        assert!(
            html.contains("in.csv into Invoices (csv)"),
            "{label}: {html}"
        );
        assert!(html.contains("id=\"import-mapping\""), "{label}: {html}");
        assert!(
            html.contains("No column feeds: amount_cents"),
            "{label}: {html}"
        );
        let map = "map=Betrag%3Damount_cents&map=Customer%3Dcustomer_id";
        let (s, _, html) = send(get(&format!("{preview}?{map}"))).await;
        assert_eq!(s, StatusCode::OK, "{label}: {html}");
        assert!(!html.contains("No column feeds"), "{label}: {html}");
        assert!(html.contains("INV-000500"), "{label}: the first rows");

        let (s, _, _) = send(form(
            &format!("/admin/import-preview/actions/dry_run/{token}"),
            &format!("_csrf=csrf-t&{map}"),
        ))
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{label}");
        assert!(
            env.invoice("INV-000500").await.is_none(),
            "{label}: a dry run"
        );
        let (s, _, _) = send(form(
            &format!("/admin/import-preview/actions/run/{token}"),
            &format!("_csrf=csrf-t&{map}"),
        ))
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{label}");
        assert_eq!(
            env.invoice("INV-000500").await.unwrap()[0].as_i64(),
            Some(1050),
            "{label}"
        );
        let (s, _, _) = send(get(&preview)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{label}: the upload is used up");

        let (_, _, html) = send(get("/admin/imports")).await;
        let id = env
            .count("SELECT MAX(id) FROM platform_import_batches")
            .await;
        assert!(
            html.contains(&format!("id=\"import-{id}\"")),
            "{label}: {html}"
        );
        assert!(
            html.contains(&format!("<td>{id}</td><td>Invoices</td>")),
            "{label}: the resource's label: {html}"
        );
        let (s, _, _) = send(form(
            &format!("/admin/imports/actions/rollback/{id}"),
            "_csrf=csrf-t",
        ))
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{label}");
        assert!(
            env.invoice("INV-000500").await.is_none(),
            "{label}: rolled back"
        );

        // The preview through the API.
        let (s, b) = env
            .json(
                Request::builder()
                    .method(Method::POST)
                    .uri("/api/invoices/import/preview?rows=1")
                    .header(header::AUTHORIZATION, format!("Bearer {}", env.admin))
                    .header(header::CONTENT_TYPE, "text/csv")
                    .body(Body::from(
                        "number,status,when\nINV-1,Sent,x\nINV-2,draft,y\n",
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        assert_eq!(
            b["data"]["ignored_columns"],
            serde_json::json!(["when"]),
            "{label}"
        );
        assert_eq!(b["data"]["rows"].as_array().unwrap().len(), 1, "{label}");
        assert_eq!(
            b["data"]["rows"][0]["cells"][1]["read"]["value"], "sent",
            "{label}: {b}"
        );
        let _ = std::fs::remove_dir_all(&env.dir);
    }
}

#[tokio::test]
async fn long_imports_run_as_jobs_and_interrupted_ones_roll_back() {
    use platform_core::db::Backend;
    for db in all_backends().await {
        let label = db.backend.name();
        let dir = std::env::temp_dir().join(format!(
            "import-jobs-{}",
            platform_core::crypto::random_token(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        db.create_tables(&registry()).await;
        let mut jobs = platform_jobs::Jobs::new()
            .ignore_env()
            .namespace(format!("imp{}", platform_core::crypto::random_token(6)))
            .poll_interval(std::time::Duration::from_millis(20));
        if db.backend == Backend::MySql {
            // MariaDB: the jobs wait in a SQLite file.
            jobs = jobs.queue_url(format!(
                "sqlite://{}?mode=rwc",
                dir.join("jobs.db").display()
            ));
        }
        let platform = Platform::builder()
            .ignore_env()
            .database_url(&db.url)
            .app_key(test_key())
            .registry(registry())
            .max_connections(8)
            .with(jobs)
            .with(Exchange::default().import_config(ImportConfig {
                job_threshold: 2,
                ..config(&dir)
            }))
            .build()
            .await
            .unwrap();
        platform.start_workers();
        let router = platform_admin::app_router(&platform)
            .unwrap()
            .with_state(platform.clone());
        let mut env = Env {
            platform,
            router,
            admin: String::new(),
            label,
            dir,
        };
        env.admin = env.user("admin@example.com", Some("super_admin")).await;
        let (acme, _) = customers(&env).await;
        let mut csv = "number,customer_id,status,amount_cents,issued_on\n".to_owned();
        for n in 0..25 {
            csv.push_str(&format!("INV-{n:06},{acme},sent,{n},2024-01-01\n"));
        }
        let (s, b) = env.import(&env.admin, "", "text/csv", csv).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{label}: {b}");
        assert_eq!(b["data"]["queued"], true, "{label}");
        let id = b["data"]["batch_id"].as_i64().unwrap();
        let started = std::time::Instant::now();
        let batch = loop {
            let (_, b) = env.json(env.get(&format!("/api/imports/{id}"))).await;
            if b["data"]["status"] == "done" {
                break b;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "{label}: the job did not finish: {b}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(batch["data"]["counts"]["created"], 25, "{label}: {batch}");
        assert_eq!(batch["data"]["total_rows"], 25, "{label}: {batch}");
        assert!(batch["data"]["finished_at"].is_i64(), "{label}");

        // A run killed midway leaves its batch `running`, its committed
        // chunks whole: a rollback needs force, then removes them.
        let db2 = env.platform.db();
        let mut q = db2.sql();
        q.push("UPDATE platform_import_batches SET status = 'running' WHERE id = ")
            .bind_i64(id);
        db2.execute(q).await.unwrap();
        let (s, b) = env.rollback(id, "").await;
        assert_eq!(s, StatusCode::CONFLICT, "{label}: {b}");
        let (s, b) = env.rollback(id, "?force=1").await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        assert_eq!(b["data"]["deleted"], 25, "{label}: {b}");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM invoices").await,
            0,
            "{label}"
        );
        env.platform.shutdown().await;
        let _ = std::fs::remove_dir_all(&env.dir);
    }
}

#[tokio::test]
async fn a_record_touched_twice_rolls_back_to_before_the_batch() {
    for db in all_backends().await {
        let env = env(&db).await;
        let label = env.label;
        let (acme, _) = customers(&env).await;
        // Chunks of three rows: row 3 repeats row 2's key in the same chunk
        // (refused), row 5 updates row 2's record from the next chunk.
        let csv = format!(
            "number,customer_id,status,amount_cents,issued_on\n\
             INV-000700,{acme},sent,1,2024-01-01\n\
             INV-000700,{acme},sent,2,2024-01-01\n\
             INV-000701,{acme},sent,3,2024-01-01\n\
             INV-000700,{acme},paid,5,2024-01-01\n"
        );
        let (s, b) = env.import(&env.admin, "key=number", "text/csv", csv).await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        let r = &b["data"]["report"];
        assert_eq!(r["counts"]["created"], 2, "{label}: {r}");
        assert_eq!(r["counts"]["updated"], 1, "{label}: {r}");
        assert_eq!(r["failures"][0]["row"], 3, "{label}: {r}");
        assert_eq!(
            r["failures"][0]["reason"], "repeats the key of row 2",
            "{label}: {r}"
        );
        assert_eq!(
            env.invoice("INV-000700").await.unwrap()[0].as_i64(),
            Some(500),
            "{label}: money"
        );
        let id = b["data"]["batch_id"].as_i64().unwrap();
        let (s, b) = env.rollback(id, "").await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM invoices").await,
            0,
            "{label}"
        );
        let _ = std::fs::remove_dir_all(&env.dir);
    }
}

/// Batches recorded before touched records were kept per chunk (one row
/// of `platform_import_rows` per record) still roll back, created and
/// updated records alike.
#[tokio::test]
async fn a_batch_logged_one_row_per_record_still_rolls_back() {
    for db in all_backends().await {
        let env = env(&db).await;
        let label = env.label;
        let (acme, _) = customers(&env).await;
        let csv = format!(
            "number,customer_id,status,amount_cents,issued_on\n\
             INV-000800,{acme},sent,1,2024-01-01\n\
             INV-000801,{acme},sent,2,2024-01-01\n"
        );
        let (s, b) = env.import(&env.admin, "", "text/csv", csv).await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        let first = b["data"]["batch_id"].as_i64().unwrap();
        let csv = format!(
            "number,customer_id,status,amount_cents,issued_on\n\
             INV-000800,{acme},paid,7,2024-01-01\n\
             INV-000802,{acme},sent,3,2024-01-01\n"
        );
        let (s, b) = env.import(&env.admin, "key=number", "text/csv", csv).await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        let id = b["data"]["batch_id"].as_i64().unwrap();
        assert_ne!(id, first, "{label}");
        // The second batch's chunks rewritten as the earlier layout.
        let db = env.platform.db();
        let mut q = db.sql();
        q.push("SELECT touched FROM platform_import_chunks WHERE batch_id = ")
            .bind_i64(id)
            .push(" ORDER BY id");
        let chunks = db.fetch_all(q, &[FieldType::Text]).await.unwrap();
        assert!(!chunks.is_empty(), "{label}");
        for chunk in chunks {
            let list: Vec<serde_json::Value> =
                serde_json::from_str(chunk[0].as_str().unwrap()).unwrap();
            for t in list {
                let mut q = db.sql();
                q.push(
                    "INSERT INTO platform_import_rows (batch_id, record_id, action, previous, written) VALUES (",
                )
                .bind_i64(id)
                .push(", ")
                .bind_str(t["id"].as_str().unwrap())
                .push(", ")
                .bind_str(t["action"].as_str().unwrap())
                .push(", ")
                .bind(
                    t.get("previous").map_or(platform_core::value::Value::Null, |p| {
                        platform_core::value::Value::Text(p.to_string())
                    }),
                    FieldType::Text,
                )
                .push(", ")
                .bind_str(t["written"].to_string())
                .push(")");
                db.execute(q).await.unwrap();
            }
        }
        let mut q = db.sql();
        q.push("DELETE FROM platform_import_chunks WHERE batch_id = ")
            .bind_i64(id);
        db.execute(q).await.unwrap();
        let (s, b) = env.rollback(id, "").await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        assert!(
            env.invoice("INV-000802").await.is_none(),
            "{label}: created"
        );
        let back = env.invoice("INV-000800").await.unwrap();
        assert_eq!(back[0].as_i64(), Some(100), "{label}: reverted amount");
        assert_eq!(back[1].as_str(), Some("sent"), "{label}: reverted status");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM invoices").await,
            2,
            "{label}"
        );
        let _ = std::fs::remove_dir_all(&env.dir);
    }
}

/// A product with a declared import key and a field imports leave alone.
#[derive(platform_core::Resource, Debug, Clone, PartialEq)]
#[resource(table = "skus", import(key = code))]
struct Sku {
    #[resource(primary_key)]
    id: i64,
    #[resource(unique, max_length = 20)]
    code: String,
    #[resource(max_length = 80)]
    name: String,
    #[resource(import = false)]
    stock: Option<i64>,
    available: bool,
}

/// A resource imports may not write at all.
#[derive(platform_core::Resource, Debug, Clone, PartialEq)]
#[resource(table = "ledger_lines", import = false)]
struct LedgerLine {
    #[resource(primary_key)]
    id: i64,
    memo: String,
}

#[tokio::test]
async fn declared_keys_and_switches_are_honoured() {
    for db in all_backends().await {
        let registry = platform_core::Registry::builder()
            .register::<Sku>()
            .register::<LedgerLine>()
            .build()
            .unwrap();
        let env = env_with(&db, registry).await;
        let label = env.label;
        let send = |uri: &str, query: &str, body: &str| {
            Request::builder()
                .method(Method::POST)
                .uri(format!("{uri}?{query}"))
                .header(header::AUTHORIZATION, format!("Bearer {}", env.admin))
                .header(header::CONTENT_TYPE, "text/csv")
                .body(Body::from(body.to_owned()))
                .unwrap()
        };
        let (s, b) = env
            .json(send(
                "/api/skus/import",
                "",
                "code,name,stock,available\nA-1,Apple,5,yes\nB-2,Pear,,no\n",
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        assert_eq!(b["data"]["report"]["counts"]["created"], 2, "{label}: {b}");
        assert_eq!(
            b["data"]["report"]["ignored_columns"],
            serde_json::json!(["stock"]),
            "{label}: {b}"
        );
        // The declared key upserts without being asked.
        let (s, b) = env
            .json(send(
                "/api/skus/import",
                "",
                "code,name,available\nA-1,Green apple,true\n",
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        assert_eq!(b["data"]["report"]["counts"]["updated"], 1, "{label}: {b}");
        assert_eq!(env.count("SELECT COUNT(*) FROM skus").await, 2, "{label}");
        // A column mapped by hand to a field imports leave alone.
        let (s, b) = env
            .json(send(
                "/api/skus/import",
                "map=qty%3Dstock",
                "code,qty\nA-1,9\n",
            ))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{label}: {b}");
        assert!(b.to_string().contains("cannot be imported"), "{label}: {b}");
        // A resource closed to imports.
        let (s, b) = env
            .json(send("/api/ledger_lines/import", "", "memo\nx\n"))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{label}: {b}");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM ledger_lines").await,
            0,
            "{label}"
        );
        let _ = std::fs::remove_dir_all(&env.dir);
    }
}

/// A number repeated in two chunks (of three rows) that are written at the
/// same time where the database allows it (PostgreSQL): exactly one of the
/// two rows is refused as `unique`, every other row is created, and a
/// rollback removes them all. On the other databases the chunks go in turn
/// and the later row is the one refused.
#[tokio::test]
async fn a_value_repeated_in_chunks_written_at_once_is_refused_once() {
    for db in all_backends().await {
        let env = env(&db).await;
        let label = env.label;
        let (acme, _) = customers(&env).await;
        let mut csv = String::from("number,customer,status,amount,issued on\n");
        for n in 0..30 {
            // Rows 3 and 6 (file lines) share a number; so do rows 10 and 12.
            let number = match n {
                4 => 1,
                10 => 8,
                n => n,
            };
            csv.push_str(&format!("DUP-{number:04},{acme},draft,{n},2024-01-02\n"));
        }
        let (s, body) = env.import(&env.admin, MAP, "text/csv", csv).await;
        assert_eq!(s, StatusCode::OK, "{label}: {body}");
        let report = &body["data"]["report"];
        let batch = body["data"]["batch_id"].as_i64().unwrap();
        assert_eq!(report["status"], "done", "{label}: {report}");
        assert_eq!(report["counts"]["created"], 28, "{label}: {report}");
        assert_eq!(report["counts"]["failed"], 2, "{label}: {report}");
        let failures = report["failures"].as_array().unwrap();
        let rows: Vec<u64> = failures.iter().filter_map(|f| f["row"].as_u64()).collect();
        for f in failures {
            assert_eq!(f["code"], "unique", "{label}: {report}");
        }
        assert!(
            [3, 6].iter().any(|r| rows.contains(r)) && [10, 12].iter().any(|r| rows.contains(r)),
            "{label}: {report}"
        );
        if db.backend != platform_core::db::Backend::Postgres {
            assert_eq!(rows, vec![6, 12], "{label}: {report}");
        }
        assert_eq!(
            env.count("SELECT COUNT(*) FROM invoices WHERE number LIKE 'DUP-%'")
                .await,
            28,
            "{label}"
        );
        let (s, b) = env.rollback(batch, "").await;
        assert_eq!(s, StatusCode::OK, "{label}: {b}");
        assert_eq!(
            env.count("SELECT COUNT(*) FROM invoices WHERE number LIKE 'DUP-%'")
                .await,
            0,
            "{label}: {b}"
        );
    }
}
