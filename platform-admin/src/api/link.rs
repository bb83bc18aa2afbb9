//! Links the API hands out: the next page of a list, a created record.

use std::fmt::Write;

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn encode(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `path?query` with the parameters in `drop` removed and `set` appended.
pub(crate) fn with_params<'a>(
    path: &str,
    params: impl Iterator<Item = (&'a str, &'a str)>,
    drop: &[&str],
    set: &[(&str, &str)],
) -> String {
    let mut out = String::with_capacity(path.len() + 128);
    out.push_str(path);
    let mut sep = '?';
    let kept = params.filter(|(k, _)| !drop.contains(k));
    let mut put = |k: &str, v: &str| {
        out.push(sep);
        sep = '&';
        encode(&mut out, k);
        out.push('=');
        encode(&mut out, v);
    };
    for (k, v) in kept {
        put(k, v);
    }
    for (k, v) in set {
        put(k, v);
    }
    out
}

/// `path/segment`, the segment percent-encoded.
pub(crate) fn child(path: &str, segment: &str) -> String {
    let mut out = String::with_capacity(path.len() + segment.len() + 1);
    out.push_str(path.trim_end_matches('/'));
    out.push('/');
    encode(&mut out, segment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links() {
        let params = [
            ("page[size]", "5"),
            ("page[after]", "old"),
            ("search", "a b&c"),
        ];
        let url = with_params(
            "/api/invoices",
            params.iter().copied(),
            &["page[after]"],
            &[("page[after]", "eyJ-_")],
        );
        assert_eq!(
            url,
            "/api/invoices?page%5Bsize%5D=5&search=a%20b%26c&page%5Bafter%5D=eyJ-_"
        );
        assert_eq!(child("/api/invoices", "7"), "/api/invoices/7");
    }
}
