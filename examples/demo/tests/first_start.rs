//! The demo's first start, run as a user runs it in a fresh directory: the
//! state folder is made (ignored by git), and the administrator's generated
//! password is printed in a box, the last thing before the address it
//! serves on; a second start prints no password.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const EXE: &str = env!("CARGO_BIN_EXE_demo");

/// Starts the demo in `dir` and returns its standard output up to and
/// including the "serving" line (then stops it).
fn first_lines(dir: &Path, admin_password: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new(EXE);
    cmd.current_dir(dir)
        .env("PLATFORM_SEED", "0")
        .env("PLATFORM_ADDR", "127.0.0.1:0")
        .env_remove("PLATFORM_DATABASE_URL")
        .env_remove("PLATFORM_APP_KEY")
        .env_remove("PLATFORM_KEY_FILE")
        .env_remove("PLATFORM_ENV")
        .env_remove("PLATFORM_MAIL_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match admin_password {
        Some(p) => cmd.env("PLATFORM_ADMIN_PASSWORD", p),
        None => cmd.env_remove("PLATFORM_ADMIN_PASSWORD"),
    };
    let mut child: Child = cmd.spawn().expect("start the demo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.contains("Platform is serving");
            if tx.send(line).is_err() || done {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                let done = line.contains("Platform is serving");
                lines.push(line);
                if done {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!("the demo did not get to serving ({e}): {lines:#?}");
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn the_generated_password_is_the_last_thing_before_serving() {
    let dir = std::env::temp_dir().join(format!("platform-demo-first-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let lines = first_lines(&dir, None);
    let n = lines.len();
    assert!(n >= 4, "{lines:#?}");
    assert!(lines[n - 1].starts_with("Platform is serving http://"));
    // The box closes on the line just before "serving" and opens above.
    let rule = &lines[n - 2];
    assert!(rule.starts_with("+-") && rule.ends_with("-+"), "{lines:#?}");
    let top = lines[..n - 2]
        .iter()
        .rposition(|l| l == rule)
        .expect("the box's top line");
    let inside = &lines[top + 1..n - 2];
    assert!(
        inside
            .iter()
            .all(|l| l.starts_with("| ") && l.ends_with(" |") && l.len() == rule.len()),
        "{inside:#?}"
    );
    let text = inside.join("\n");
    assert!(text.contains("admin@example.com"), "{text}");
    let password = inside
        .iter()
        .find_map(|l| l.split("generated password").nth(1))
        .map(|rest| rest.trim_matches(|c| c == ' ' || c == '|').to_owned())
        .expect("the password line");
    assert!(password.len() >= 15, "{password:?}");
    assert!(
        text.contains("PLATFORM_ADMIN_PASSWORD"),
        "how to set one: {text}"
    );
    assert!(text.contains("user:password"), "how to reset it: {text}");
    assert!(
        text.contains("first sign-in"),
        "that it must be changed: {text}"
    );

    // The state folder, ignored by git.
    let state = dir.join(".platform");
    assert!(state.join("platform.db").is_file() && state.join("platform.key").is_file());
    let ignore = std::fs::read_to_string(state.join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "*"), "{ignore}");

    // The second start: the administrator exists, no password is shown.
    let again = first_lines(&dir, None);
    assert!(!again.iter().any(|l| l.contains("password")), "{again:#?}");
    std::fs::remove_dir_all(&dir).unwrap();

    // A password from the environment is never printed.
    let dir2 = std::env::temp_dir().join(format!("platform-demo-env-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir2);
    std::fs::create_dir_all(&dir2).unwrap();
    let lines = first_lines(&dir2, Some("chosen by the operator"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("password from PLATFORM_ADMIN_PASSWORD"))
    );
    assert!(!lines.iter().any(|l| l.contains("chosen by the operator")));
    std::fs::remove_dir_all(&dir2).unwrap();
}
