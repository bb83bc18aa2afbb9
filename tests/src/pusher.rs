//! Runs the real `pusher-js` from npm (`tests/pusher/`) under Node's test
//! runner against servers a Rust test started.

use std::path::Path;
use std::time::Duration;

/// Runs `script` (a file of `tests/pusher/`) with `node --test`, the
/// environment `env` added; its output, after asserting that it passed
/// with `passes` tests. `None` (with the reason printed) when Node is not
/// installed, except under `CI=true`, where that fails.
pub async fn run(script: &str, env: &[(&str, String)], passes: usize) -> Option<String> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        assert!(!ci, "node (20 or newer) is required under CI");
        eprintln!("skipped: node is not installed");
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pusher");
    let cache = std::env::var("PLATFORM_E2E_NPM_CACHE")
        .unwrap_or_else(|_| "/var/cache/platform-ci/npm".to_owned());
    if !dir.join("node_modules/pusher-js").exists() {
        let st = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--cache", &cache])
            .current_dir(&dir)
            .status()
            .await
            .expect("npm");
        assert!(st.success(), "npm ci in tests/pusher failed");
    }
    let mut cmd = tokio::process::Command::new("node");
    cmd.args([
        "--test",
        "--test-concurrency=1",
        "--test-reporter=spec",
        script,
    ])
    .current_dir(&dir)
    .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("node finished within 120 s")
        .expect("node runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "pusher-js tests failed:\n{text}");
    assert!(text.contains(&format!("pass {passes}")), "{text}");
    Some(text)
}
