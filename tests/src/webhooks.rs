//! Helpers of the webhook tests: Python's `hmac` as an independent
//! implementation. The databases with their job back ends and the polling
//! wait they use are re-exported from [`crate::queues`] and the crate root.

pub use crate::queues::{Case, cases, jobs};
pub use crate::{TempDir, env, tag, wait_for};

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
    let out = python(
        &[SCRIPT, secret, header],
        body.as_bytes(),
        "skipping the Python check",
    )?;
    Some(out.status.success())
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
    let out = python(
        &[SCRIPT, scheme, secret, &t.to_string()],
        body,
        "signing in Rust instead",
    )?;
    assert!(out.status.success(), "the Python signer failed");
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Runs `python3 -c <script> <args>...` (`script_and_args`) with `stdin`
/// on its standard input; `None` when python3 does not run (after saying
/// so and that the caller goes on with `otherwise`), which fails under
/// `CI=true`.
fn python(script_and_args: &[&str], stdin: &[u8], otherwise: &str) -> Option<std::process::Output> {
    use std::io::Write;
    let mut child = match std::process::Command::new("python3")
        .arg("-c")
        .args(script_and_args)
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
            eprintln!("python3 does not run ({e}): {otherwise}");
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    Some(child.wait_with_output().unwrap())
}

/// A receiver on loopback answering 200 to `POST /hook` and counting its
/// calls in `hits`; its URL.
pub async fn counting_receiver(hits: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hook")
}
