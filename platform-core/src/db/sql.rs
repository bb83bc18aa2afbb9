//! A small SQL text builder that cannot take user text.
//!
//! Fragments are `&'static str` (literals in our source), identifiers come
//! from validated resource metadata and are quoted, and every value is a
//! bound parameter. That is the whole defence against SQL injection: there is
//! no method that appends a runtime string as SQL.

use super::Backend;
use crate::resource::FieldMeta;
use crate::value::{FieldType, Value};

/// A bound parameter with the SQL type it is bound as (PostgreSQL needs a
/// type even for `NULL`).
#[derive(Debug, Clone)]
pub(crate) struct Arg {
    pub(crate) value: Value,
    pub(crate) ty: FieldType,
}

/// SQL text plus its parameters, for one back end.
#[derive(Debug, Clone)]
pub struct Sql {
    backend: Backend,
    text: String,
    pub(crate) args: Vec<Arg>,
    /// Kept prepared on the connection (see [`Sql::in_list`]).
    pub(crate) persistent: bool,
}

impl Sql {
    /// An empty statement for `backend`.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            text: String::with_capacity(256),
            args: Vec::new(),
            persistent: true,
        }
    }

    /// A statement made of one literal.
    pub fn literal(backend: Backend, text: &'static str) -> Self {
        let mut s = Self::new(backend);
        s.push(text);
        s
    }

    /// The back end.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQL text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// A digest of the statement: its text and every bound value (a cache
    /// key for what the statement answers).
    pub(crate) fn fingerprint(&self) -> String {
        use std::fmt::Write;
        let mut all = self.text.clone();
        for a in &self.args {
            let _ = write!(all, "\u{0}{:?}:{:?}", a.ty, a.value);
        }
        crate::crypto::sha256_hex(all.as_bytes())
    }

    /// Number of bound parameters.
    pub fn arg_count(&self) -> usize {
        self.args.len()
    }

    /// Appends a literal fragment. Only `'static` text is accepted: SQL never
    /// comes from input.
    pub fn push(&mut self, fragment: &'static str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    /// Appends a quoted identifier. Identifiers come from resource metadata,
    /// which the registry validated as `[a-z_][a-z0-9_]*`; anything else is
    /// refused here as a second line of defence.
    ///
    /// # Panics
    /// When `name` is not a plain identifier: that is a bug in the platform,
    /// never the result of input.
    pub fn ident(&mut self, name: &str) -> &mut Self {
        assert!(
            crate::resource::registry_is_identifier(name),
            "not an identifier: {name:?}"
        );
        let q = self.backend.quote_char();
        self.text.push(q);
        self.text.push_str(name);
        self.text.push(q);
        self
    }

    /// Appends a plain identifier as it is, unquoted (inside a JSON path
    /// literal, say); refused like [`Sql::ident`] when it is not one.
    pub(crate) fn raw_ident(&mut self, name: &str) -> &mut Self {
        assert!(
            crate::resource::registry_is_identifier(name),
            "not an identifier: {name:?}"
        );
        self.text.push_str(name);
        self
    }

    /// Appends `table.column`, both quoted.
    pub fn qualified(&mut self, table: &str, column: &str) -> &mut Self {
        self.ident(table).push(".").ident(column)
    }

    /// Appends an integer literal.
    pub fn int(&mut self, n: i64) -> &mut Self {
        use std::fmt::Write;
        let _ = write!(self.text, "{n}");
        self
    }

    /// Appends a placeholder bound to `value` of SQL type `ty`.
    pub fn bind(&mut self, value: Value, ty: FieldType) -> &mut Self {
        self.args.push(Arg { value, ty });
        super::dialect::write_placeholder(&mut self.text, self.backend, self.args.len());
        self
    }

    /// Binds a value for `field`.
    pub fn bind_field(&mut self, value: Value, field: &FieldMeta) -> &mut Self {
        self.bind(value, storage_type(field))
    }

    /// Binds a string.
    pub fn bind_str(&mut self, s: impl Into<String>) -> &mut Self {
        self.bind(Value::Text(s.into()), FieldType::Text)
    }

    /// Binds an integer.
    pub fn bind_i64(&mut self, n: i64) -> &mut Self {
        self.bind(Value::Int(n), FieldType::I64)
    }

    /// Appends ` IN (…)`, each item written by `f` (`items` must not be
    /// empty). The statement is then planned for its own values each time it
    /// runs and is not kept prepared on the connection: its text changes
    /// with the list's length (and would crowd the statement cache), and on
    /// PostgreSQL a prepared statement soon runs a generic plan, made once
    /// and kept. A generic plan made while a table was small scans the
    /// whole table, and kept while the table grows it makes every lookup
    /// slower than the last: measured in a 100,000-row import into an empty
    /// table, 750-890 ms per unique check of 500 values partway through,
    /// against a few milliseconds through the index.
    pub fn in_list<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        f: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        self.persistent = false;
        self.push(" IN (").join(items, ", ", f).push(")")
    }

    /// Appends `items` separated by `sep`, each written by `f`.
    pub fn join<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        sep: &'static str,
        mut f: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(sep);
            }
            f(self, item);
        }
        self
    }
}

/// The type a field is stored as: encrypted fields are ciphertext strings.
pub(crate) fn storage_type(field: &FieldMeta) -> FieldType {
    if field.is_encrypted() {
        FieldType::Text
    } else {
        field.ty()
    }
}

/// Escapes `%`, `_` and the escape character `!` for `LIKE ... ESCAPE '!'`.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_per_backend() {
        let mut pg = Sql::new(Backend::Postgres);
        pg.push("SELECT * FROM ").ident("invoices").push(" WHERE ");
        pg.ident("id").push(" = ").bind_i64(1).push(" AND ");
        pg.ident("number").push(" = ").bind_str("x");
        assert_eq!(
            pg.text(),
            r#"SELECT * FROM "invoices" WHERE "id" = $1 AND "number" = $2"#
        );
        let mut my = Sql::new(Backend::MySql);
        my.ident("id").push(" = ").bind_i64(1);
        assert_eq!(my.text(), "`id` = ?");
    }

    #[test]
    #[should_panic(expected = "not an identifier")]
    fn identifiers_are_checked() {
        Sql::new(Backend::Sqlite).ident("a\"; DROP TABLE x; --");
    }

    #[test]
    fn like_escaping() {
        assert_eq!(like_escape("50%_off!"), "50!%!_off!!");
    }

    #[test]
    fn in_lists_are_planned_each_time() {
        let mut q = Sql::new(Backend::Postgres);
        q.push("SELECT id FROM ").ident("invoices").push(" WHERE ");
        assert!(q.persistent);
        q.ident("number").in_list(["a", "b", "c"], |q, v| {
            q.bind_str(v);
        });
        assert_eq!(
            q.text(),
            r#"SELECT id FROM "invoices" WHERE "number" IN ($1, $2, $3)"#
        );
        assert_eq!(q.arg_count(), 3);
        assert!(!q.persistent);
    }
}
