//! Parsing of `#[resource(...)]` on the struct and on its fields.
//!
//! Every key is a `const` [`Symbol`]. A mistake in one key is recorded in the
//! [`Ctxt`] and parsing goes on with the next key, so that all mistakes are
//! reported at once.

use std::fmt;

use proc_macro2::TokenTree;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, Lit, LitInt, LitStr, Path, Token, Type, UnOp};

pub(crate) use super::attr_exchange::ImportAttr;
use crate::ctxt::Ctxt;

/// An attribute key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Symbol(&'static str);

impl Symbol {
    /// A key named `name`.
    pub(crate) const fn new(name: &'static str) -> Self {
        Self(name)
    }

    /// The key as written.
    pub(crate) fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<Symbol> for Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.get_ident().is_some_and(|ident| ident == word.0)
    }
}

impl PartialEq<Symbol> for &Path {
    fn eq(&self, word: &Symbol) -> bool {
        (*self).eq(word)
    }
}

/// The attribute namespace.
pub(crate) const RESOURCE: Symbol = Symbol("resource");

// Container keys.
pub(crate) const TABLE: Symbol = Symbol("table");
pub(crate) const NAME: Symbol = Symbol("name");
pub(crate) const PLURAL: Symbol = Symbol("plural");
pub(crate) const LABEL: Symbol = Symbol("label");
pub(crate) const PLURAL_LABEL: Symbol = Symbol("plural_label");
pub(crate) const SEARCH: Symbol = Symbol("search");
pub(crate) const CACHE: Symbol = Symbol("cache");
pub(crate) const SOFT_DELETE: Symbol = Symbol("soft_delete");
pub(crate) const AUDIT: Symbol = Symbol("audit");
pub(crate) const API: Symbol = Symbol("api");
pub(crate) const ADMIN: Symbol = Symbol("admin");
pub(crate) const NAVIGATION: Symbol = Symbol("navigation");
pub(crate) const CRATE: Symbol = Symbol("crate");
pub(crate) const POLICY: Symbol = Symbol("policy");
pub(crate) const EXPORT: Symbol = Symbol("export");
pub(crate) const IMPORT: Symbol = Symbol("import");

// Keys inside `import(...)`.
pub(crate) const KEY: Symbol = Symbol("key");

// Keys inside `navigation(...)`.
pub(crate) const GROUP: Symbol = Symbol("group");
pub(crate) const ICON: Symbol = Symbol("icon");
pub(crate) const SORT: Symbol = Symbol("sort");

// Field keys.
pub(crate) const PRIMARY_KEY: Symbol = Symbol("primary_key");
pub(crate) const SORTABLE: Symbol = Symbol("sortable");
pub(crate) const FILTER: Symbol = Symbol("filter");
pub(crate) const UNIQUE: Symbol = Symbol("unique");
pub(crate) const ENCRYPTED: Symbol = Symbol("encrypted");
pub(crate) const PII: Symbol = Symbol("pii");
pub(crate) const EMAIL: Symbol = Symbol("email");
pub(crate) const ALLOW_EMPTY: Symbol = Symbol("allow_empty");
pub(crate) const TEXT: Symbol = Symbol("text");
pub(crate) const MONEY: Symbol = Symbol("money");
pub(crate) const HIDDEN: Symbol = Symbol("hidden");
pub(crate) const READ_ONLY: Symbol = Symbol("read_only");
pub(crate) const TITLE: Symbol = Symbol("title");
pub(crate) const SKIP: Symbol = Symbol("skip");
pub(crate) const COLUMN: Symbol = Symbol("column");
pub(crate) const MAX_LENGTH: Symbol = Symbol("max_length");
pub(crate) const CHOICES: Symbol = Symbol("choices");
pub(crate) const BELONGS_TO: Symbol = Symbol("belongs_to");

const CONTAINER_KEYS: &[Symbol] = &[
    TABLE,
    NAME,
    PLURAL,
    LABEL,
    PLURAL_LABEL,
    SEARCH,
    CACHE,
    SOFT_DELETE,
    AUDIT,
    API,
    ADMIN,
    NAVIGATION,
    CRATE,
    POLICY,
    EXPORT,
    IMPORT,
];

const FIELD_KEYS: &[Symbol] = &[
    PRIMARY_KEY,
    SORTABLE,
    FILTER,
    UNIQUE,
    ENCRYPTED,
    PII,
    EMAIL,
    ALLOW_EMPTY,
    TEXT,
    MONEY,
    HIDDEN,
    READ_ONLY,
    TITLE,
    SKIP,
    AUDIT,
    LABEL,
    COLUMN,
    MAX_LENGTH,
    CHOICES,
    BELONGS_TO,
    EXPORT,
    IMPORT,
];

/// A key as named in messages: `sort`, or `navigation(sort)` for a nested
/// key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyName {
    outer: Option<Symbol>,
    key: Symbol,
}

impl From<Symbol> for KeyName {
    fn from(key: Symbol) -> Self {
        Self { outer: None, key }
    }
}

impl KeyName {
    pub(crate) fn nested(outer: Symbol, key: Symbol) -> Self {
        Self {
            outer: Some(outer),
            key,
        }
    }

    /// `key = value`, or `outer(key = value)`.
    fn example(self, value: &str) -> String {
        match self.outer {
            Some(outer) => format!("{outer}({} = {value})", self.key),
            None => format!("{} = {value}", self.key),
        }
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outer {
            Some(outer) => write!(f, "{outer}({})", self.key),
            None => write!(f, "{}", self.key),
        }
    }
}

/// One attribute value, with the key's tokens for error spans.
#[derive(Debug)]
pub(crate) struct Attr<T> {
    key: KeyName,
    set: Option<(Path, T)>,
}

impl<T> Attr<T> {
    pub(crate) fn none(key: impl Into<KeyName>) -> Self {
        Self {
            key: key.into(),
            set: None,
        }
    }

    /// Records the value, or a "duplicate" error at the second key.
    pub(crate) fn set(&mut self, cx: &Ctxt, path: &Path, value: T) {
        if self.set.is_some() {
            cx.error_spanned_by(path, format!("duplicate resource attribute `{}`", self.key));
        } else {
            self.set = Some((path.clone(), value));
        }
    }

    /// The value, if the key was given.
    pub(crate) fn get(&self) -> Option<&T> {
        self.set.as_ref().map(|(_, v)| v)
    }

    /// The key as written, if it was given (for error spans).
    pub(crate) fn key(&self) -> Option<&Path> {
        self.set.as_ref().map(|(p, _)| p)
    }

    /// Whether the key was given.
    pub(crate) fn is_set(&self) -> bool {
        self.set.is_some()
    }
}

/// `navigation(group = "...", icon = "...", sort = N)`.
#[derive(Debug)]
pub(crate) struct NavigationAttrs {
    pub(crate) group: Attr<LitStr>,
    pub(crate) icon: Attr<LitStr>,
    pub(crate) sort: Attr<i32>,
}

/// `#[resource(...)]` on the struct.
#[derive(Debug)]
pub(crate) struct ContainerAttrs {
    pub(crate) table: Attr<LitStr>,
    pub(crate) name: Attr<LitStr>,
    pub(crate) plural: Attr<LitStr>,
    pub(crate) label: Attr<LitStr>,
    pub(crate) plural_label: Attr<LitStr>,
    pub(crate) search: Attr<Vec<Ident>>,
    pub(crate) cache: Attr<()>,
    pub(crate) soft_delete: Attr<()>,
    pub(crate) audit: Attr<bool>,
    pub(crate) api: Attr<bool>,
    pub(crate) admin: Attr<bool>,
    pub(crate) navigation: Attr<NavigationAttrs>,
    pub(crate) krate: Attr<Path>,
    pub(crate) policy: Attr<Path>,
    pub(crate) export: Attr<bool>,
    pub(crate) import: Attr<ImportAttr>,
}

/// `#[resource(...)]` on a field.
#[derive(Debug)]
pub(crate) struct FieldAttrs {
    pub(crate) primary_key: Attr<()>,
    pub(crate) sortable: Attr<()>,
    pub(crate) filter: Attr<()>,
    pub(crate) unique: Attr<()>,
    pub(crate) encrypted: Attr<()>,
    pub(crate) pii: Attr<()>,
    pub(crate) email: Attr<()>,
    pub(crate) allow_empty: Attr<()>,
    pub(crate) text: Attr<()>,
    pub(crate) money: Attr<()>,
    pub(crate) hidden: Attr<()>,
    pub(crate) read_only: Attr<()>,
    pub(crate) title: Attr<()>,
    pub(crate) skip: Attr<()>,
    pub(crate) audit: Attr<bool>,
    pub(crate) label: Attr<LitStr>,
    pub(crate) column: Attr<LitStr>,
    pub(crate) max_length: Attr<LitInt>,
    pub(crate) choices: Attr<Vec<LitStr>>,
    pub(crate) belongs_to: Attr<Type>,
    pub(crate) export: Attr<bool>,
    pub(crate) import: Attr<bool>,
}

impl ContainerAttrs {
    /// Parses every `#[resource(...)]` of the struct.
    pub(crate) fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut this = Self {
            table: Attr::none(TABLE),
            name: Attr::none(NAME),
            plural: Attr::none(PLURAL),
            label: Attr::none(LABEL),
            plural_label: Attr::none(PLURAL_LABEL),
            search: Attr::none(SEARCH),
            cache: Attr::none(CACHE),
            soft_delete: Attr::none(SOFT_DELETE),
            audit: Attr::none(AUDIT),
            api: Attr::none(API),
            admin: Attr::none(ADMIN),
            navigation: Attr::none(NAVIGATION),
            krate: Attr::none(CRATE),
            policy: Attr::none(POLICY),
            export: Attr::none(EXPORT),
            import: Attr::none(IMPORT),
        };
        for attr in attrs.iter().filter(|a| a.path() == RESOURCE) {
            if let Err(err) = attr.parse_nested_meta(|meta| this.parse_one(cx, &meta)) {
                cx.syn_error(err);
            }
        }
        this
    }

    fn parse_one(&mut self, cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let path = &meta.path;
        for (key, slot) in [
            (TABLE, &mut self.table),
            (NAME, &mut self.name),
            (PLURAL, &mut self.plural),
            (LABEL, &mut self.label),
            (PLURAL_LABEL, &mut self.plural_label),
        ] {
            if path == key {
                if let Some(s) = lit_str(cx, key, meta)? {
                    slot.set(cx, path, s);
                }
                return Ok(());
            }
        }
        for (key, slot) in [
            (CACHE, &mut self.cache),
            (SOFT_DELETE, &mut self.soft_delete),
        ] {
            if path == key {
                flag(cx, key, meta)?;
                slot.set(cx, path, ());
                return Ok(());
            }
        }
        for (key, slot) in [
            (AUDIT, &mut self.audit),
            (API, &mut self.api),
            (ADMIN, &mut self.admin),
            (EXPORT, &mut self.export),
        ] {
            if path == key {
                if let Some(b) = lit_bool(cx, key, meta)? {
                    slot.set(cx, path, b);
                }
                return Ok(());
            }
        }
        if path == SEARCH {
            if let Some(fields) = search(cx, meta)? {
                self.search.set(cx, path, fields);
            }
        } else if path == NAVIGATION {
            if let Some(nav) = navigation(cx, meta)? {
                self.navigation.set(cx, path, nav);
            }
        } else if path == IMPORT {
            if let Some(import) = super::attr_exchange::import(cx, meta)? {
                self.import.set(cx, path, import);
            }
        } else if path == POLICY {
            if let Some(p) = policy(cx, meta)? {
                self.policy.set(cx, path, p);
            }
        } else if path == CRATE {
            if let Some(s) = lit_str(cx, CRATE, meta)? {
                match s.parse::<Path>() {
                    Ok(p) => self.krate.set(cx, path, p),
                    Err(_) => {
                        cx.error_spanned_by(&s, format!("`crate = {:?}` is not a path", s.value()));
                    }
                }
            }
        } else {
            unknown(
                cx,
                meta,
                CONTAINER_KEYS,
                FIELD_KEYS,
                "a field, not on the struct",
            )?;
        }
        Ok(())
    }
}

impl FieldAttrs {
    /// Parses every `#[resource(...)]` of one field.
    pub(crate) fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut this = Self {
            primary_key: Attr::none(PRIMARY_KEY),
            sortable: Attr::none(SORTABLE),
            filter: Attr::none(FILTER),
            unique: Attr::none(UNIQUE),
            encrypted: Attr::none(ENCRYPTED),
            pii: Attr::none(PII),
            email: Attr::none(EMAIL),
            allow_empty: Attr::none(ALLOW_EMPTY),
            text: Attr::none(TEXT),
            money: Attr::none(MONEY),
            hidden: Attr::none(HIDDEN),
            read_only: Attr::none(READ_ONLY),
            title: Attr::none(TITLE),
            skip: Attr::none(SKIP),
            audit: Attr::none(AUDIT),
            label: Attr::none(LABEL),
            column: Attr::none(COLUMN),
            max_length: Attr::none(MAX_LENGTH),
            choices: Attr::none(CHOICES),
            belongs_to: Attr::none(BELONGS_TO),
            export: Attr::none(EXPORT),
            import: Attr::none(IMPORT),
        };
        for attr in attrs.iter().filter(|a| a.path() == RESOURCE) {
            if let Err(err) = attr.parse_nested_meta(|meta| this.parse_one(cx, &meta)) {
                cx.syn_error(err);
            }
        }
        this
    }

    /// The flags, with their keys, in a fixed order.
    pub(crate) fn flags(&self) -> [(Symbol, &Attr<()>); 14] {
        [
            (PRIMARY_KEY, &self.primary_key),
            (SORTABLE, &self.sortable),
            (FILTER, &self.filter),
            (UNIQUE, &self.unique),
            (ENCRYPTED, &self.encrypted),
            (PII, &self.pii),
            (EMAIL, &self.email),
            (ALLOW_EMPTY, &self.allow_empty),
            (TEXT, &self.text),
            (MONEY, &self.money),
            (HIDDEN, &self.hidden),
            (READ_ONLY, &self.read_only),
            (TITLE, &self.title),
            (SKIP, &self.skip),
        ]
    }

    /// The key of every attribute given, except `skip`.
    pub(crate) fn keys_except_skip(&self) -> Vec<(Symbol, &Path)> {
        let mut keys: Vec<(Symbol, &Path)> = self
            .flags()
            .into_iter()
            .filter(|(key, _)| *key != SKIP)
            .filter_map(|(key, a)| a.key().map(|p| (key, p)))
            .collect();
        let others = [
            (AUDIT, self.audit.key()),
            (LABEL, self.label.key()),
            (COLUMN, self.column.key()),
            (MAX_LENGTH, self.max_length.key()),
            (CHOICES, self.choices.key()),
            (BELONGS_TO, self.belongs_to.key()),
            (EXPORT, self.export.key()),
            (IMPORT, self.import.key()),
        ];
        keys.extend(others.into_iter().filter_map(|(k, p)| p.map(|p| (k, p))));
        keys
    }

    fn parse_one(&mut self, cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let path = &meta.path;
        for (key, slot) in [
            (PRIMARY_KEY, &mut self.primary_key),
            (SORTABLE, &mut self.sortable),
            (FILTER, &mut self.filter),
            (UNIQUE, &mut self.unique),
            (ENCRYPTED, &mut self.encrypted),
            (PII, &mut self.pii),
            (EMAIL, &mut self.email),
            (ALLOW_EMPTY, &mut self.allow_empty),
            (TEXT, &mut self.text),
            (MONEY, &mut self.money),
            (HIDDEN, &mut self.hidden),
            (READ_ONLY, &mut self.read_only),
            (TITLE, &mut self.title),
            (SKIP, &mut self.skip),
        ] {
            if path == key {
                flag(cx, key, meta)?;
                slot.set(cx, path, ());
                return Ok(());
            }
        }
        for (key, slot) in [(LABEL, &mut self.label), (COLUMN, &mut self.column)] {
            if path == key {
                if let Some(s) = lit_str(cx, key, meta)? {
                    slot.set(cx, path, s);
                }
                return Ok(());
            }
        }
        for (key, slot) in [
            (AUDIT, &mut self.audit),
            (EXPORT, &mut self.export),
            (IMPORT, &mut self.import),
        ] {
            if path == key {
                if let Some(b) = lit_bool(cx, key, meta)? {
                    slot.set(cx, path, b);
                }
                return Ok(());
            }
        }
        if path == MAX_LENGTH {
            if let Some(n) = lit_int(cx, MAX_LENGTH, meta)? {
                self.max_length.set(cx, path, n);
            }
        } else if path == CHOICES {
            if let Some(choices) = choices(cx, meta)? {
                self.choices.set(cx, path, choices);
            }
        } else if path == BELONGS_TO {
            if let Some(ty) = belongs_to(cx, meta)? {
                self.belongs_to.set(cx, path, ty);
            }
        } else {
            unknown(
                cx,
                meta,
                FIELD_KEYS,
                CONTAINER_KEYS,
                "the struct, not on a field",
            )?;
        }
        Ok(())
    }
}

/// The path as written, for messages (`a::b`).
pub(crate) fn path_to_string(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let joined = segments.join("::");
    if path.leading_colon.is_some() {
        format!("::{joined}")
    } else {
        joined
    }
}

/// Reports an unknown key (with a hint when it belongs elsewhere) and skips
/// its value.
fn unknown(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    here: &[Symbol],
    elsewhere: &[Symbol],
    where_it_belongs: &str,
) -> syn::Result<()> {
    let path = &meta.path;
    if !here.iter().any(|k| path == *k) && elsewhere.iter().any(|k| path == *k) {
        cx.error_spanned_by(
            path,
            format!(
                "resource attribute `{}` belongs on {where_it_belongs}",
                path_to_string(path)
            ),
        );
    } else {
        let written = path_to_string(path);
        // The nearest key of this level, unless one of the other level is
        // nearer.
        let hint = match (nearest(&written, here), nearest(&written, elsewhere)) {
            (Some((d, _)), Some((e, k))) if e < d => {
                format!("; did you mean `{k}` (on {where_it_belongs})?")
            }
            (Some((_, k)), _) => format!("; did you mean `{k}`?"),
            (None, Some((_, k))) => format!("; did you mean `{k}` (on {where_it_belongs})?"),
            (None, None) => String::new(),
        };
        cx.error_spanned_by(
            path,
            format!("unknown resource attribute `{written}`{hint}"),
        );
    }
    skip_value(meta.input)
}

/// The key of `keys` nearest to `written`, with its distance, when it is a likely typo: at
/// most two edits away (one for keys of up to four letters), ignoring `_`.
pub(crate) fn nearest(written: &str, keys: &[Symbol]) -> Option<(usize, Symbol)> {
    let plain = |s: &str| s.replace('_', "").to_ascii_lowercase();
    let w = plain(written);
    keys.iter()
        .map(|k| (edit_distance(&w, &plain(k.as_str())), *k))
        .filter(|(d, k)| *d <= if k.as_str().len() <= 4 { 1 } else { 2 })
        // On a tie, a key with the same first letter.
        .min_by_key(|(d, k)| (*d, k.as_str().chars().next() != w.chars().next()))
}

/// The edit distance: insertions, deletions, substitutions and swaps of
/// two neighbouring letters (`tabel` is one edit from `table`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// Skips the rest of one nested meta: everything up to the next top-level
/// comma.
pub(crate) fn skip_value(input: ParseStream<'_>) -> syn::Result<()> {
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

/// A bare flag. Given a value, the error is recorded and the flag still
/// counts as set, so that later checks do not report a second error (such as
/// a missing primary key after `primary_key = true`).
fn flag(cx: &Ctxt, key: Symbol, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if !(meta.input.is_empty() || meta.input.peek(Token![,])) {
        cx.error_spanned_by(
            &meta.path,
            format!("resource attribute `{key}` is a flag and takes no value: write `{key}`"),
        );
        skip_value(meta.input)?;
    }
    Ok(())
}

/// The expression after `key =`; `None` (with an error recorded) when there
/// is no `=`.
pub(crate) fn value_expr(
    cx: &Ctxt,
    key: KeyName,
    example: &str,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<Option<Expr>> {
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(
            &meta.path,
            format!(
                "resource attribute `{key}` expects a value: `{}`",
                key.example(example)
            ),
        );
        skip_value(meta.input)?;
        return Ok(None);
    }
    let mut expr: Expr = meta.value()?.parse()?;
    // Tokens coming through `macro_rules!` may be wrapped in invisible groups.
    while let Expr::Group(group) = expr {
        expr = *group.expr;
    }
    Ok(Some(expr))
}

fn lit_str(
    cx: &Ctxt,
    key: impl Into<KeyName>,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<Option<LitStr>> {
    let key = key.into();
    let Some(expr) = value_expr(cx, key, "\"...\"", meta)? else {
        return Ok(None);
    };
    if let Expr::Lit(syn::ExprLit {
        lit: Lit::Str(s), ..
    }) = expr
    {
        return Ok(Some(s));
    }
    cx.error_spanned_by(
        &expr,
        format!(
            "resource attribute `{key}` expects a string literal: `{}`",
            key.example("\"...\"")
        ),
    );
    Ok(None)
}

pub(crate) fn lit_bool(
    cx: &Ctxt,
    key: Symbol,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<Option<bool>> {
    let Some(expr) = value_expr(cx, key.into(), "false", meta)? else {
        return Ok(None);
    };
    if let Expr::Lit(syn::ExprLit {
        lit: Lit::Bool(b), ..
    }) = expr
    {
        return Ok(Some(b.value));
    }
    cx.error_spanned_by(
        &expr,
        format!("resource attribute `{key}` expects `true` or `false`: `{key} = false`"),
    );
    Ok(None)
}

fn lit_int(cx: &Ctxt, key: Symbol, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<LitInt>> {
    let Some(expr) = value_expr(cx, key.into(), "100", meta)? else {
        return Ok(None);
    };
    if let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(n), ..
    }) = &expr
    {
        match n.base10_parse::<u32>() {
            Ok(0) => {
                cx.error_spanned_by(n, format!("resource attribute `{key}` must be at least 1"));
            }
            Ok(_) => return Ok(Some(n.clone())),
            Err(_) => cx.error_spanned_by(
                n,
                format!(
                    "resource attribute `{key}` must be a whole number from 1 to {}",
                    u32::MAX
                ),
            ),
        }
        return Ok(None);
    }
    cx.error_spanned_by(
        &expr,
        format!("resource attribute `{key}` expects an integer literal: `{key} = 100`"),
    );
    Ok(None)
}

/// `sort = N`, where N may be negative.
fn lit_i32(cx: &Ctxt, key: KeyName, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<i32>> {
    let Some(expr) = value_expr(cx, key, "1", meta)? else {
        return Ok(None);
    };
    let (negative, lit) = match &expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(n), ..
        }) => (false, Some(n)),
        Expr::Unary(syn::ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) => match &**inner {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Int(n), ..
            }) => (true, Some(n)),
            _ => (true, None),
        },
        _ => (false, None),
    };
    let Some(lit) = lit else {
        cx.error_spanned_by(
            &expr,
            format!(
                "resource attribute `{key}` expects an integer literal: `{}`",
                key.example("1")
            ),
        );
        return Ok(None);
    };
    let sign = if negative { "-" } else { "" };
    if let Ok(n) = format!("{sign}{}", lit.base10_digits()).parse::<i32>() {
        Ok(Some(n))
    } else {
        cx.error_spanned_by(
            &expr,
            format!("resource attribute `{key}` does not fit an `i32`"),
        );
        Ok(None)
    }
}

/// Whether the key is followed by a parenthesised list; records an error
/// (and skips the value) when it is not.
pub(crate) fn expect_list(
    cx: &Ctxt,
    key: Symbol,
    example: &str,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<bool> {
    if meta.input.peek(syn::token::Paren) {
        return Ok(true);
    }
    cx.error_spanned_by(
        &meta.path,
        format!("resource attribute `{key}` expects a list: `{key}({example})`"),
    );
    skip_value(meta.input)?;
    Ok(false)
}

/// The comma-separated expressions inside `key(...)`.
fn list(meta: &ParseNestedMeta<'_>) -> syn::Result<Punctuated<Expr, Token![,]>> {
    let content;
    syn::parenthesized!(content in meta.input);
    Punctuated::parse_terminated(&content)
}

/// `search(a, b)`: field names.
fn search(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Vec<Ident>>> {
    if !expect_list(cx, SEARCH, "number, notes", meta)? {
        return Ok(None);
    }
    let mut fields = Vec::new();
    for item in list(meta)? {
        match &item {
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                if let Some(ident) = p.path.get_ident() {
                    fields.push(ident.clone());
                }
            }
            _ => cx.error_spanned_by(
                &item,
                "`search` expects field names: `search(number, notes)`",
            ),
        }
    }
    Ok(Some(fields))
}

/// `choices("a", "b")`: distinct string literals, at least one.
fn choices(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Vec<LitStr>>> {
    if !expect_list(cx, CHOICES, "\"draft\", \"sent\"", meta)? {
        return Ok(None);
    }
    let items = list(meta)?;
    if items.is_empty() {
        cx.error_spanned_by(
            &meta.path,
            "resource attribute `choices` needs at least one choice: `choices(\"draft\", \"sent\")`",
        );
        return Ok(None);
    }
    let mut choices: Vec<LitStr> = Vec::new();
    let mut ok = true;
    for item in items {
        match item {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            }) => {
                if choices.iter().any(|c| c.value() == s.value()) {
                    cx.error_spanned_by(&s, format!("duplicate choice {:?}", s.value()));
                    ok = false;
                } else {
                    choices.push(s);
                }
            }
            other => {
                cx.error_spanned_by(
                    &other,
                    "`choices` expects string literals: `choices(\"draft\", \"sent\")`",
                );
                ok = false;
            }
        }
    }
    Ok(ok.then_some(choices))
}

/// `belongs_to = Type`.
fn belongs_to(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Type>> {
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(
            &meta.path,
            "resource attribute `belongs_to` expects a resource type: `belongs_to = Customer`",
        );
        skip_value(meta.input)?;
        return Ok(None);
    }
    let input = meta.value()?;
    if input.fork().parse::<Type>().is_err() {
        cx.syn_error(syn::Error::new(
            input.span(),
            "resource attribute `belongs_to` expects a resource type: `belongs_to = Customer`",
        ));
        skip_value(input)?;
        return Ok(None);
    }
    input.parse().map(Some)
}

/// `policy = path::to::function`.
fn policy(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Path>> {
    const HINT: &str = "resource attribute `policy` expects a function: `policy = invoice_policy`";
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(&meta.path, HINT);
        skip_value(meta.input)?;
        return Ok(None);
    }
    let input = meta.value()?;
    if input.fork().parse::<Path>().is_err() {
        cx.syn_error(syn::Error::new(input.span(), HINT));
        skip_value(input)?;
        return Ok(None);
    }
    input.parse().map(Some)
}

/// `navigation(group = "...", icon = "...", sort = N)`, each key optional.
fn navigation(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<NavigationAttrs>> {
    if !expect_list(
        cx,
        NAVIGATION,
        "group = \"Billing\", icon = \"receipt\", sort = 1",
        meta,
    )? {
        return Ok(None);
    }
    let mut nav = NavigationAttrs {
        group: Attr::none(KeyName::nested(NAVIGATION, GROUP)),
        icon: Attr::none(KeyName::nested(NAVIGATION, ICON)),
        sort: Attr::none(KeyName::nested(NAVIGATION, SORT)),
    };
    let parsed = meta.parse_nested_meta(|inner| {
        let path = &inner.path;
        if path == GROUP || path == ICON {
            let key = if path == GROUP { GROUP } else { ICON };
            if let Some(s) = lit_str(cx, KeyName::nested(NAVIGATION, key), &inner)? {
                let slot = if key == GROUP { &mut nav.group } else { &mut nav.icon };
                slot.set(cx, path, s);
            }
        } else if path == SORT {
            if let Some(n) = lit_i32(cx, KeyName::nested(NAVIGATION, SORT), &inner)? {
                nav.sort.set(cx, path, n);
            }
        } else {
            cx.error_spanned_by(
                path,
                format!(
                    "unknown resource attribute `navigation({})`: expected `group`, `icon` or `sort`",
                    path_to_string(path)
                ),
            );
            skip_value(inner.input)?;
        }
        Ok(())
    });
    if let Err(err) = parsed {
        cx.syn_error(err);
    }
    Ok(Some(nav))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("sortable", "sortable"), 0);
        assert_eq!(edit_distance("sortabel", "sortable"), 1);
        assert_eq!(edit_distance("tabel", "table"), 1);
        assert_eq!(edit_distance("uniqe", "unique"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn typos_get_the_nearest_key_and_far_words_none() {
        assert_eq!(nearest("sortabel", FIELD_KEYS), Some((1, SORTABLE)));
        assert_eq!(nearest("maxlength", FIELD_KEYS), Some((0, MAX_LENGTH)));
        assert_eq!(
            nearest("softdelete", CONTAINER_KEYS),
            Some((0, SOFT_DELETE))
        );
        assert_eq!(nearest("tabel", CONTAINER_KEYS), Some((1, TABLE)));
        assert_eq!(nearest("wibblewobble", FIELD_KEYS), None);
        assert_eq!(nearest("x", FIELD_KEYS), None);
    }
}
