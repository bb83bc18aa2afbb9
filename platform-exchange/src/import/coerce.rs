//! Cell text to field values: dates in several formats, numbers, money,
//! booleans, choices by value or label. (Relations by a label need the
//! database: see the run.)

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use platform_core::resource::FieldMeta;
use platform_core::value::{FieldType, Value};

/// How to read a date like `03/04/2024`, where day and month could be
/// either way round (a date whose first part is above 12 is read day
/// first whatever this says, and ISO 8601 dates are never ambiguous).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DateOrder {
    /// `03/04/2024` is the 3rd of April.
    #[default]
    DayFirst,
    /// `03/04/2024` is the 4th of March.
    MonthFirst,
}

/// Reads `text` for field `f`. Empty text is `Null` (then the write path
/// says whether the field is required). Relations are read by key here;
/// a label that is not a key is looked up by the run.
pub fn coerce(f: &FieldMeta, text: &str, order: DateOrder) -> Result<Value, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(Value::Null);
    }
    match f.ty() {
        FieldType::Bool => parse_bool(t)
            .map(Value::Bool)
            .ok_or_else(|| "must be yes or no (yes/no, true/false, 1/0, y/n, on/off)".to_owned()),
        FieldType::I32 | FieldType::I64 if f.is_money() => parse_money(t)
            .map(Value::Int)
            .ok_or_else(|| "must be an amount with at most two decimals".to_owned()),
        FieldType::I32 | FieldType::I64 => parse_int(t)
            .map(Value::Int)
            .ok_or_else(|| "must be a whole number".to_owned()),
        FieldType::F64 => parse_float(t)
            .map(Value::Float)
            .ok_or_else(|| "must be a number".to_owned()),
        FieldType::Date => parse_date(t, order).map(Value::Date).ok_or_else(|| {
            "must be a date (2024-01-31, 31.01.2024, 31/01/2024, 31 Jan 2024)".to_owned()
        }),
        FieldType::DateTime => parse_datetime(t, order)
            .map(Value::DateTime)
            .ok_or_else(|| "must be a date and time (2024-01-31 14:30:00, UTC)".to_owned()),
        FieldType::String | FieldType::Text if !f.choice_list().is_empty() => choice(f, t)
            .map(|c| Value::Text(c.to_owned()))
            .ok_or_else(|| format!("must be one of: {}", f.choice_list().join(", "))),
        FieldType::String | FieldType::Text => Ok(Value::Text(text.to_owned())),
        ty => Value::parse(ty, t).map_err(|e| e.to_string()),
    }
}

/// The choice of `f` that `t` names, by value or by label (`Paid`,
/// `paid`, `PAID`; `in_review` from `In review`).
pub fn choice(f: &FieldMeta, t: &str) -> Option<&'static str> {
    let n = super::mapping::normalize(t);
    f.choice_list()
        .iter()
        .copied()
        .find(|c| *c == t)
        .or_else(|| {
            f.choice_list()
                .iter()
                .copied()
                .find(|c| super::mapping::normalize(c) == n)
        })
}

/// `yes`/`no` and the usual spellings.
pub fn parse_bool(t: &str) -> Option<bool> {
    match t.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "t" | "1" | "on" | "x" | "ja" | "oui" | "si" | "wahr" => Some(true),
        "no" | "n" | "false" | "f" | "0" | "off" | "nein" | "non" | "falsch" => Some(false),
        _ => None,
    }
}

/// A whole number: `1234`, `-5`, `+7`, `1_000`, `12.0` (as a spreadsheet
/// writes an integer).
pub fn parse_int(t: &str) -> Option<i64> {
    let s: String = t.chars().filter(|c| !matches!(c, '_' | ' ')).collect();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let (whole, frac) = s.split_once('.')?;
    if frac.chars().all(|c| c == '0') && !frac.is_empty() {
        whole.parse().ok()
    } else {
        None
    }
}

/// A number: `3.5`, `-2e3`, `3,5` (one comma and no point: a decimal
/// comma).
pub fn parse_float(t: &str) -> Option<f64> {
    let s: String = t.chars().filter(|c| !matches!(c, '_' | ' ')).collect();
    let s = if !s.contains('.') && s.matches(',').count() == 1 {
        s.replace(',', ".")
    } else {
        s
    };
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// An amount in cents from `12.50`, `$1,234.5`, `-3`, `€ 7.05`, `7,05 EUR`
/// (the reader the admin panel's forms use too).
pub use platform_core::money::parse as parse_money;

/// A date: ISO 8601 (`2024-01-31`, also with a time after it),
/// `2024/01/31`, `31.01.2024`, `31/01/2024` or `01/31/2024` (see
/// [`DateOrder`]), `31 Jan 2024`, `Jan 31, 2024`, `31-Jan-2024`, or a
/// spreadsheet serial number (`45322`).
pub fn parse_date(t: &str, order: DateOrder) -> Option<NaiveDate> {
    for fmt in [
        "%Y-%m-%d",
        "%Y/%m/%d",
        "%d.%m.%Y",
        "%d %b %Y",
        "%d %B %Y",
        "%b %d, %Y",
        "%B %d, %Y",
        "%d-%b-%Y",
    ] {
        if let Ok(d) = NaiveDate::parse_from_str(t, fmt) {
            return Some(d);
        }
    }
    if let Some(dt) = parse_naive_datetime(t) {
        return Some(dt.date());
    }
    if let Some(d) = slash_date(t, order) {
        return Some(d);
    }
    // A spreadsheet serial (days since 1899-12-30), within 1900..2200.
    if let Ok(n) = t.parse::<f64>()
        && (1.0..=110_000.0).contains(&n)
        && n.fract() == 0.0
    {
        return NaiveDate::from_ymd_opt(1899, 12, 30)?
            .checked_add_days(chrono::Days::new(n as u64));
    }
    None
}

fn slash_date(t: &str, order: DateOrder) -> Option<NaiveDate> {
    let parts: Vec<&str> = t.split(['/', '-']).collect();
    let [a, b, y] = parts.as_slice() else {
        return None;
    };
    let (a, b, y): (u32, u32, i32) = (a.parse().ok()?, b.parse().ok()?, y.parse().ok()?);
    if y < 1000 {
        return None;
    }
    let day_first = a > 12 || (b <= 12 && order == DateOrder::DayFirst);
    let (d, m) = if day_first { (a, b) } else { (b, a) };
    NaiveDate::from_ymd_opt(y, m, d)
}

fn parse_naive_datetime(t: &str) -> Option<NaiveDateTime> {
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(d);
        }
    }
    None
}

/// A point in time: RFC 3339 (`2024-01-31T14:30:00+01:00`), or a date and
/// time without an offset (read as UTC), or a date alone (midnight UTC).
pub fn parse_datetime(t: &str, order: DateOrder) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    if let Some(d) = parse_naive_datetime(t) {
        return Some(d.and_utc());
    }
    parse_date(t, order).map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money() {
        let f = FieldMeta::of::<i64>("amount").money();
        let read = |t| coerce(&f, t, DateOrder::DayFirst);
        assert_eq!(read("$1,234.56"), Ok(Value::Int(123_456)));
        assert_eq!(read(" 7,05 EUR "), Ok(Value::Int(705)));
        assert_eq!(read("-3"), Ok(Value::Int(-300)));
        assert_eq!(read(""), Ok(Value::Null));
        assert_eq!(
            read("1.234"),
            Err("must be an amount with at most two decimals".to_owned())
        );
        assert_eq!(parse_money("12.5"), Some(1250));
    }

    #[test]
    fn dates() {
        let d = NaiveDate::from_ymd_opt(2024, 1, 31).unwrap();
        for t in [
            "2024-01-31",
            "31.01.2024",
            "31/01/2024",
            "01/31/2024",
            "31 Jan 2024",
            "Jan 31, 2024",
            "2024-01-31T10:00:00",
            "45322",
        ] {
            assert_eq!(parse_date(t, DateOrder::DayFirst), Some(d), "{t}");
        }
        let march = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
        assert_eq!(parse_date("03/04/2024", DateOrder::MonthFirst), Some(march));
        assert_eq!(parse_date("04/03/2024", DateOrder::DayFirst), Some(march));
        assert_eq!(parse_date("2024-02-30", DateOrder::DayFirst), None);
    }

    #[test]
    fn booleans_and_numbers() {
        assert_eq!(parse_bool("Yes"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(parse_int("12.0"), Some(12));
        assert_eq!(parse_int("12.5"), None);
        assert_eq!(parse_float("3,5"), Some(3.5));
    }
}
