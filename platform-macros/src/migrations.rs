//! `embed_migrations!("dir")`: the migrations under a directory of the
//! calling crate, read at compile time.
//!
//! Each subdirectory is one migration named `<version>_<name>` (for example
//! `0001_create_customers`) holding `sqlite.sql`, `postgres.sql` and
//! `mysql.sql`. The scripts are embedded with `include_str!` and absolute
//! paths, so editing one rebuilds the crate.

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::quote;
use syn::LitStr;

/// The script file of each back end, in `Migration` field order.
const FILES: [&str; 3] = ["sqlite.sql", "postgres.sql", "mysql.sql"];

/// One migration found on disk.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    version: i64,
    /// The directory's name, for messages.
    dir_name: String,
    /// The human name: the directory's name after the version, `_` as space.
    name: String,
    /// The scripts, in [`FILES`] order.
    scripts: [PathBuf; 3],
}

/// Expands `embed_migrations!(dir)`.
pub(crate) fn expand(dir: &LitStr) -> syn::Result<TokenStream> {
    let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return Err(syn::Error::new(
            dir.span(),
            "`embed_migrations!` needs `CARGO_MANIFEST_DIR`: build with cargo",
        ));
    };
    let root = Path::new(&manifest_dir).join(dir.value());
    let found = read(&root, &dir.value()).map_err(|messages| {
        let mut errors = messages.into_iter().map(|m| syn::Error::new(dir.span(), m));
        let mut first = errors
            .next()
            .unwrap_or_else(|| syn::Error::new(dir.span(), "invalid migration directory"));
        first.extend(errors);
        first
    })?;
    let migrations = found.iter().map(|m| {
        let version = m.version;
        let name = &m.name;
        let [sqlite, postgres, mysql] = m
            .scripts
            .each_ref()
            .map(|p| p.to_string_lossy().into_owned());
        quote! {
            ::platform_core::db::Migration {
                version: #version,
                name: #name,
                sqlite: ::core::include_str!(#sqlite),
                postgres: ::core::include_str!(#postgres),
                mysql: ::core::include_str!(#mysql),
            }
        }
    });
    Ok(quote! {
        ::platform_core::db::MigrationSet {
            name: ::core::env!("CARGO_PKG_NAME"),
            migrations: &[#(#migrations),*],
        }
    })
}

/// Reads the migrations under `root` (`shown` is the directory as written,
/// for messages), sorted by version; or every problem found.
fn read(root: &Path, shown: &str) -> Result<Vec<Found>, Vec<String>> {
    let entries = std::fs::read_dir(root).map_err(|e| {
        vec![format!(
            "cannot read the migration directory `{shown}` (relative to the crate's `Cargo.toml`): {e}"
        )]
    })?;
    let mut problems = Vec::new();
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(format!(
                    "cannot read the migration directory `{shown}`: {e}"
                ));
                continue;
            }
        };
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) if name.starts_with('.') => {}
            Ok(name) => dirs.push((name, path)),
            Err(name) => problems.push(format!(
                "migration directory `{shown}/{}` must have a UTF-8 name",
                name.to_string_lossy()
            )),
        }
    }
    dirs.sort();
    let mut found: Vec<Found> = Vec::new();
    for (dir_name, path) in dirs {
        let Some((version, name)) = parse_dir_name(&dir_name) else {
            problems.push(format!(
                "migration directory `{shown}/{dir_name}` must be named `<version>_<name>`, like `0001_create_customers`"
            ));
            continue;
        };
        let scripts = FILES.map(|file| path.join(file));
        let mut complete = true;
        for (file, script) in FILES.iter().zip(&scripts) {
            if !script.is_file() {
                problems.push(format!("migration `{shown}/{dir_name}` has no `{file}`"));
                complete = false;
            } else if script.to_str().is_none() {
                problems.push(format!(
                    "the path of migration `{shown}/{dir_name}` is not UTF-8"
                ));
                complete = false;
            }
        }
        if let Some(other) = found.iter().find(|f| f.version == version) {
            problems.push(format!(
                "migrations `{shown}/{}` and `{shown}/{dir_name}` both have version {version}",
                other.dir_name
            ));
            continue;
        }
        if complete {
            found.push(Found {
                version,
                dir_name,
                name,
                scripts,
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    found.sort_by_key(|f| f.version);
    Ok(found)
}

/// `0001_create_customers` -> `(1, "create customers")`.
fn parse_dir_name(dir_name: &str) -> Option<(i64, String)> {
    let (version, name) = dir_name.split_once('_')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    Some((version.parse().ok()?, name.replace('_', " ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary directory.
    fn temp_dir(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("platform-macros-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn migration(root: &Path, name: &str, files: &[&str]) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for file in files {
            std::fs::write(dir.join(file), format!("-- {name} {file}")).unwrap();
        }
    }

    #[test]
    fn dir_names() {
        assert_eq!(
            parse_dir_name("0001_create_customers"),
            Some((1, "create customers".to_owned()))
        );
        assert_eq!(
            parse_dir_name("20240101_x"),
            Some((20_240_101, "x".to_owned()))
        );
        assert_eq!(parse_dir_name("create_customers"), None);
        assert_eq!(parse_dir_name("0001"), None);
        assert_eq!(parse_dir_name("0001_"), None);
        assert_eq!(parse_dir_name("_x"), None);
        assert_eq!(parse_dir_name("-1_x"), None);
        assert_eq!(parse_dir_name("99999999999999999999_x"), None);
    }

    #[test]
    fn reads_sorted_by_version_and_ignores_files() {
        let root = temp_dir("sorted");
        migration(&root, "0010_add_notes", &FILES);
        migration(&root, "0002_create_invoices", &FILES);
        migration(&root, ".hidden", &[]);
        std::fs::write(root.join("README.md"), "notes").unwrap();
        let found = read(&root, "migrations").unwrap();
        let versions: Vec<(i64, &str)> =
            found.iter().map(|f| (f.version, f.name.as_str())).collect();
        assert_eq!(versions, [(2, "create invoices"), (10, "add notes")]);
        assert!(found[0].scripts[1].ends_with("0002_create_invoices/postgres.sql"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn reports_every_problem() {
        let root = temp_dir("problems");
        migration(&root, "0001_a", &FILES);
        migration(&root, "01_b", &FILES);
        migration(&root, "0002_c", &["sqlite.sql"]);
        migration(&root, "three", &FILES);
        let problems = read(&root, "migrations").unwrap_err();
        assert_eq!(
            problems,
            [
                "migration `migrations/0002_c` has no `postgres.sql`",
                "migration `migrations/0002_c` has no `mysql.sql`",
                "migrations `migrations/0001_a` and `migrations/01_b` both have version 1",
                "migration directory `migrations/three` must be named `<version>_<name>`, like `0001_create_customers`",
            ]
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn missing_directory() {
        let root = temp_dir("missing").join("nope");
        let problems = read(&root, "nope").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("cannot read the migration directory `nope`"),
            "{problems:?}"
        );
    }
}
