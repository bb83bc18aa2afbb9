//! How values look on the panel's pages, and how form text becomes values.

use std::fmt::Write;

use chrono::{DateTime, NaiveDateTime, Utc};
use platform_core::money;
use platform_core::query::Count;
use platform_core::resource::FieldMeta;
use platform_core::value::{FieldType, Value};

/// What an encrypted value looks like to someone without `view_encrypted`.
pub(crate) const SECRET_MASK: &str = "••••••";

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_encoded(&mut out, s);
    out
}

/// Appends `s` percent-encoded.
pub(crate) fn push_encoded(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// A query string (without `?`) from pairs.
pub(crate) fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        push_encoded(&mut out, k);
        out.push('=');
        push_encoded(&mut out, v);
    }
    out
}

/// `path` plus `?query` when the query is not empty.
pub(crate) fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// A count for people: exact (`1,234`), estimated (`~1,234,000`) or a lower
/// bound (`10,001+`).
pub(crate) fn count(c: Count) -> String {
    match c {
        Count::Exact(n) => money::group_thousands(n),
        Count::Estimated(n) => format!("~{}", money::group_thousands(n)),
        Count::AtLeast(n) => format!("{}+", money::group_thousands(n)),
    }
}

/// A time for people: `2024-01-02 03:04 UTC`.
pub(crate) fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A time as a `datetime-local` input value (UTC).
pub(crate) fn time_input(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Reads a `datetime-local` value (taken as UTC) or an RFC 3339 time.
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|n| n.and_utc())
}

/// Shortens `s` to `max` characters, with an ellipsis.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// A value of `f` as text for people (tables, the view page).
pub(crate) fn display(f: &FieldMeta, v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(true) => "Yes".to_owned(),
        Value::Bool(false) => "No".to_owned(),
        Value::Int(n) if f.is_money() => money::format(*n),
        Value::DateTime(t) => time(t),
        Value::Json(j) => j.to_string(),
        other => other.display(),
    }
}

/// A value of `f` as a form input's value.
pub(crate) fn input_value(f: &FieldMeta, v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Int(n) if f.is_money() => money::format_plain(*n),
        Value::DateTime(t) => time_input(t),
        Value::Json(j) => serde_json::to_string_pretty(j).unwrap_or_default(),
        other => other.display(),
    }
}

/// Reads a form value for `f`: empty text is null; money is an amount;
/// times are `datetime-local` values in UTC.
pub(crate) fn parse_input(f: &FieldMeta, text: &str) -> Result<Value, String> {
    if text.trim().is_empty() && f.ty() != FieldType::Bool {
        return Ok(Value::Null);
    }
    if text.contains('\0') {
        return Err("must not contain NUL characters".to_owned());
    }
    match f.ty() {
        FieldType::I32 | FieldType::I64 if f.is_money() => money::parse(text)
            .map(Value::Int)
            .ok_or_else(|| "must be an amount with at most two decimals".to_owned()),
        FieldType::DateTime => parse_time(text)
            .map(Value::DateTime)
            .ok_or_else(|| "must be a date and time".to_owned()),
        FieldType::Bool => Ok(Value::Bool(matches!(
            text.trim(),
            "true" | "1" | "on" | "yes"
        ))),
        ty => Value::parse(ty, text).map_err(|e| e.to_string()),
    }
}

/// Neutralises a CSV cell that a spreadsheet would run as a formula.
pub(crate) fn csv_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Appends one CSV field (quoted when needed).
pub(crate) fn push_csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(count(Count::Exact(1234)), "1,234");
        assert_eq!(count(Count::Estimated(1_000_000)), "~1,000,000");
        assert_eq!(count(Count::AtLeast(10_001)), "10,001+");
        assert_eq!(count(Count::Exact(7)), "7");
    }

    #[test]
    fn csv_cells() {
        assert_eq!(csv_safe("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_safe("@cmd"), "'@cmd");
        assert_eq!(csv_safe("plain"), "plain");
        let mut out = String::new();
        push_csv_field(&mut out, "a,\"b\"");
        assert_eq!(out, "\"a,\"\"b\"\"\"");
    }

    #[test]
    fn times() {
        let t = parse_time("2024-05-06T07:08").unwrap();
        assert_eq!(time_input(&t), "2024-05-06T07:08:00");
        assert_eq!(time(&t), "2024-05-06 07:08 UTC");
        assert!(parse_time("2024-05-06T07:08:09Z").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}
