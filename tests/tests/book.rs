//! The book's and the README's Rust snippets name only crates a reader has.
//!
//! The doctests (`src/lib.rs` includes the chapters) compile in this crate,
//! which depends on more than a reader's application does (sqlx, axum,
//! chrono, ...): a snippet that says `use chrono::Utc;` passes there and
//! fails in a reader's crate. This test reads every ```rust block of
//! `book/src/*.md` and `README.md` and names each crate root a snippet uses
//! (`use X::`, a path `X::...`, `#[X::main]`) that is not in the dependency
//! list of `getting-started.md` (plus `std`, `core`, `alloc`, `crate`,
//! `self`, `super`, and a crate whose dependency line the same chapter shows,
//! as `authentication.md` does for `platform-adapters`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What getting-started tells a reader to add, and nothing else.
const DOCUMENTED: [&str; 4] = ["platform-core", "platform-admin", "tokio", "anyhow"];

const ALWAYS: [&str; 6] = ["std", "core", "alloc", "crate", "self", "super"];

const PRIMITIVES: [&str; 17] = [
    "bool", "char", "str", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64",
    "u128", "usize", "f32", "f64",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every Markdown file whose snippets a reader copies.
fn documents() -> Vec<(String, String)> {
    let mut files = vec![("README.md".to_owned(), read("README.md"))];
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(root().join("book/src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    chapters.sort();
    for p in chapters {
        let rel = format!("book/src/{}", p.file_name().unwrap().to_string_lossy());
        files.push((rel.clone(), read(&rel)));
    }
    files
}

/// A fenced block: its info string, first line number and text (with the
/// list indentation removed and rustdoc's hidden `# ` lines kept as code).
#[derive(Debug)]
struct Block {
    info: String,
    line: usize,
    text: String,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(usize, Block)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(fence) = trimmed.strip_prefix("```") {
            match open.take() {
                None => {
                    open = Some((
                        indent,
                        Block {
                            info: fence.trim().to_owned(),
                            line: i + 1,
                            text: String::new(),
                        },
                    ));
                }
                Some((_, b)) => out.push(b),
            }
            continue;
        }
        if let Some((ind, b)) = open.as_mut() {
            let code = line.get(*ind..).unwrap_or(trimmed);
            let code = match code.strip_prefix('#') {
                Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
                    rest.strip_prefix(' ').unwrap_or(rest)
                }
                _ => code,
            };
            b.text.push_str(code);
            b.text.push('\n');
        }
    }
    out
}

/// Rustdoc compiles a fence with no language, or with only test attributes,
/// as Rust.
fn is_rust(info: &str) -> bool {
    let first = info.split([',', ' ']).next().unwrap_or("");
    matches!(
        first,
        "" | "rust" | "no_run" | "ignore" | "should_panic" | "compile_fail" | "edition2024"
    )
}

/// The dependency names of a `toml` block (`name = ...` lines).
fn dependency_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('[') || l.starts_with('#') {
                return None;
            }
            let (name, _) = l.split_once('=')?;
            let name = name.trim();
            (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .then(|| name.to_owned())
        })
        .collect()
}

/// `text` with string literals, character literals and comments blanked.
fn strip_literals(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        // Raw strings: r"...", r#"..."#, br#"..."#.
        if c[i] == 'r' && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_')) {
            let mut j = i + 1;
            while j < c.len() && c[j] == '#' {
                j += 1;
            }
            if j < c.len() && c[j] == '"' {
                let hashes = j - i - 1;
                let mut k = j + 1;
                loop {
                    if k >= c.len() {
                        break;
                    }
                    if c[k] == '"'
                        && c[k + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&h| h == '#')
                            .count()
                            == hashes
                    {
                        k += 1 + hashes;
                        break;
                    }
                    k += 1;
                }
                out.push(' ');
                i = k;
                continue;
            }
        }
        match c[i] {
            '"' => {
                let mut k = i + 1;
                while k < c.len() && c[k] != '"' {
                    k += if c[k] == '\\' { 2 } else { 1 };
                }
                out.push(' ');
                i = k + 1;
            }
            '\'' => {
                // A character literal ('a', '\n', '\u{1F600}'), else a lifetime.
                if c.get(i + 1) == Some(&'\\') {
                    let mut k = i + 3;
                    while k < c.len() && c[k] != '\'' {
                        k += 1;
                    }
                    out.push(' ');
                    i = k + 1;
                } else if c.get(i + 2) == Some(&'\'') {
                    out.push(' ');
                    i += 3;
                } else {
                    out.push(' ');
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                let mut k = i + 2;
                while k + 1 < c.len() && !(c[k] == '*' && c[k + 1] == '/') {
                    k += 1;
                }
                out.push(' ');
                i = k + 2;
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

fn tokens(code: &str) -> Vec<String> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_alphabetic() || c[i] == '_' {
            let s = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(c[s..i].iter().collect());
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push("::".to_owned());
            i += 2;
        } else if c[i].is_whitespace() {
            i += 1;
        } else if c[i].is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                i += 1;
            }
        } else {
            out.push(c[i].to_string());
            i += 1;
        }
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Parses one use tree from `t[*i..]`; records the names it binds.
fn use_tree(t: &[String], i: &mut usize, parent: Option<&str>, bound: &mut BTreeSet<String>) {
    let mut last: Option<String> = parent.map(str::to_owned);
    let mut first = true;
    loop {
        match t.get(*i).map(String::as_str) {
            Some("{") => {
                *i += 1;
                loop {
                    match t.get(*i).map(String::as_str) {
                        Some("}") => {
                            *i += 1;
                            break;
                        }
                        Some(",") => *i += 1,
                        None | Some(";") => return,
                        _ => use_tree(t, i, last.as_deref(), bound),
                    }
                }
                return;
            }
            Some("*") => {
                *i += 1;
                return;
            }
            Some("::") => *i += 1,
            Some(id) if is_ident(id) => {
                let id = id.to_owned();
                *i += 1;
                if t.get(*i).map(String::as_str) == Some("::") {
                    last = Some(id);
                    first = false;
                    continue;
                }
                if t.get(*i).map(String::as_str) == Some("as") {
                    if let Some(alias) = t.get(*i + 1) {
                        bound.insert(alias.clone());
                    }
                    *i += 2;
                } else if id == "self" {
                    if let Some(p) = &last {
                        bound.insert(p.clone());
                    }
                } else {
                    bound.insert(id);
                }
                let _ = first;
                return;
            }
            _ => return,
        }
    }
}

/// The crate roots a snippet names that a reader's crate would not have.
fn foreign_roots(code: &str, allowed: &BTreeSet<String>) -> BTreeSet<String> {
    let t = tokens(&strip_literals(code));
    let mut bound = BTreeSet::new();
    let mut roots = BTreeSet::new();
    for (i, w) in t.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| t[p].as_str());
        match w.as_str() {
            "use" if prev != Some("::") => {
                let mut j = i + 1;
                if t.get(j).map(String::as_str) == Some("::") {
                    j += 1;
                }
                if let Some(r) = t.get(j).filter(|r| is_ident(r)) {
                    roots.insert(r.clone());
                }
                let mut j = i + 1;
                use_tree(&t, &mut j, None, &mut bound);
            }
            "mod" | "crate" if prev == Some("extern") || w == "mod" => {
                if let Some(n) = t.get(i + 1).filter(|n| is_ident(n)) {
                    if w == "crate" {
                        roots.insert(n.clone());
                    }
                    bound.insert(n.clone());
                }
            }
            _ => {}
        }
    }
    for (i, w) in t.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| t[p].as_str());
        let starts_lower = w
            .chars()
            .next()
            .is_some_and(|c| c.is_lowercase() || c == '_');
        if starts_lower
            && t.get(i + 1).map(String::as_str) == Some("::")
            && t.get(i + 2).map(String::as_str) != Some("<")
            && !matches!(prev, Some("::" | "." | "use"))
            && !(prev == Some("{") && i >= 2 && t[i - 2] == "::")
            && !bound.contains(w)
            && !PRIMITIVES.contains(&w.as_str())
            && !matches!(w.as_str(), "use" | "in" | "as" | "dyn" | "impl")
        {
            roots.insert(w.clone());
        }
    }
    roots.retain(|r| !allowed.contains(r) && !ALWAYS.contains(&r.as_str()));
    roots
}

fn crate_names(deps: &[String]) -> BTreeSet<String> {
    deps.iter().map(|d| d.replace('-', "_")).collect()
}

fn getting_started_dependencies() -> Vec<String> {
    let md = read("book/src/getting-started.md");
    let toml: Vec<Block> = blocks(&md)
        .into_iter()
        .filter(|b| b.info == "toml" && b.text.contains("[dependencies]"))
        .collect();
    assert_eq!(toml.len(), 1, "getting-started.md has one dependency block");
    dependency_lines(&toml[0].text)
}

#[test]
fn getting_started_lists_exactly_the_documented_dependencies() {
    assert_eq!(getting_started_dependencies(), DOCUMENTED);
}

#[test]
fn readme_example_names_the_same_dependencies_next_to_it() {
    let readme = read("README.md");
    let all = blocks(&readme);
    let first_rust = all
        .iter()
        .position(|b| b.info.starts_with("rust") && b.text.contains("fn main"))
        .expect("the README's example");
    let toml = all[..first_rust]
        .iter()
        .rev()
        .find(|b| b.info == "toml")
        .expect("a dependency block before the README's example");
    assert!(
        all[first_rust].line - toml.line < 20,
        "the README's dependency block (line {}) is next to its example (line {})",
        toml.line,
        all[first_rust].line
    );
    assert_eq!(dependency_lines(&toml.text), getting_started_dependencies());
}

#[test]
fn snippets_name_only_crates_the_reader_has() {
    let base = crate_names(&getting_started_dependencies());
    let mut problems = Vec::new();
    let mut checked = 0;
    for (file, md) in documents() {
        let all = blocks(&md);
        let mut allowed = base.clone();
        for b in all.iter().filter(|b| b.info == "toml") {
            allowed.extend(crate_names(&dependency_lines(&b.text)));
        }
        for b in all.iter().filter(|b| is_rust(&b.info)) {
            checked += 1;
            for r in foreign_roots(&b.text, &allowed) {
                problems.push(format!(
                    "{file}:{}: names `{r}`, which is not in getting-started's dependencies \
                     (platform_core re-exports chrono, serde, serde_json and uuid, \
                     platform_admin re-exports axum)",
                    b.line
                ));
            }
        }
    }
    assert!(checked >= 20, "only {checked} Rust snippets found");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_check_finds_foreign_crates() {
    let allowed = crate_names(&DOCUMENTED.map(str::to_owned));
    let found = |code: &str| {
        foreign_roots(code, &allowed)
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(found("use chrono::Utc;"), ["chrono"]);
    assert_eq!(found("use ::serde::Serialize;"), ["serde"]);
    assert_eq!(found("let v = serde_json::json!({});"), ["serde_json"]);
    assert_eq!(found("#[sqlx::test]\nasync fn t() {}"), ["sqlx"]);
    assert_eq!(found("extern crate uuid;"), ["uuid"]);
    assert_eq!(found("fn f() -> Option<axum::Router> { None }"), ["axum"]);
    assert_eq!(found("# use tower::Layer;"), ["tower"]);
    // Importing an item from a re-export does not bind the crate's name.
    assert_eq!(
        found("use platform_admin::axum::Router;\nlet r: Router = axum::Router::new();"),
        ["axum"]
    );
    assert_eq!(
        found("use {chrono::Utc, platform_core::Platform};"),
        ["chrono"]
    );
}

#[test]
fn the_check_accepts_what_a_reader_has() {
    let allowed = crate_names(&DOCUMENTED.map(str::to_owned));
    let none = |code: &str| {
        let f = foreign_roots(code, &allowed);
        assert!(f.is_empty(), "{code:?}: {f:?}");
    };
    none(
        "use platform_core::prelude::*;\n#[tokio::main]\nasync fn main() -> anyhow::Result<()> { Ok(()) }",
    );
    none("use platform_admin::axum::{self, Router};\naxum::serve(l, app);");
    none("use platform_core::chrono;\nlet d = chrono::Duration::days(1);");
    none("use platform_core::db::detached;\nuse platform_core::db;\ndb::detached(f);");
    none("let s = \"smtp://u:p@host::1\"; // sqlx::query is not used\nlet r = r#\"a::b\"#;");
    none("let v = xs.iter().collect::<Vec<_>>(); let m = i64::MAX; let c = '\\'';");
    none("mod local { pub fn f() {} }\nlocal::f();");
    none("let n = std::env::var(\"X\"); let x = <T as platform_core::Resource>::META;");
    none("use platform_core::serde::{self as serde_re};\nserde_re::de::IgnoredAny;");
}

#[test]
fn authentication_chapter_may_use_the_adapters_it_documents() {
    let md = read("book/src/authentication.md");
    let all = blocks(&md);
    let mut allowed = crate_names(&DOCUMENTED.map(str::to_owned));
    let uses = |allowed: &BTreeSet<String>| {
        all.iter()
            .filter(|b| is_rust(&b.info))
            .flat_map(|b| foreign_roots(&b.text, allowed))
            .collect::<BTreeSet<_>>()
    };
    assert!(uses(&allowed).contains("platform_adapters"));
    for b in all.iter().filter(|b| b.info == "toml") {
        allowed.extend(crate_names(&dependency_lines(&b.text)));
    }
    assert!(uses(&allowed).is_empty());
}

/// `(role, line)` for each `--role NAME` in the document's shell blocks, and
/// the roles its `role:create NAME` lines make before that line.
fn roles_used_before_made(md: &str) -> Vec<(String, usize)> {
    let mut made: BTreeSet<String> = BTreeSet::from(["super_admin".to_owned()]);
    let mut missing = Vec::new();
    for b in blocks(md).iter().filter(|b| b.info == "sh") {
        for (n, line) in b.text.lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for (i, w) in words.iter().enumerate() {
                let next = words
                    .get(i + 1)
                    .map(|r| r.trim_matches(['\'', '"']).to_owned());
                match (*w, next) {
                    ("role:create", Some(r)) => {
                        made.insert(r);
                    }
                    ("--role", Some(r)) if !made.contains(&r) => missing.push((r, b.line + 1 + n)),
                    _ => {}
                }
            }
        }
    }
    missing
}

#[test]
fn shell_examples_make_a_role_before_giving_it() {
    let mut problems = Vec::new();
    for (file, md) in documents() {
        for (role, line) in roles_used_before_made(&md) {
            problems.push(format!(
                "{file}:{line}: `--role {role}` with no `role:create {role}` before it"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    // The check itself: a role given before it is made is found.
    let bad = "```sh\ndemo user:create --email a@example.com --role billing\n\
               demo role:create billing --permission view_invoice\n```\n";
    assert_eq!(roles_used_before_made(bad), [("billing".to_owned(), 2)]);
    let good = "```sh\ndemo role:create billing\ndemo user:create --role billing --role super_admin\n```\n";
    assert!(roles_used_before_made(good).is_empty());
}
