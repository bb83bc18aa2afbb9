//! Amounts of money held as whole cents (an `i64` field marked
//! [`FieldMeta::money`](crate::resource::FieldMeta::money)): reading the
//! text people type or paste, and writing amounts back for people and for
//! form inputs.
//!
//! One reader serves the admin panel's forms and filters and the
//! spreadsheet import, so an amount that one accepts the other accepts too.
//!
//! ```
//! use platform_core::money;
//!
//! assert_eq!(money::parse("$1,234.5"), Some(123_450));
//! assert_eq!(money::parse("7,05 EUR"), Some(705));
//! assert_eq!(money::format(-123_456), "-1,234.56");
//! assert_eq!(money::format_plain(-123_456), "-1234.56");
//! ```

/// Currency symbols [`parse`] passes over, wherever they stand.
const SYMBOLS: [char; 4] = ['$', '€', '£', '¥'];

/// Currency codes [`parse`] passes over, in upper or lower case.
const CODES: [&str; 8] = ["EUR", "USD", "GBP", "CHF", "eur", "usd", "gbp", "chf"];

/// Reads an amount as cents, or `None` when `text` is not one.
///
/// What it accepts:
/// - a whole amount or one with one or two decimals: `12`, `12.5`, `12.50`,
///   `.5`, `12.`;
/// - a sign: `-3`, `+3`;
/// - thousands separators: `1,234.56`, `1 234.56`, `1_234`, a no-break
///   space;
/// - a decimal comma: a single comma with no point and at most two digits
///   after it (`7,05`, `12,5`); any other comma groups thousands (`1,234`);
/// - a currency symbol (`$`, `€`, `£`, `¥`) or code (`EUR`, `USD`, `GBP`,
///   `CHF`, upper or lower case) before or after: `$1,234.5`, `€ 7.05`,
///   `7,05 EUR`;
/// - white space around it.
///
/// What it refuses: more than two decimals (`1.234`, which would lose
/// cents), an empty amount (`""`, `"."`, `"-"`), other characters (`abc`,
/// `1e3`), and an amount too large for `i64` cents.
#[must_use]
pub fn parse(text: &str) -> Option<i64> {
    let mut s: String = text
        .trim()
        .chars()
        .filter(|c| !SYMBOLS.contains(c) && !matches!(c, ' ' | '_' | '\u{a0}'))
        .collect();
    for code in CODES {
        s = s.replace(code, "");
    }
    if !s.contains('.')
        && let Some((a, b)) = s.rsplit_once(',')
        && b.len() <= 2
        && !a.contains(',')
    {
        s = format!("{a}.{b}");
    }
    let s: String = s.chars().filter(|c| *c != ',').collect();
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(&s)),
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 2
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    let cents = whole.checked_mul(100)?.checked_add(frac)?;
    Some(if neg { -cents } else { cents })
}

/// Cents as an amount for people, grouped in thousands: `-123456` as
/// `-1,234.56`.
#[must_use]
pub fn format(cents: i64) -> String {
    let (sign, abs) = sign_and_abs(cents);
    format!("{sign}{}.{:02}", group_thousands(abs / 100), abs % 100)
}

/// Cents as a form input's value, with no grouping: `-123456` as
/// `-1234.56` ([`parse`] reads it back).
#[must_use]
pub fn format_plain(cents: i64) -> String {
    let (sign, abs) = sign_and_abs(cents);
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A whole number grouped in thousands with commas: `1234567` as
/// `1,234,567`.
#[must_use]
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn sign_and_abs(cents: i64) -> (&'static str, u64) {
    (if cents < 0 { "-" } else { "" }, cents.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_amounts() {
        assert_eq!(parse("12"), Some(1200));
        assert_eq!(parse("12.5"), Some(1250));
        assert_eq!(parse("12.50"), Some(1250));
        assert_eq!(parse("12.05"), Some(1205));
        assert_eq!(parse(".5"), Some(50));
        assert_eq!(parse("12."), Some(1200));
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("  12.5\t"), Some(1250));
    }

    #[test]
    fn signs() {
        assert_eq!(parse("-3"), Some(-300));
        assert_eq!(parse("+3"), Some(300));
        assert_eq!(parse("-0.05"), Some(-5));
        assert_eq!(parse("-$1,234.56"), Some(-123_456));
        assert_eq!(parse("--3"), None);
        assert_eq!(parse("3-"), None);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(parse("1,234.56"), Some(123_456));
        assert_eq!(parse("1,234"), Some(123_400));
        assert_eq!(parse("1,234,567"), Some(123_456_700));
        assert_eq!(parse("1 234.56"), Some(123_456));
        assert_eq!(parse("1\u{a0}234.56"), Some(123_456));
        assert_eq!(parse("1_000"), Some(100_000));
    }

    #[test]
    fn decimal_comma() {
        assert_eq!(parse("7,05"), Some(705));
        assert_eq!(parse("12,5"), Some(1250));
        assert_eq!(parse(",5"), Some(50));
        // Three digits after the only comma: thousands.
        assert_eq!(parse("1,234"), Some(123_400));
        // Two commas: both group thousands.
        assert_eq!(parse("1,234,56"), Some(12_345_600));
        // A point as well: the comma groups thousands.
        assert_eq!(parse("1,23.4"), Some(12_340));
    }

    #[test]
    fn currency_symbols_and_codes() {
        assert_eq!(parse("$1,234.56"), Some(123_456));
        assert_eq!(parse("€ 7.05"), Some(705));
        assert_eq!(parse("£3"), Some(300));
        assert_eq!(parse("¥100"), Some(10_000));
        assert_eq!(parse("7,05 EUR"), Some(705));
        assert_eq!(parse("12 usd"), Some(1200));
        assert_eq!(parse("GBP 1.5"), Some(150));
        assert_eq!(parse("CHF 2"), Some(200));
    }

    #[test]
    fn refused() {
        assert_eq!(parse("1.234"), None);
        assert_eq!(parse("1.2.3"), None);
        assert_eq!(parse("abc"), None);
        assert_eq!(parse("1e3"), None);
        assert_eq!(parse("12 JPY"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("   "), None);
        assert_eq!(parse("."), None);
        assert_eq!(parse("-"), None);
        assert_eq!(parse("$"), None);
        assert_eq!(parse("99999999999999999999"), None);
        assert_eq!(parse("92233720368547758.08"), None);
    }

    #[test]
    fn limits() {
        assert_eq!(parse("92233720368547758.07"), Some(i64::MAX));
        assert_eq!(parse("-92233720368547758.07"), Some(-i64::MAX));
    }

    #[test]
    fn formatting() {
        assert_eq!(format(123_456), "1,234.56");
        assert_eq!(format(-5), "-0.05");
        assert_eq!(format(0), "0.00");
        assert_eq!(format(100_000_000), "1,000,000.00");
        assert_eq!(format(i64::MIN), "-92,233,720,368,547,758.08");
        assert_eq!(format_plain(-123_456), "-1234.56");
        assert_eq!(format_plain(7), "0.07");
        assert_eq!(format_plain(-1205), "-12.05");
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(100), "100");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn round_trips() {
        for cents in [0, 1, -1, 5, -5, 1205, -123_456, 100_000_000, i64::MAX] {
            assert_eq!(parse(&format(cents)), Some(cents), "{cents}");
            assert_eq!(parse(&format_plain(cents)), Some(cents), "{cents}");
        }
    }
}
