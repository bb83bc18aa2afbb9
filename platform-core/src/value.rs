//! Dynamic values: what travels between resources, the database, the audit
//! trail and the JSON API.
//!
//! A resource struct converts to and from a list of [`Value`]s in field order
//! (the derive writes that code through [`FieldValue`]); every service inside
//! the platform works on those lists, so no service needs to know the host's
//! types.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use uuid::Uuid;

/// The type of a resource field, as the database and the forms see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldType {
    /// `bool`.
    Bool,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `f64`.
    F64,
    /// A short string (`VARCHAR` with a maximum length).
    String,
    /// A long string (`TEXT`), set with `#[resource(text)]` on a `String`.
    Text,
    /// A calendar date ([`chrono::NaiveDate`]).
    Date,
    /// A point in time ([`chrono::DateTime<Utc>`]).
    DateTime,
    /// A [`uuid::Uuid`].
    Uuid,
    /// A JSON document ([`serde_json::Value`]).
    Json,
}

impl FieldType {
    /// The name used in messages and in the OpenAPI document.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Bool => "boolean",
            Self::I32 | Self::I64 => "integer",
            Self::F64 => "number",
            Self::String | Self::Text => "string",
            Self::Date => "date",
            Self::DateTime => "date-time",
            Self::Uuid => "uuid",
            Self::Json => "json",
        }
    }

    /// What a value of this type must look like, for messages (`an integer`,
    /// `a date (YYYY-MM-DD)`).
    pub const fn expectation(self) -> &'static str {
        match self {
            Self::Bool => "a boolean",
            Self::I32 | Self::I64 => "an integer",
            Self::F64 => "a number",
            Self::String | Self::Text => "a string",
            Self::Date => "a date (YYYY-MM-DD)",
            Self::DateTime => "a date and time (RFC 3339)",
            Self::Uuid => "a UUID",
            Self::Json => "JSON",
        }
    }

    /// Whether values of this type are strings.
    pub const fn is_string(self) -> bool {
        matches!(self, Self::String | Self::Text)
    }

    /// Whether values of this type are ordered numbers, dates or times (range filters).
    pub const fn is_ordered(self) -> bool {
        matches!(
            self,
            Self::I32 | Self::I64 | Self::F64 | Self::Date | Self::DateTime
        )
    }
}

/// One dynamic value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Value {
    /// SQL `NULL`, JSON `null`, Rust `None`.
    Null,
    /// A boolean.
    Bool(bool),
    /// Any integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Text(String),
    /// A calendar date.
    Date(NaiveDate),
    /// A point in time.
    DateTime(DateTime<Utc>),
    /// A UUID.
    Uuid(Uuid),
    /// A JSON document.
    Json(serde_json::Value),
}

impl Value {
    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// The integer inside, if any.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The string inside, if any.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(v) => Some(v),
            _ => None,
        }
    }

    /// This value as JSON, the form the API and the audit trail use.
    ///
    /// Times are RFC 3339 with microseconds, in UTC, so the same instant always
    /// prints the same way (the audit chain hashes this form).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Self::Null => J::Null,
            Self::Bool(v) => J::Bool(*v),
            Self::Int(v) => J::from(*v),
            Self::Float(v) => serde_json::Number::from_f64(*v).map_or(J::Null, J::Number),
            Self::Text(v) => J::String(v.clone()),
            Self::Date(v) => J::String(v.format("%Y-%m-%d").to_string()),
            Self::DateTime(v) => J::String(v.to_rfc3339_opts(SecondsFormat::Micros, true)),
            Self::Uuid(v) => J::String(v.to_string()),
            Self::Json(v) => v.clone(),
        }
    }

    /// Reads a JSON value as a value of type `ty`, strictly: a string is not
    /// an integer, and a date must be `YYYY-MM-DD`.
    pub fn from_json(ty: FieldType, json: &serde_json::Value) -> Result<Self, ValueError> {
        use serde_json::Value as J;
        let err = || ValueError::Expected(ty);
        Ok(match (ty, json) {
            (_, J::Null) => Self::Null,
            (FieldType::Bool, J::Bool(v)) => Self::Bool(*v),
            (FieldType::I32, J::Number(n)) => {
                let v = n.as_i64().ok_or_else(err)?;
                i32::try_from(v).map_err(|_| ValueError::OutOfRange)?;
                Self::Int(v)
            }
            (FieldType::I64, J::Number(n)) => Self::Int(n.as_i64().ok_or_else(err)?),
            (FieldType::F64, J::Number(n)) => Self::Float(n.as_f64().ok_or_else(err)?),
            (FieldType::String | FieldType::Text, J::String(s)) => Self::Text(s.clone()),
            (FieldType::Date | FieldType::DateTime | FieldType::Uuid, J::String(s)) => {
                Self::parse(ty, s)?
            }
            (FieldType::Json, v) => Self::Json(v.clone()),
            _ => return Err(err()),
        })
    }

    /// Parses text (a query string, a CSV cell) as a value of type `ty`.
    pub fn parse(ty: FieldType, s: &str) -> Result<Self, ValueError> {
        let err = || ValueError::Expected(ty);
        Ok(match ty {
            FieldType::Bool => match s {
                "true" | "1" | "yes" | "on" => Self::Bool(true),
                "false" | "0" | "no" | "off" => Self::Bool(false),
                _ => return Err(err()),
            },
            FieldType::I32 => {
                let v: i64 = s.trim().parse().map_err(|_| err())?;
                i32::try_from(v).map_err(|_| ValueError::OutOfRange)?;
                Self::Int(v)
            }
            FieldType::I64 => Self::Int(s.trim().parse().map_err(|_| err())?),
            FieldType::F64 => {
                let v: f64 = s.trim().parse().map_err(|_| err())?;
                if !v.is_finite() {
                    return Err(err());
                }
                Self::Float(v)
            }
            FieldType::String | FieldType::Text => Self::Text(s.to_owned()),
            FieldType::Date => {
                Self::Date(NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| err())?)
            }
            FieldType::DateTime => Self::DateTime(
                DateTime::parse_from_rfc3339(s.trim())
                    .map_err(|_| err())?
                    .with_timezone(&Utc),
            ),
            FieldType::Uuid => Self::Uuid(Uuid::parse_str(s.trim()).map_err(|_| err())?),
            FieldType::Json => Self::Json(serde_json::from_str(s).map_err(|_| err())?),
        })
    }

    /// Whether this value fits a field of type `ty` (nulls are checked elsewhere).
    pub fn fits(&self, ty: FieldType) -> bool {
        matches!(
            (self, ty),
            (Self::Null, _)
                | (Self::Bool(_), FieldType::Bool)
                | (Self::Int(_), FieldType::I32 | FieldType::I64)
                | (Self::Float(_), FieldType::F64)
                | (Self::Text(_), FieldType::String | FieldType::Text)
                | (Self::Date(_), FieldType::Date)
                | (Self::DateTime(_), FieldType::DateTime)
                | (Self::Uuid(_), FieldType::Uuid)
                | (Self::Json(_), FieldType::Json)
        )
    }

    /// A short human form, for messages and the panel.
    pub fn display(&self) -> String {
        match self {
            Self::Null => String::new(),
            Self::Text(s) => s.clone(),
            other => match other.to_json() {
                serde_json::Value::String(s) => s,
                j => j.to_string(),
            },
        }
    }
}

/// Why a value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value has another type.
    #[error("must be {}", .0.expectation())]
    Expected(FieldType),
    /// The number does not fit the field.
    #[error("is out of range")]
    OutOfRange,
    /// A value is required.
    #[error("is required")]
    Required,
}

/// A Rust type that can be a resource field.
///
/// Implemented for `bool`, `i32`, `i64`, `f64`, `String`,
/// [`chrono::NaiveDate`], [`chrono::DateTime<Utc>`], [`uuid::Uuid`],
/// [`serde_json::Value`] and `Option` of each.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a resource field",
    note = "resource fields are bool, i32, i64, f64, String, chrono::NaiveDate, chrono::DateTime<Utc>, uuid::Uuid, serde_json::Value, or an Option of one"
)]
pub trait FieldValue: Sized {
    /// The field type.
    const TYPE: FieldType;
    /// Whether the field may be null (true for `Option`).
    const NULLABLE: bool = false;
    /// This value as a [`Value`].
    fn to_value(&self) -> Value;
    /// Reads a [`Value`] back.
    fn from_value(value: Value) -> Result<Self, ValueError>;
}

macro_rules! field_value {
    ($t:ty, $ty:ident, $variant:ident, |$v:ident| $to:expr, |$w:ident| $from:expr) => {
        // Not listed under an unsupported field type's error (nor is the
        // `Option` impl): the trait's note names the supported types.
        #[diagnostic::do_not_recommend]
        impl FieldValue for $t {
            const TYPE: FieldType = FieldType::$ty;
            fn to_value(&self) -> Value {
                let $v = self;
                Value::$variant($to)
            }
            fn from_value(value: Value) -> Result<Self, ValueError> {
                match value {
                    Value::$variant($w) => $from,
                    Value::Null => Err(ValueError::Required),
                    _ => Err(ValueError::Expected(FieldType::$ty)),
                }
            }
        }
    };
}

field_value!(bool, Bool, Bool, |v| *v, |w| Ok(w));
field_value!(i64, I64, Int, |v| *v, |w| Ok(w));
field_value!(i32, I32, Int, |v| i64::from(*v), |w| i32::try_from(w)
    .map_err(|_| ValueError::OutOfRange));
field_value!(f64, F64, Float, |v| *v, |w| Ok(w));
field_value!(String, String, Text, |v| v.clone(), |w| Ok(w));
field_value!(NaiveDate, Date, Date, |v| *v, |w| Ok(w));
field_value!(DateTime<Utc>, DateTime, DateTime, |v| *v, |w| Ok(w));
field_value!(Uuid, Uuid, Uuid, |v| *v, |w| Ok(w));
field_value!(serde_json::Value, Json, Json, |v| v.clone(), |w| Ok(w));

#[diagnostic::do_not_recommend]
impl<T: FieldValue> FieldValue for Option<T> {
    const TYPE: FieldType = T::TYPE;
    const NULLABLE: bool = true;
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, FieldValue::to_value)
    }
    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reading_is_strict() {
        assert_eq!(
            Value::from_json(FieldType::I64, &serde_json::json!("12")),
            Err(ValueError::Expected(FieldType::I64))
        );
        assert_eq!(
            Value::from_json(FieldType::I32, &serde_json::json!(1_i64 << 40)),
            Err(ValueError::OutOfRange)
        );
        assert_eq!(
            Value::from_json(FieldType::Date, &serde_json::json!("2024-02-30")),
            Err(ValueError::Expected(FieldType::Date))
        );
        assert_eq!(
            Value::from_json(FieldType::Date, &serde_json::json!("2024-02-29")).unwrap(),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
        );
    }

    #[test]
    fn times_print_with_microseconds() {
        let t = DateTime::parse_from_rfc3339("2024-01-02T03:04:05.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Value::DateTime(t).to_json(),
            serde_json::json!("2024-01-02T03:04:05.123456Z")
        );
    }

    #[test]
    fn options_round_trip() {
        assert_eq!(Option::<i64>::from_value(Value::Null), Ok(None));
        assert_eq!(Option::<i64>::from_value(Value::Int(3)), Ok(Some(3)));
        assert_eq!(i64::from_value(Value::Null), Err(ValueError::Required));
        assert_eq!(
            i32::from_value(Value::Int(i64::MAX)),
            Err(ValueError::OutOfRange)
        );
    }

    #[test]
    fn parse_rejects_non_finite_floats() {
        assert!(Value::parse(FieldType::F64, "NaN").is_err());
        assert!(Value::parse(FieldType::F64, "inf").is_err());
        assert_eq!(Value::parse(FieldType::F64, "1.5"), Ok(Value::Float(1.5)));
    }
}
