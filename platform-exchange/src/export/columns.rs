//! Which columns an export carries, and what each cell holds: the field
//! switches of the derive, the actor's visibility (core's
//! [`Visibility`]), and the neutralisation of cells a spreadsheet would run
//! as formulas (CWE-1236).

use platform_core::error::FieldErrors;
use platform_core::resource::{FieldMeta, ResourceMeta};
use platform_core::value::Value;
use platform_core::visibility::Visibility;

/// One exported column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The position of the field in a record's values.
    pub index: usize,
    /// The field.
    pub field: &'static FieldMeta,
}

impl Column {
    /// The column heading: the field's label (`#[resource(label = "..")]`).
    pub fn heading(&self) -> &'static str {
        self.field.label_text()
    }
}

/// The columns `visibility` may export of `meta`, in field order, or the
/// ones `requested` (by field name, in that order).
///
/// A field is exported when it is [`FieldMeta::exportable`] and the actor
/// may see it at least masked: an `encrypted` field without
/// `view_encrypted` is left out (its plaintext never leaves, and a
/// ciphertext is of no use), a `pii` field without `view_pii` is exported
/// masked ([`cell`]). Requesting a column that is unknown or not exportable
/// for this actor is a validation error naming it (`columns`).
pub fn select(
    meta: &'static ResourceMeta,
    visibility: Visibility,
    requested: Option<&[String]>,
) -> Result<Vec<Column>, FieldErrors> {
    let allowed =
        |f: &FieldMeta| f.exportable() && (!f.is_encrypted() || visibility.sees_encrypted());
    let Some(requested) = requested else {
        return Ok(meta
            .field_list()
            .iter()
            .enumerate()
            .filter(|(_, f)| allowed(f))
            .map(|(index, field)| Column { index, field })
            .collect());
    };
    let mut errors = FieldErrors::default();
    let mut out: Vec<Column> = Vec::with_capacity(requested.len());
    for name in requested {
        let name = name.trim();
        match meta.field_index(name).map(|i| (i, &meta.field_list()[i])) {
            Some((index, field)) if allowed(field) => {
                if out.iter().any(|c| c.index == index) {
                    errors.add("columns", "invalid", format!("names `{name}` twice"));
                } else {
                    out.push(Column { index, field });
                }
            }
            _ => errors.add(
                "columns",
                "invalid",
                format!(
                    "`{}` is not a column you may export",
                    name.chars().take(64).collect::<String>()
                ),
            ),
        }
    }
    if out.is_empty() && errors.is_empty() {
        errors.add("columns", "invalid", "name at least one column");
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// One cell of an export, typed for XLSX (CSV writes [`Cell::text`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Nothing (null).
    Empty,
    /// Text, already neutralised.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A calendar date.
    Date(chrono::NaiveDate),
    /// A point in time (UTC).
    DateTime(chrono::DateTime<chrono::Utc>),
}

impl Cell {
    /// The cell as CSV text.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match self {
            Self::Empty => Cow::Borrowed(""),
            Self::Text(s) => Cow::Borrowed(s),
            Self::Int(n) => Cow::Owned(n.to_string()),
            Self::Float(n) => Cow::Owned(n.to_string()),
            Self::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Self::Date(d) => Cow::Owned(d.format("%Y-%m-%d").to_string()),
            Self::DateTime(t) => Cow::Owned(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        }
    }
}

/// Prefixes text a spreadsheet would run as a formula (starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return) with `'`, which spreadsheets
/// read as "this is text" (OWASP's advice for CSV injection, CWE-1236).
/// Typed numbers are left alone: they are written as numbers, not text.
pub fn neutralise(s: String) -> String {
    if needs_prefix(&s) {
        let mut out = String::with_capacity(s.len() + 1);
        out.push('\'');
        out.push_str(&s);
        out
    } else {
        s
    }
}

/// The cell of `column` for the stored (decrypted, or `Null` when the
/// actor may not see it) value `v`, as `visibility` shows it: masked for a
/// `pii` field without `view_pii`, neutralised when it is text.
pub fn cell(visibility: Visibility, column: &Column, v: &Value) -> Cell {
    let f = column.field;
    if !visibility.sees(f) {
        return match visibility.shown(f, v) {
            serde_json::Value::Null => Cell::Empty,
            serde_json::Value::String(s) => Cell::Text(neutralise(s)),
            other => Cell::Text(neutralise(other.to_string())),
        };
    }
    match v {
        Value::Null => Cell::Empty,
        Value::Bool(b) => Cell::Bool(*b),
        Value::Int(n) => Cell::Int(*n),
        Value::Float(n) => Cell::Float(*n),
        Value::Text(s) => Cell::Text(neutralise(s.clone())),
        Value::Date(d) => Cell::Date(*d),
        Value::DateTime(t) => Cell::DateTime(*t),
        Value::Uuid(u) => Cell::Text(u.to_string()),
        Value::Json(j) => Cell::Text(neutralise(j.to_string())),
        other => Cell::Text(neutralise(other.display())),
    }
}

/// The CSV text of the cell of `column` for `v`: exactly
/// [`cell`]`(..).`[`text`](Cell::text)`()`, without building the cell.
/// Text is borrowed from the value unless it needs the `'` prefix,
/// numbers and dates are written into `scratch` (reused from cell to
/// cell), so a visible row costs no allocation per cell.
pub(crate) fn csv_text<'a>(
    visibility: Visibility,
    column: &Column,
    v: &'a Value,
    scratch: &'a mut String,
) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow;
    use std::fmt::Write;
    if !visibility.sees(column.field) {
        return Cow::Owned(cell(visibility, column, v).text().into_owned());
    }
    scratch.clear();
    match v {
        Value::Null => Cow::Borrowed(""),
        Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::Int(n) => {
            let _ = write!(scratch, "{n}");
            Cow::Borrowed(scratch.as_str())
        }
        Value::Float(n) => {
            let _ = write!(scratch, "{n}");
            Cow::Borrowed(scratch.as_str())
        }
        Value::Text(s) if needs_prefix(s) => Cow::Owned(neutralise(s.clone())),
        Value::Text(s) => Cow::Borrowed(s.as_str()),
        Value::Date(d) if (0..=9999).contains(&chrono::Datelike::year(d)) => {
            push_date(scratch, *d);
            Cow::Borrowed(scratch.as_str())
        }
        Value::Date(d) => {
            let _ = write!(scratch, "{}", d.format("%Y-%m-%d"));
            Cow::Borrowed(scratch.as_str())
        }
        Value::DateTime(t) if (0..=9999).contains(&chrono::Datelike::year(t)) => {
            use chrono::Timelike;
            push_date(scratch, t.date_naive());
            scratch.push('T');
            push_digits(scratch, t.hour(), 2);
            scratch.push(':');
            push_digits(scratch, t.minute(), 2);
            scratch.push(':');
            push_digits(scratch, t.second(), 2);
            scratch.push('Z');
            Cow::Borrowed(scratch.as_str())
        }
        Value::Uuid(u) => {
            let _ = write!(scratch, "{u}");
            Cow::Borrowed(scratch.as_str())
        }
        other => Cow::Owned(cell(visibility, column, other).text().into_owned()),
    }
}

/// `YYYY-MM-DD` of a date in the years 0 to 9999, as chrono's
/// `%Y-%m-%d` writes it. By hand because chrono's formatter parses its
/// format string for every value: a seventh of a whole CSV export's time
/// went there.
fn push_date(out: &mut String, d: chrono::NaiveDate) {
    use chrono::Datelike;
    push_digits(out, d.year().unsigned_abs(), 4);
    out.push('-');
    push_digits(out, d.month(), 2);
    out.push('-');
    push_digits(out, d.day(), 2);
}

/// `n` in `width` decimal digits, zero-padded (`n` below 10^`width`).
fn push_digits(out: &mut String, n: u32, width: u32) {
    let mut div = 10u32.pow(width - 1);
    while div > 0 {
        out.push(char::from(b'0' + u8::try_from(n / div % 10).unwrap_or(0)));
        div /= 10;
    }
}

/// Whether [`neutralise`] prefixes `s`.
fn needs_prefix(s: &str) -> bool {
    s.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_plain_text_is_not() {
        for s in ["=1+2", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(s.to_owned()), format!("'{s}"));
        }
        for s in ["hello", "1=1", "", "'quoted"] {
            assert_eq!(neutralise(s.to_owned()), s);
        }
    }

    const META: ResourceMeta = ResourceMeta::new("person", "people", "people").fields(&[
        FieldMeta::of::<i64>("id").primary_key(),
        FieldMeta::of::<String>("name"),
        FieldMeta::of::<String>("email").pii(),
        FieldMeta::of::<Option<String>>("iban").encrypted(),
        FieldMeta::of::<String>("hash").hidden(),
        FieldMeta::of::<String>("note").no_export(),
    ]);

    #[test]
    fn columns_follow_switches_and_visibility() {
        let names = |v: Visibility| -> Vec<&str> {
            select(&META, v, None)
                .unwrap()
                .iter()
                .map(|c| c.field.name())
                .collect()
        };
        assert_eq!(
            names(Visibility::new(false, false)),
            ["id", "name", "email"]
        );
        assert_eq!(names(Visibility::all()), ["id", "name", "email", "iban"]);
        let none = Visibility::new(false, false);
        let err = select(&META, none, Some(&["iban".to_owned()])).unwrap_err();
        assert!(err.has("columns"));
        let err = select(&META, none, Some(&["hash".to_owned(), "note".to_owned()])).unwrap_err();
        assert_eq!(err.iter().count(), 2);
        let cols = select(&META, none, Some(&["email".to_owned(), "id".to_owned()])).unwrap();
        assert_eq!(cols[0].index, 2);
        let masked = cell(none, &cols[0], &Value::Text("ada@example.com".into()));
        assert_eq!(masked, Cell::Text("a***@example.com".into()));
        let plain = cell(
            Visibility::all(),
            &cols[0],
            &Value::Text("=ada@example.com".into()),
        );
        assert_eq!(plain, Cell::Text("'=ada@example.com".into()));
    }

    #[test]
    fn csv_text_is_the_cell_text() {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(-42),
            Value::Int(i64::MAX),
            Value::Float(1.5),
            Value::Float(-0.1),
            Value::Float(1e21),
            Value::Text("plain, with a comma".into()),
            Value::Text("=1+2".into()),
            Value::Text("-3".into()),
            Value::Text(String::new()),
            Value::Date(date),
            Value::Date(chrono::NaiveDate::from_ymd_opt(5, 12, 31).unwrap()),
            Value::Date(chrono::NaiveDate::from_ymd_opt(9999, 10, 9).unwrap()),
            Value::Date(chrono::NaiveDate::from_ymd_opt(-3, 1, 1).unwrap()),
            Value::Date(chrono::NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap()),
            Value::DateTime(date.and_hms_opt(3, 4, 5).unwrap().and_utc()),
            Value::DateTime(
                chrono::NaiveDate::from_ymd_opt(7, 8, 9)
                    .unwrap()
                    .and_hms_opt(10, 11, 12)
                    .unwrap()
                    .and_utc(),
            ),
            Value::DateTime(
                date.and_hms_nano_opt(23, 59, 59, 999_999_000)
                    .unwrap()
                    .and_utc(),
            ),
            Value::DateTime(
                chrono::NaiveDate::from_ymd_opt(12_345, 6, 7)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
                    .and_utc(),
            ),
            Value::Uuid(uuid::Uuid::nil()),
            Value::Json(serde_json::json!({"a": 1})),
            Value::Json(serde_json::json!("=x")),
        ];
        let cols = select(&META, Visibility::all(), None).unwrap();
        for v in &values {
            for vis in [Visibility::all(), Visibility::new(false, false)] {
                for c in cols
                    .iter()
                    .filter(|c| vis.sees(c.field) || c.field.is_pii())
                {
                    let mut scratch = String::from("left over");
                    assert_eq!(
                        csv_text(vis, c, v, &mut scratch),
                        cell(vis, c, v).text(),
                        "{v:?} in {}",
                        c.field.name()
                    );
                }
            }
        }
    }
}
