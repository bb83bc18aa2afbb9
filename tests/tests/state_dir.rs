//! The state folder `.platform/`: a fresh directory gets it with its own
//! `.gitignore`, the development key and the default SQLite database inside
//! (git ignores them); an application of the layout before it
//! (`./platform.db`, `./platform.key`) keeps working with its key, and
//! after the move the notice prints, too.
//!
//! The default paths are relative to the working directory, which this
//! test changes: it is the only test of this binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use platform_core::Platform;
use platform_core::context::Context;
use platform_core::repo::Changes;
use platform_core::value::Value;

async fn platform(url: Option<&str>, key_file: Option<&str>) -> Platform {
    let mut b = Platform::builder()
        .ignore_env()
        .registry(platform_tests::domain::registry())
        .migrations(platform_core::embed_migrations!("migrations"))
        .background_tasks(false);
    if let Some(u) = url {
        b = b.database_url(u);
    }
    if let Some(k) = key_file {
        b = b.key_file(k);
    }
    b.build().await.expect("platform")
}

/// Writes an invoice with an encrypted IBAN; returns its id.
async fn write_secret(p: &Platform, iban: &str) -> Value {
    let ctx = Context::console();
    let customers = p.records("customers", &ctx).unwrap();
    let invoices = p.records("invoices", &ctx).unwrap();
    let customer = customers
        .create(
            Changes::new()
                .set("name", "Ada")
                .set("email", format!("ada{}@example.com", &iban[..2]))
                .set("country", "GB"),
        )
        .await
        .unwrap();
    let invoice = invoices
        .create(
            Changes::new()
                .set("customer_id", customer.id().clone())
                .set("number", format!("INV-{}", &iban[..4]))
                .set("status", "draft")
                .set("amount_cents", 100_i64)
                .set("issued_on", Value::Date(chrono::NaiveDate::MIN))
                .set("iban", iban),
        )
        .await
        .unwrap();
    invoice.id().clone()
}

async fn read_secret(p: &Platform, id: Value) -> Value {
    let invoices = p.records("invoices", &Context::console()).unwrap();
    invoices
        .find(id)
        .await
        .unwrap()
        .get("iban")
        .unwrap()
        .clone()
}

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs")
}

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("platform-state-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn development_state_lives_in_an_ignored_folder_and_old_layouts_keep_their_key() {
    // A fresh directory.
    let fresh = fresh_dir("fresh");
    std::env::set_current_dir(&fresh).unwrap();
    let p = platform(None, None).await;
    let id = write_secret(&p, "DE00 1111 2222").await;
    p.shutdown().await;
    let ignore = std::fs::read_to_string(fresh.join(".platform/.gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "*"), "{ignore}");
    for f in ["platform.key", "platform.db"] {
        assert!(fresh.join(".platform").join(f).is_file(), "{f}");
        assert!(!fresh.join(f).exists(), "nothing at the top: {f}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(fresh.join(".platform/platform.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
        let mode = std::fs::metadata(fresh.join(".platform"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "so is the folder");
    }
    // Git ignores the folder's content without any help from the project.
    assert!(git(&fresh, &["init", "-q"]).status.success());
    let checked = git(
        &fresh,
        &[
            "check-ignore",
            ".platform/platform.key",
            ".platform/platform.db",
        ],
    );
    assert!(checked.status.success(), "{checked:?}");
    let listed = String::from_utf8_lossy(&checked.stdout).into_owned();
    assert!(listed.contains(".platform/platform.key") && listed.contains(".platform/platform.db"));
    let status = git(&fresh, &["status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "",
        "nothing to commit"
    );
    // A second start reads the same key.
    let p = platform(None, None).await;
    assert_eq!(read_secret(&p, id).await, Value::from("DE00 1111 2222"));
    p.shutdown().await;

    // The layout before the state folder: ./platform.db and ./platform.key.
    let old = fresh_dir("old");
    std::env::set_current_dir(&old).unwrap();
    let p = platform(Some("sqlite://platform.db?mode=rwc"), Some("platform.key")).await;
    let id = write_secret(&p, "FR76 3000 4000").await;
    p.shutdown().await;
    let key = std::fs::read_to_string(old.join("platform.key")).unwrap();
    // Started with the defaults, it keeps using both (nothing new made).
    let p = platform(None, None).await;
    assert_eq!(
        read_secret(&p, id.clone()).await,
        Value::from("FR76 3000 4000"),
        "the old key decrypts the old records"
    );
    p.shutdown().await;
    assert!(!old.join(".platform/platform.key").exists(), "no new key");
    assert!(
        !old.join(".platform/platform.db").exists(),
        "no new database"
    );
    assert_eq!(
        std::fs::read_to_string(old.join("platform.key")).unwrap(),
        key
    );

    // The move the notice prints: afterwards, the same data and key from
    // the state folder, which gets its `.gitignore`.
    std::fs::create_dir(old.join(".platform")).unwrap();
    for entry in std::fs::read_dir(&old).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("platform.db") || name == "platform.key" {
            std::fs::rename(old.join(&name), old.join(".platform").join(&name)).unwrap();
        }
    }
    let p = platform(None, None).await;
    assert_eq!(read_secret(&p, id).await, Value::from("FR76 3000 4000"));
    p.shutdown().await;
    assert!(old.join(".platform/.gitignore").is_file());
    assert_eq!(
        std::fs::read_to_string(old.join(".platform/platform.key")).unwrap(),
        key
    );
    assert!(!old.join("platform.db").exists() && !old.join("platform.key").exists());

    // Production never generates a key, state folder or not.
    let prod = fresh_dir("prod");
    std::env::set_current_dir(&prod).unwrap();
    let err = Platform::builder()
        .ignore_env()
        .registry(platform_core::resource::Registry::default())
        .environment(platform_core::platform::Environment::Production)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PLATFORM_APP_KEY"), "{err}");
    assert!(!prod.join(".platform/platform.key").exists());

    std::env::set_current_dir(std::env::temp_dir()).unwrap();
    for d in [fresh, old, prod] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
