//! Shared value checks used by every writer (the write path, the user
//! accounts, the sign-in pages), so that the API, the panel, imports and the
//! command line accept exactly the same values.

/// The longest e-mail address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Whether `s` is a valid e-mail address, as the WHATWG HTML standard
/// defines it for `<input type="email">`: `local@domain`, where the local
/// part is one or more of `A-Z a-z 0-9 . ! # $ % & ' * + / = ? ^ _ ` { | }
/// ~ -` and the domain is dot-separated labels of letters, digits and
/// hyphens (1 to 63 characters, no leading or trailing hyphen); at most
/// [`MAX_EMAIL_LEN`] characters. No quoted local parts, comments,
/// whitespace or IP literals.
///
/// Written by hand: the standard's definition is one regular expression,
/// and pulling a regex engine or an RFC 5322 parser (which accepts quoted
/// strings such as `"a b"@x`, which we refuse on purpose) for it would be
/// the wrong trade.
///
/// ```
/// use platform_core::validate::is_email;
/// assert!(is_email("ada@example.com"));
/// assert!(is_email("o'brien+tag@mail.example.co.uk"));
/// assert!(!is_email("not an email"));
/// assert!(!is_email("a\"><svg/onload=alert(1)>@x.com"));
/// ```
pub fn is_email(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_EMAIL_LEN {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b));
    local_ok
        && !domain.is_empty()
        && domain.split('.').all(|label| {
            let b = label.as_bytes();
            (1..=63).contains(&b.len())
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in [
            "a@b",
            "ada@example.com",
            "x.y-z_1@sub.example-domain.org",
            "!#$%&'*+/=?^_`{|}~-@x.io",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "@x.com",
            "a@",
            "a@@x.com",
            "a@x..com",
            "a@-x.com",
            "a@x-.com",
            "a b@x.com",
            "a@x.com ",
            "\"a\"@x.com",
            "a\"><svg/onload=alert(1)>@x.com",
            "a@[127.0.0.1]",
            "ü@x.com",
            "a@x.com\n",
        ] {
            assert!(!is_email(bad), "{bad:?}");
        }
        let long = format!("{}@x.com", "a".repeat(MAX_EMAIL_LEN));
        assert!(!is_email(&long));
        let label = format!("a@{}.com", "b".repeat(64));
        assert!(!is_email(&label));
    }
}
