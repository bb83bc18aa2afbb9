//! `SmtpMailer` against a real SMTP capture server (aiosmtpd writing a
//! Maildir; `.ci/run` starts one): what arrives, and what a dead server
//! answers.
//!
//! `PLATFORM_TEST_SMTP_URL` (e.g. `smtp://127.0.0.1:2525?tls=none`) and
//! `PLATFORM_TEST_SMTP_MAILDIR` name the server and its Maildir. When unset
//! the delivery test is skipped with a printed reason, except under
//! `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use platform_adapters::mail::SmtpMailer;
use platform_core::error::Error;
use platform_core::mail::{Mail, Mailer};
use platform_tests::env;

fn marker() -> String {
    let mut b = [0u8; 8];
    platform_core::crypto::random_bytes(&mut b);
    platform_core::crypto::hex(&b)
}

/// The captured message (Maildir `new/`) whose text contains `needle`,
/// waiting up to 10 s for it to arrive.
fn captured(maildir: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(dir) = std::fs::read_dir(maildir.join("new")) {
            for entry in dir.flatten() {
                if let Ok(text) = std::fs::read_to_string(entry.path())
                    && text.contains(needle)
                {
                    return text;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no message containing {needle} arrived in {}",
            maildir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let head = message.split("\n\n").next().unwrap_or_default();
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn mail_arrives_at_a_real_smtp_server() {
    let (Some(url), Some(maildir)) = (
        env("PLATFORM_TEST_SMTP_URL"),
        env("PLATFORM_TEST_SMTP_MAILDIR"),
    ) else {
        eprintln!(
            "skipping: PLATFORM_TEST_SMTP_URL and PLATFORM_TEST_SMTP_MAILDIR are not set (see .ci/run)"
        );
        return;
    };
    let maildir = PathBuf::from(maildir);
    let mailer = SmtpMailer::from_url(&url, "Platform <noreply@example.com>").unwrap();

    // Plain text.
    let m = marker();
    mailer
        .send(&Mail::new(
            "ada@example.com",
            format!("Reset your password {m}"),
            format!("Hello Ada,\n\nopen https://panel.example.com/reset/{m} to reset.\n"),
        ))
        .await
        .unwrap();
    let msg = captured(&maildir, &m).replace("\r\n", "\n");
    assert_eq!(header(&msg, "To"), Some("ada@example.com"), "{msg}");
    assert_eq!(
        header(&msg, "From"),
        Some("Platform <noreply@example.com>"),
        "{msg}"
    );
    assert_eq!(
        header(&msg, "Subject"),
        Some(format!("Reset your password {m}").as_str())
    );
    assert_eq!(header(&msg, "X-RcptTo"), Some("ada@example.com"));
    assert_eq!(header(&msg, "X-MailFrom"), Some("noreply@example.com"));
    assert!(
        header(&msg, "Content-Type").is_some_and(|c| c.starts_with("text/plain")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "open https://panel.example.com/reset/{m} to reset."
        )),
        "{msg}"
    );

    // With an HTML alternative and a non-ASCII subject.
    let m2 = marker();
    mailer
        .send(
            &Mail::new(
                "bob@example.com",
                format!("Grüße {m2}"),
                format!("plain {m2}"),
            )
            .with_html(format!("<p>html <b>{m2}</b></p>")),
        )
        .await
        .unwrap();
    let msg = captured(&maildir, &format!("plain {m2}")).replace("\r\n", "\n");
    assert_eq!(header(&msg, "To"), Some("bob@example.com"));
    assert!(
        header(&msg, "Content-Type").is_some_and(|c| c.starts_with("multipart/alternative")),
        "{msg}"
    );
    assert!(msg.contains("text/html"), "{msg}");
    assert!(msg.contains(&format!("<p>html <b>{m2}</b></p>")), "{msg}");
    let subject = header(&msg, "Subject").unwrap();
    assert!(
        subject.starts_with("=?utf-8?"),
        "non-ASCII subjects are encoded words: {subject}"
    );

    // A refused recipient sends nothing.
    let err = mailer
        .send(&Mail::new("two@example.com, three@example.com", "x", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Validation(ref e) if e.has("to")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_dead_server_is_unavailable_quickly_and_never_shows_the_password() {
    // A port nothing listens on: bind, read it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mailer = SmtpMailer::from_url(
        &format!("smtp://app:hunter2-secret@127.0.0.1:{port}?tls=none&timeout=5"),
        "noreply@example.com",
    )
    .unwrap();
    assert!(!format!("{mailer:?}").contains("hunter2"));
    let started = Instant::now();
    let err = mailer
        .send(&Mail::new("ada@example.com", "Hello", "Hello"))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains(&port.to_string()), "names the server: {text}");
}
