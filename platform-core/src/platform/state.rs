//! The state folder (`.platform/`): where the development app key and the
//! default SQLite database live, and where they were before it.

use std::path::Path;

use crate::crypto::AppKey;
use crate::error::{Error, Result};

/// The state folder, in the working directory: the development app key and
/// the default SQLite database live in it. It is created on first use with
/// its own `.gitignore` (`*`), so neither can land in git.
pub const STATE_DIR: &str = ".platform";

/// The default database: an SQLite file in the state folder.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://.platform/platform.db?mode=rwc";

/// Where the default database was before the state folder (kept in use,
/// with a notice, when it exists and the new one does not).
pub(super) const LEGACY_DATABASE_FILE: &str = "platform.db";

/// The `.gitignore` written into the state folder.
const STATE_GITIGNORE: &str =
    "# Platform's development state (app key, SQLite database): never commit it.\n*\n";

/// Creates the state folder `dir` (and its parents; on Unix readable by its
/// owner only) with a `.gitignore` that ignores everything in it, unless
/// both exist already. Idempotent.
pub fn ensure_state_dir(dir: &Path) -> Result<()> {
    let io = |e: std::io::Error| {
        Error::Configuration(format!(
            "cannot create the state folder {}: {e}",
            dir.display()
        ))
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    // Only its owner may look inside (the key file is 0600 as well).
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io)?;
    let ignore = dir.join(".gitignore");
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&ignore)
    {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(STATE_GITIGNORE.as_bytes()).map_err(io)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// Whether `path` lies directly in a folder named [`STATE_DIR`].
pub(crate) fn in_state_dir(path: &Path) -> bool {
    path.parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == STATE_DIR)
}

/// Prints `message` on standard error, once per process and message kind.
pub(super) fn notice_once(flag: &'static std::sync::Once, message: String) {
    flag.call_once(|| eprintln!("{message}"));
}
pub(super) static LEGACY_DB_NOTICE: std::sync::Once = std::sync::Once::new();
pub(super) static LEGACY_KEY_NOTICE: std::sync::Once = std::sync::Once::new();

/// Writes a generated development key to `path` (created, never
/// overwritten; on Unix readable by its owner only), making the state
/// folder first when `path` is in it.
pub(super) fn write_key_file(path: &Path, key: &AppKey) -> Result<()> {
    if in_state_dir(path)
        && let Some(dir) = path.parent()
    {
        ensure_state_dir(dir)?;
    }
    let io = |e: std::io::Error| {
        Error::Configuration(format!(
            "cannot write the app key file {}: {e}",
            path.display()
        ))
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(key.to_config_string().as_bytes()).map_err(io)?;
    f.write_all(b"\n").map_err(io)
}
