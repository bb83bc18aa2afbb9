//! Binding values to statements and decoding rows, per back end.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, SubsecRound, Utc};
use sqlx::Row as _;
use uuid::Uuid;

use super::{Row, sql};
use crate::error::{Error, Result};
use crate::value::{FieldType, Value};

type Query<DB> = sqlx::query::Query<'static, DB, <DB as sqlx::Database>::Arguments>;

/// Times are stored with microsecond precision everywhere, so a value reads
/// back exactly as written (the audit chain depends on that).
pub(crate) fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// SQLite stores times as RFC 3339 text with exactly six fractional digits
/// and `Z`, so text order is time order.
pub(crate) fn sqlite_time(t: DateTime<Utc>) -> String {
    truncate_micros(t).to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn bind_sqlite(mut q: Query<sqlx::Sqlite>, args: Vec<sql::Arg>) -> Query<sqlx::Sqlite> {
    for a in args {
        q = match a.value {
            Value::Null => q.bind(None::<String>),
            Value::Bool(v) => q.bind(v),
            Value::Int(v) => q.bind(v),
            Value::Float(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
            Value::Date(v) => q.bind(v.format("%Y-%m-%d").to_string()),
            Value::DateTime(v) => q.bind(sqlite_time(v)),
            Value::Uuid(v) => q.bind(v.hyphenated().to_string()),
            Value::Json(v) => q.bind(v.to_string()),
        };
    }
    q
}

pub(super) fn bind_pg(mut q: Query<sqlx::Postgres>, args: Vec<sql::Arg>) -> Query<sqlx::Postgres> {
    for a in args {
        q = match (a.value, a.ty) {
            (Value::Null, ty) => match ty {
                FieldType::Bool => q.bind(None::<bool>),
                FieldType::I32 => q.bind(None::<i32>),
                FieldType::I64 => q.bind(None::<i64>),
                FieldType::F64 => q.bind(None::<f64>),
                FieldType::Date => q.bind(None::<NaiveDate>),
                FieldType::DateTime => q.bind(None::<DateTime<Utc>>),
                FieldType::Uuid => q.bind(None::<Uuid>),
                FieldType::Json => q.bind(None::<sqlx::types::Json<serde_json::Value>>),
                _ => q.bind(None::<String>),
            },
            (Value::Int(v), FieldType::I32) => q.bind(i32::try_from(v).unwrap_or(i32::MAX)),
            (Value::Bool(v), _) => q.bind(v),
            (Value::Int(v), _) => q.bind(v),
            (Value::Float(v), _) => q.bind(v),
            (Value::Text(v), _) => q.bind(v),
            (Value::Date(v), _) => q.bind(v),
            (Value::DateTime(v), _) => q.bind(truncate_micros(v)),
            (Value::Uuid(v), _) => q.bind(v),
            (Value::Json(v), _) => q.bind(sqlx::types::Json(v)),
        };
    }
    q
}

pub(super) fn bind_mysql(mut q: Query<sqlx::MySql>, args: Vec<sql::Arg>) -> Query<sqlx::MySql> {
    for a in args {
        q = match (a.value, a.ty) {
            (Value::Null, ty) => match ty {
                FieldType::Bool => q.bind(None::<bool>),
                FieldType::I32 | FieldType::I64 => q.bind(None::<i64>),
                FieldType::F64 => q.bind(None::<f64>),
                FieldType::Date => q.bind(None::<NaiveDate>),
                FieldType::DateTime => q.bind(None::<DateTime<Utc>>),
                _ => q.bind(None::<String>),
            },
            (Value::Bool(v), _) => q.bind(v),
            (Value::Int(v), _) => q.bind(v),
            (Value::Float(v), _) => q.bind(v),
            (Value::Text(v), _) => q.bind(v),
            (Value::Date(v), _) => q.bind(v),
            (Value::DateTime(v), _) => q.bind(truncate_micros(v)),
            (Value::Uuid(v), _) => q.bind(v.hyphenated().to_string()),
            (Value::Json(v), _) => q.bind(v.to_string()),
        };
    }
    q
}

fn decode_err(col: usize, e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: "database",
        source: format!("cannot decode column {col}: {e}").into(),
    }
}

fn parse_time_text(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
        .or_else(|| {
            DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z")
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
}

macro_rules! get {
    ($row:expr, $i:expr, $t:ty) => {
        $row.try_get::<Option<$t>, _>($i)
            .map_err(|e| decode_err($i, e))?
    };
}

pub(super) fn decode_sqlite(row: &sqlx::sqlite::SqliteRow, types: &[FieldType]) -> Result<Row> {
    let mut out = Vec::with_capacity(types.len());
    for (i, ty) in types.iter().enumerate().take(row.columns().len()) {
        let v = match ty {
            FieldType::Bool => get!(row, i, bool).map(Value::Bool),
            FieldType::I32 | FieldType::I64 => get!(row, i, i64).map(Value::Int),
            FieldType::F64 => get!(row, i, f64).map(Value::Float),
            FieldType::String | FieldType::Text => get!(row, i, String).map(Value::Text),
            FieldType::Date => get!(row, i, NaiveDate).map(Value::Date),
            FieldType::DateTime => match get!(row, i, String) {
                None => None,
                Some(s) => Some(Value::DateTime(
                    parse_time_text(&s).ok_or_else(|| decode_err(i, format!("bad time {s:?}")))?,
                )),
            },
            FieldType::Uuid => match get!(row, i, String) {
                None => None,
                Some(s) => Some(Value::Uuid(
                    Uuid::parse_str(&s).map_err(|e| decode_err(i, e))?,
                )),
            },
            FieldType::Json => match get!(row, i, String) {
                None => None,
                Some(s) => Some(Value::Json(
                    serde_json::from_str(&s).map_err(|e| decode_err(i, e))?,
                )),
            },
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

pub(super) fn decode_pg(row: &sqlx::postgres::PgRow, types: &[FieldType]) -> Result<Row> {
    let mut out = Vec::with_capacity(types.len());
    for (i, ty) in types.iter().enumerate().take(row.columns().len()) {
        let v = match ty {
            FieldType::Bool => get!(row, i, bool).map(Value::Bool),
            FieldType::I32 => get!(row, i, i32).map(|v| Value::Int(i64::from(v))),
            FieldType::I64 => get!(row, i, i64).map(Value::Int),
            FieldType::F64 => get!(row, i, f64).map(Value::Float),
            FieldType::String | FieldType::Text => get!(row, i, String).map(Value::Text),
            FieldType::Date => get!(row, i, NaiveDate).map(Value::Date),
            FieldType::DateTime => get!(row, i, DateTime<Utc>).map(Value::DateTime),
            FieldType::Uuid => get!(row, i, Uuid).map(Value::Uuid),
            FieldType::Json => {
                get!(row, i, sqlx::types::Json<serde_json::Value>).map(|j| Value::Json(j.0))
            }
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

pub(super) fn decode_mysql(row: &sqlx::mysql::MySqlRow, types: &[FieldType]) -> Result<Row> {
    let mut out = Vec::with_capacity(types.len());
    for (i, ty) in types.iter().enumerate().take(row.columns().len()) {
        let v = match ty {
            FieldType::Bool => get!(row, i, bool).map(Value::Bool),
            FieldType::I32 | FieldType::I64 => get!(row, i, i64).map(Value::Int),
            FieldType::F64 => get!(row, i, f64).map(Value::Float),
            FieldType::String | FieldType::Text => get!(row, i, String).map(Value::Text),
            FieldType::Date => get!(row, i, NaiveDate).map(Value::Date),
            FieldType::DateTime => get!(row, i, DateTime<Utc>).map(Value::DateTime),
            FieldType::Uuid => match get!(row, i, String) {
                None => None,
                Some(s) => Some(Value::Uuid(
                    Uuid::parse_str(&s).map_err(|e| decode_err(i, e))?,
                )),
            },
            FieldType::Json => match get!(row, i, String) {
                None => None,
                Some(s) => Some(Value::Json(
                    serde_json::from_str(&s).map_err(|e| decode_err(i, e))?,
                )),
            },
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_times_sort_as_text() {
        let a = DateTime::parse_from_rfc3339("2024-01-01T00:00:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let b = DateTime::parse_from_rfc3339("2024-01-01T00:00:05.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(sqlite_time(a) < sqlite_time(b));
        assert_eq!(parse_time_text(&sqlite_time(b)), Some(b));
    }
}
