//! Helpers of the webhook tests: databases with their job back ends, a
//! polling wait, and Python's `hmac` as an independent implementation.

use std::time::Duration;

use platform_core::db::Backend;
use platform_jobs::Jobs;

use crate::{TestDb, all_backends};

/// Fails under `CI=true` when `var` is unset; else its value, if any.
pub fn env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "{var} must be set under CI=true (nothing may be skipped there)"
            );
            None
        }
    }
}

/// A unique tag (queue namespaces, paths).
pub fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One database and where its jobs go.
#[derive(Debug)]
pub struct Case {
    /// The database.
    pub db: TestDb,
    /// The queue URL of its jobs, if not the database.
    pub queue_url: Option<String>,
    /// `sqlite`, `postgres`, `mysql+redis`...
    pub label: String,
    /// A temporary directory deleted with it.
    pub dir: Option<TempDir>,
}

/// Every configured database; MariaDB with Redis jobs (or a SQLite file).
pub async fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for db in all_backends().await {
        if db.backend == Backend::MySql {
            let (url, label, dir) = match env("PLATFORM_TEST_REDIS_URL") {
                Some(u) => (u, "mysql+redis", None),
                None => {
                    eprintln!(
                        "PLATFORM_TEST_REDIS_URL is not set: MariaDB's jobs go to a SQLite file"
                    );
                    let dir = std::env::temp_dir().join(format!("webhooks-{}", tag()));
                    std::fs::create_dir_all(&dir).unwrap();
                    let url = format!("sqlite://{}?mode=rwc", dir.join("jobs.db").display());
                    (url, "mysql+sqlite-file", Some(TempDir(dir)))
                }
            };
            out.push(Case {
                db,
                queue_url: Some(url),
                label: label.into(),
                dir,
            });
        } else {
            out.push(Case {
                label: db.backend.name().into(),
                db,
                queue_url: None,
                dir: None,
            });
        }
    }
    out
}

/// Jobs polling fast in namespace `ns`, on the case's queue.
pub fn jobs(case: &Case, ns: &str) -> Jobs {
    let mut jobs = Jobs::new()
        .ignore_env()
        .namespace(ns)
        .heartbeat(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(20));
    if let Some(u) = &case.queue_url {
        jobs = jobs.queue_url(u);
    }
    jobs
}

/// Polls `f` until it answers, for at most `limit`.
pub async fn wait_for<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks `header` over `body` with Python's `hmac` (an independent
/// implementation); `None` when python3 is not installed.
pub fn python_verifies(secret: &str, header: &str, body: &str) -> Option<bool> {
    const SCRIPT: &str = r#"
import hashlib, hmac, sys
secret, header, body = sys.argv[1], sys.argv[2], sys.stdin.buffer.read()
parts = dict(p.split("=", 1) for p in header.split(","))
expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
sys.exit(0 if hmac.compare_digest(expected, parts["v1"]) else 1)
"#;
    use std::io::Write;
    let mut child = match std::process::Command::new("python3")
        .args(["-c", SCRIPT, secret, header])
        .stdin(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "python3 is required under CI: {e}"
            );
            eprintln!("skipping the Python check: python3 does not run ({e})");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    Some(child.wait().unwrap().success())
}

/// The signature header value Python's `hmac` makes for `body` under
/// `scheme` (`platform` and `stripe`: `t=<t>,v1=<hex>` over `"{t}.{body}"`;
/// `github`: `sha256=<hex>` over the body); `None` when python3 does not
/// run.
pub fn python_sign(scheme: &str, secret: &str, t: i64, body: &[u8]) -> Option<String> {
    const SCRIPT: &str = r#"
import hashlib, hmac, sys
scheme, secret, t, body = sys.argv[1], sys.argv[2].encode(), sys.argv[3], sys.stdin.buffer.read()
if scheme == "github":
    print("sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(), end="")
else:
    print("t=%s,v1=%s" % (t, hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()), end="")
"#;
    use std::io::Write;
    let mut child = match std::process::Command::new("python3")
        .args(["-c", SCRIPT, scheme, secret, &t.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "python3 is required under CI: {e}"
            );
            eprintln!("python3 does not run ({e}): signing in Rust instead");
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the Python signer failed");
    Some(String::from_utf8(out.stdout).unwrap())
}
