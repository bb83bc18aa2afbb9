//! Default names and labels derived from Rust identifiers.

/// `InvoiceLine` -> `invoice_line`, `HTTPRequest` -> `http_request`.
pub(crate) fn snake_case(ident: &str) -> String {
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                // The last capital of an acronym starts the next word: `HTTPRequest`.
                Some(p) if p.is_uppercase() => next.is_some_and(char::is_lowercase),
                Some(_) => false,
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A simple English plural: `y` -> `ies` after a consonant; `s`, `x`, `z`,
/// `ch`, `sh` -> `+es`; otherwise `+s`. Works on names and labels alike.
pub(crate) fn plural(word: &str) -> String {
    let lower = word.to_lowercase();
    let mut rev = lower.chars().rev();
    let last = rev.next();
    let before = rev.next();
    match (before, last) {
        (Some(b), Some('y')) if !"aeiou".contains(b) && b.is_alphabetic() => {
            format!("{}ies", &word[..word.len() - 1])
        }
        (_, Some('s' | 'x' | 'z')) | (Some('c' | 's'), Some('h')) => format!("{word}es"),
        _ => {
            let s = if word.chars().last().is_some_and(char::is_uppercase) {
                "S"
            } else {
                "s"
            };
            format!("{word}{s}")
        }
    }
}

/// The label of a struct: its words, the first capitalised, the rest in
/// lower case (`InvoiceLine` -> `Invoice line`).
pub(crate) fn struct_label(ident: &str) -> String {
    capitalize(&snake_case(ident).replace('_', " "))
}

/// The label of a field: `_` becomes a space and the first letter is
/// capitalised, without a trailing `_id` or `_cents` (`amount_cents` -> `Amount`,
/// `customer_id` -> `Customer`).
pub(crate) fn field_label(name: &str) -> String {
    // `customer_id` reads "Customer", `amount_cents` "Amount" (as Django
    // names a foreign key after its relation).
    let stem = ["_id", "_cents"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix).filter(|s| !s.is_empty()))
        .unwrap_or(name);
    capitalize(stem.replace('_', " ").trim())
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether `s` is a plain lower-case SQL identifier, `[a-z_][a-z0-9_]*`, of at
/// most 63 bytes (the platform's registry applies the same rule).
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_splits_words_and_acronyms() {
        assert_eq!(snake_case("Invoice"), "invoice");
        assert_eq!(snake_case("InvoiceLine"), "invoice_line");
        assert_eq!(snake_case("HTTPRequest"), "http_request");
        assert_eq!(snake_case("ApiKey2Fa"), "api_key2_fa");
        assert_eq!(snake_case("Item2"), "item2");
        assert_eq!(snake_case("ABC"), "abc");
        assert_eq!(snake_case("Already_Snake"), "already_snake");
        assert_eq!(snake_case("x"), "x");
    }

    #[test]
    fn plurals() {
        assert_eq!(plural("invoice"), "invoices");
        assert_eq!(plural("category"), "categories");
        assert_eq!(plural("day"), "days");
        assert_eq!(plural("key"), "keys");
        assert_eq!(plural("address"), "addresses");
        assert_eq!(plural("box"), "boxes");
        assert_eq!(plural("quiz"), "quizes");
        assert_eq!(plural("batch"), "batches");
        assert_eq!(plural("wish"), "wishes");
        assert_eq!(plural("month"), "months");
        assert_eq!(plural("invoice_line"), "invoice_lines");
        assert_eq!(plural("Delivery"), "Deliveries");
        assert_eq!(plural("Invoice line"), "Invoice lines");
        assert_eq!(plural("y"), "ys");
    }

    #[test]
    fn labels() {
        assert_eq!(struct_label("Invoice"), "Invoice");
        assert_eq!(struct_label("InvoiceLine"), "Invoice line");
        assert_eq!(struct_label("HTTPRequest"), "Http request");
        assert_eq!(
            plural(&struct_label("DeliveryCategory")),
            "Delivery categories"
        );
        assert_eq!(field_label("amount_cents"), "Amount");
        assert_eq!(field_label("customer_id"), "Customer");
        assert_eq!(field_label("id"), "Id");
        assert_eq!(field_label("_id"), "Id");
        assert_eq!(field_label("id"), "Id");
        assert_eq!(field_label("_private"), "Private");
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("invoices"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("Invoices"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier("1a"));
        assert!(!is_identifier("a;drop"));
        assert!(!is_identifier(&"a".repeat(64)));
    }
}
