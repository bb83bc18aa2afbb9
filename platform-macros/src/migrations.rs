//! `embed_migrations!("dir")`: the migrations under a directory of the
//! calling crate, read at compile time.
//!
//! Each subdirectory is one migration named `<version>_<name>` (for example
//! `0001_create_customers`) holding `sqlite.sql`, `postgres.sql` and
//! `mysql.sql`, or only the scripts of the dialects the application
//! declares (`embed_migrations!("dir", dialects = [sqlite])`). The scripts
//! are embedded with `include_str!` and absolute paths, so editing one
//! rebuilds the crate. Every problem found is reported in one error.

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token};

/// The script file of each back end, in `Migration` field order.
const FILES: [&str; 3] = ["sqlite.sql", "postgres.sql", "mysql.sql"];
/// The dialect names `dialects = [..]` accepts, in [`FILES`] order.
const DIALECTS: [&str; 3] = ["sqlite", "postgres", "mysql"];
/// The `Backend` variant of each dialect, in [`FILES`] order.
const BACKENDS: [&str; 3] = ["Sqlite", "Postgres", "MySql"];

/// The macro's input: the directory, and optionally the dialects.
pub(crate) struct Input {
    dir: LitStr,
    /// Which of [`DIALECTS`] the application targets (`None`: all).
    dialects: Option<[bool; 3]>,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let dir: LitStr = input.parse()?;
        let mut dialects = None;
        if input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
            let key: Ident = input.parse()?;
            if key != "dialects" {
                return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "unknown option `{key}`; expected `dialects = [sqlite, postgres, mysql]`"
                    ),
                ));
            }
            input.parse::<Token![=]>()?;
            let content;
            let bracket = syn::bracketed!(content in input);
            let names = content.parse_terminated(Ident::parse, Token![,])?;
            let mut chosen = [false; 3];
            for name in &names {
                let text = name.to_string();
                let index = match text.as_str() {
                    "sqlite" => 0,
                    "postgres" | "postgresql" => 1,
                    "mysql" | "mariadb" => 2,
                    _ => {
                        return Err(syn::Error::new(
                            name.span(),
                            format!("unknown dialect `{text}`; dialects: sqlite, postgres, mysql"),
                        ));
                    }
                };
                if chosen[index] {
                    return Err(syn::Error::new(
                        name.span(),
                        format!("dialect `{}` is named twice", DIALECTS[index]),
                    ));
                }
                chosen[index] = true;
            }
            if names.is_empty() {
                return Err(syn::Error::new(
                    bracket.span.join(),
                    "name at least one dialect: sqlite, postgres, mysql",
                ));
            }
            dialects = Some(chosen);
            let _ = input.parse::<Option<Token![,]>>()?;
        }
        if !input.is_empty() {
            return Err(
                input.error("unexpected input; expected `\"dir\"` or `\"dir\", dialects = [..]`")
            );
        }
        Ok(Self { dir, dialects })
    }
}

/// One migration found on disk.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    version: i64,
    /// The directory's name, for messages.
    dir_name: String,
    /// The human name: the directory's name after the version, `_` as space.
    name: String,
    /// The scripts, in [`FILES`] order (`None`: a dialect not targeted).
    scripts: [Option<PathBuf>; 3],
}

/// Expands `embed_migrations!(dir)`.
pub(crate) fn expand(input: &Input) -> syn::Result<TokenStream> {
    let dir = &input.dir;
    let wanted = input.dialects.unwrap_or([true; 3]);
    let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return Err(syn::Error::new(
            dir.span(),
            "`embed_migrations!` needs `CARGO_MANIFEST_DIR`: build with cargo",
        ));
    };
    let root = Path::new(&manifest_dir).join(dir.value());
    // One error listing every problem: several `compile_error!`s in
    // expression position make rustc add misleading errors of its own.
    let found = read(&root, &dir.value(), wanted).map_err(|messages| {
        syn::Error::new(dir.span(), explain(&dir.value(), &messages, wanted))
    })?;
    let migrations = found.iter().map(|m| {
        let version = m.version;
        let name = &m.name;
        let [sqlite, postgres, mysql] = m.scripts.each_ref().map(|p| match p {
            Some(p) => {
                let p = p.to_string_lossy().into_owned();
                quote! { ::core::include_str!(#p) }
            }
            None => quote! { "" },
        });
        quote! {
            ::platform_core::db::Migration {
                version: #version,
                name: #name,
                sqlite: #sqlite,
                postgres: #postgres,
                mysql: #mysql,
            }
        }
    });
    let backends = match input.dialects {
        None => Vec::new(),
        Some(chosen) => BACKENDS
            .iter()
            .zip(chosen)
            .filter(|(_, on)| *on)
            .map(|(b, _)| {
                let b = Ident::new(b, proc_macro2::Span::call_site());
                quote! { ::platform_core::db::Backend::#b }
            })
            .collect(),
    };
    Ok(quote! {
        ::platform_core::db::MigrationSet {
            name: ::core::env!("CARGO_PKG_NAME"),
            migrations: &[#(#migrations),*],
            backends: &[#(#backends),*],
        }
    })
}

/// The one error message for every problem found under `shown`.
fn explain(shown: &str, problems: &[String], wanted: [bool; 3]) -> String {
    let [one] = problems else {
        let mut out = format!(
            "the migrations in `{shown}` have {} problems:",
            problems.len()
        );
        for p in problems {
            out.push_str("\n  - ");
            out.push_str(p);
        }
        return out + &hint(shown, problems, wanted);
    };
    one.clone() + &hint(shown, problems, wanted)
}

/// How to target fewer databases, when a script is missing.
fn hint(shown: &str, problems: &[String], wanted: [bool; 3]) -> String {
    if !problems.iter().any(|p| p.contains(" has no `")) {
        return String::new();
    }
    let have: Vec<&str> = DIALECTS
        .iter()
        .zip(wanted)
        .filter(|(_, on)| *on)
        .map(|(d, _)| *d)
        .collect();
    format!(
        "\n  = help: each migration needs a script per dialect the application targets ({}); an application for SQLite only says so: `embed_migrations!(\"{}\", dialects = [sqlite])`",
        have.iter()
            .map(|d| format!("{d}.sql"))
            .collect::<Vec<_>>()
            .join(", "),
        shown
    )
}

/// Reads the migrations under `root` (`shown` is the directory as written,
/// for messages), sorted by version; or every problem found.
fn read(root: &Path, shown: &str, wanted: [bool; 3]) -> Result<Vec<Found>, Vec<String>> {
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
        let scripts: [Option<PathBuf>; 3] =
            std::array::from_fn(|i| wanted[i].then(|| path.join(FILES[i])));
        let mut complete = true;
        for (file, script) in FILES
            .iter()
            .zip(&scripts)
            .filter_map(|(f, s)| Some((f, s.as_ref()?)))
        {
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
        let found = read(&root, "migrations", [true; 3]).unwrap();
        let versions: Vec<(i64, &str)> =
            found.iter().map(|f| (f.version, f.name.as_str())).collect();
        assert_eq!(versions, [(2, "create invoices"), (10, "add notes")]);
        assert!(
            found[0].scripts[1]
                .as_ref()
                .unwrap()
                .ends_with("0002_create_invoices/postgres.sql")
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn reports_every_problem() {
        let root = temp_dir("problems");
        migration(&root, "0001_a", &FILES);
        migration(&root, "01_b", &FILES);
        migration(&root, "0002_c", &["sqlite.sql"]);
        migration(&root, "three", &FILES);
        let problems = read(&root, "migrations", [true; 3]).unwrap_err();
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
    fn a_missing_script_is_one_error_with_a_hint() {
        let root = temp_dir("one-error");
        migration(&root, "0001_a", &["sqlite.sql"]);
        migration(&root, "0002_b", &["sqlite.sql", "mysql.sql"]);
        let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        let relative = pathdiff(&root, Path::new(&manifest));
        let input: Input = syn::parse_str(&format!("{relative:?}")).unwrap();
        let err = expand(&input).unwrap_err();
        assert_eq!(err.clone().into_iter().count(), 1, "one error, not several");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("the migrations in `{relative}` have 3 problems:")),
            "{message}"
        );
        assert!(
            message.contains("0001_a` has no `postgres.sql`"),
            "{message}"
        );
        assert!(
            message.contains("0002_b` has no `postgres.sql`"),
            "{message}"
        );
        assert!(
            message.contains(&format!(
                "embed_migrations!(\"{relative}\", dialects = [sqlite])"
            )),
            "{message}"
        );
        // Declared SQLite-only, the same directory is complete.
        let input: Input = syn::parse_str(&format!("{relative:?}, dialects = [sqlite]")).unwrap();
        let tokens = expand(&input).unwrap().to_string();
        assert!(tokens.contains("Backend :: Sqlite"), "{tokens}");
        std::fs::remove_dir_all(root).unwrap();
    }

    /// `path` relative to `base` (both absolute), with `..` as needed.
    fn pathdiff(path: &Path, base: &Path) -> String {
        let p: Vec<_> = path.components().collect();
        let b: Vec<_> = base.components().collect();
        let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let mut out: Vec<String> = vec!["..".into(); b.len() - common];
        out.extend(
            p[common..]
                .iter()
                .map(|c| c.as_os_str().to_string_lossy().into_owned()),
        );
        out.join("/")
    }

    #[test]
    fn the_dialects_option_is_checked() {
        for (input, expected) in [
            (r#""m", dialects = [oracle]"#, "unknown dialect `oracle`"),
            (
                r#""m", dialects = [sqlite, sqlite]"#,
                "dialect `sqlite` is named twice",
            ),
            (r#""m", dialects = []"#, "name at least one dialect"),
            (r#""m", flavours = [sqlite]"#, "unknown option `flavours`"),
        ] {
            let err = syn::parse_str::<Input>(input).err().unwrap().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
        let ok: Input = syn::parse_str(r#""m", dialects = [postgresql, mariadb,]"#).unwrap();
        assert_eq!(ok.dialects, Some([false, true, true]));
    }

    #[test]
    fn missing_directory() {
        let root = temp_dir("missing").join("nope");
        let problems = read(&root, "nope", [true; 3]).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("cannot read the migration directory `nope`"),
            "{problems:?}"
        );
    }
}
