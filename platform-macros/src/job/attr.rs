//! Parsing of the arguments of `#[job(...)]`.
//!
//! Every key is a `const` [`Symbol`]. A mistake in one argument is recorded
//! in the [`Ctxt`] and parsing goes on with the next, so that all mistakes
//! are reported at once.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, Lit, LitStr, Path, Token};

use crate::ctxt::Ctxt;
use crate::resource::attr::{Symbol, nearest, path_to_string, skip_value};
use crate::resource::naming::is_identifier;

pub(crate) const NAME: Symbol = Symbol::new("name");
pub(crate) const QUEUE: Symbol = Symbol::new("queue");
pub(crate) const MAX_ATTEMPTS: Symbol = Symbol::new("max_attempts");
pub(crate) const TIMEOUT: Symbol = Symbol::new("timeout");
pub(crate) const BACKOFF: Symbol = Symbol::new("backoff");
pub(crate) const CRATE: Symbol = Symbol::new("crate");

const KEYS: &[Symbol] = &[NAME, QUEUE, MAX_ATTEMPTS, TIMEOUT, BACKOFF, CRATE];

/// How a duration is written, for messages.
const DURATION_FORMS: &str = "a whole number followed by `ms`, `s`, `m` or `h`";

/// One argument's value, with the key as written for error spans.
#[derive(Debug)]
pub(crate) struct Arg<T> {
    key: Symbol,
    set: Option<(Path, T)>,
}

impl<T> Arg<T> {
    fn none(key: Symbol) -> Self {
        Self { key, set: None }
    }

    /// Records the value, or a "duplicate" error at the second key.
    fn set(&mut self, cx: &Ctxt, path: &Path, value: T) {
        if self.set.is_some() {
            cx.error_spanned_by(path, format!("duplicate job argument `{}`", self.key));
        } else {
            self.set = Some((path.clone(), value));
        }
    }

    /// The value, if the argument was given (and valid).
    pub(crate) fn get(&self) -> Option<&T> {
        self.set.as_ref().map(|(_, v)| v)
    }

    /// The key as written, if the argument was given (and valid).
    pub(crate) fn key(&self) -> Option<&Path> {
        self.set.as_ref().map(|(p, _)| p)
    }
}

/// A duration in milliseconds, from `"500ms"`, `"30s"`, `"5m"` or `"1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Millis(pub(crate) u64);

/// The arguments of `#[job(...)]`, each optional.
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) name: Arg<LitStr>,
    pub(crate) queue: Arg<LitStr>,
    pub(crate) max_attempts: Arg<u32>,
    pub(crate) timeout: Arg<Millis>,
    pub(crate) backoff: Arg<Millis>,
    pub(crate) krate: Arg<Path>,
}

impl Args {
    /// Parses the tokens inside `#[job(...)]` (empty for a bare `#[job]`).
    pub(crate) fn parse(cx: &Ctxt, tokens: TokenStream) -> Self {
        let mut this = Self {
            name: Arg::none(NAME),
            queue: Arg::none(QUEUE),
            max_attempts: Arg::none(MAX_ATTEMPTS),
            timeout: Arg::none(TIMEOUT),
            backoff: Arg::none(BACKOFF),
            krate: Arg::none(CRATE),
        };
        let parser = syn::meta::parser(|meta| this.parse_one(cx, &meta));
        if let Err(err) = parser.parse2(tokens) {
            cx.syn_error(err);
        }
        this
    }

    fn parse_one(&mut self, cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let path = &meta.path;
        if path == NAME {
            if let Some(s) = lit_str(cx, NAME, "\"send_welcome\"", meta)? {
                if s.value().is_empty() || s.value().chars().any(char::is_whitespace) {
                    cx.error_spanned_by(
                        &s,
                        "job argument `name` must be one word without spaces: `name = \"send_welcome\"`",
                    );
                } else {
                    self.name.set(cx, path, s);
                }
            }
        } else if path == QUEUE {
            if let Some(s) = lit_str(cx, QUEUE, "\"critical\"", meta)? {
                if is_identifier(&s.value()) {
                    self.queue.set(cx, path, s);
                } else {
                    cx.error_spanned_by(
                        &s,
                        format!(
                            "job argument `queue` must name one queue as a plain lower-case \
                             identifier (`critical`, `default`, `low`, `scheduled` or a queue \
                             added with `Jobs::queue`), not {:?}",
                            s.value()
                        ),
                    );
                }
            }
        } else if path == MAX_ATTEMPTS {
            if let Some(n) = max_attempts(cx, meta)? {
                self.max_attempts.set(cx, path, n);
            }
        } else if path == TIMEOUT || path == BACKOFF {
            let key = if path == TIMEOUT { TIMEOUT } else { BACKOFF };
            if let Some(d) = duration(cx, key, meta)? {
                let slot = if key == TIMEOUT {
                    &mut self.timeout
                } else {
                    &mut self.backoff
                };
                slot.set(cx, path, d);
            }
        } else if path == CRATE {
            if let Some(s) = lit_str(cx, CRATE, "\"platform_jobs\"", meta)? {
                match s.parse::<Path>() {
                    Ok(p) => self.krate.set(cx, path, p),
                    Err(_) => {
                        cx.error_spanned_by(&s, format!("`crate = {:?}` is not a path", s.value()));
                    }
                }
            }
        } else {
            let written = path_to_string(path);
            let hint = nearest(&written, KEYS)
                .map(|(_, k)| format!("; did you mean `{k}`?"))
                .unwrap_or_else(|| {
                    "; expected `name`, `queue`, `max_attempts`, `timeout`, `backoff` or `crate`"
                        .to_owned()
                });
            cx.error_spanned_by(path, format!("unknown job argument `{written}`{hint}"));
            skip_value(meta.input)?;
        }
        Ok(())
    }
}

/// The expression after `key =`; `None` (with an error recorded) when there
/// is no `=`.
fn value_expr(
    cx: &Ctxt,
    key: Symbol,
    example: &str,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<Option<Expr>> {
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(
            &meta.path,
            format!("job argument `{key}` expects a value: `{key} = {example}`"),
        );
        skip_value(meta.input)?;
        return Ok(None);
    }
    let mut expr: Expr = meta.value()?.parse()?;
    // Tokens coming through `macro_rules!` may be wrapped in invisible groups.
    while let Expr::Group(group) = expr {
        expr = *group.expr;
    }
    Ok(Some(expr))
}

fn lit_str(
    cx: &Ctxt,
    key: Symbol,
    example: &str,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<Option<LitStr>> {
    let Some(expr) = value_expr(cx, key, example, meta)? else {
        return Ok(None);
    };
    if let Expr::Lit(syn::ExprLit {
        lit: Lit::Str(s), ..
    }) = expr
    {
        return Ok(Some(s));
    }
    cx.error_spanned_by(
        &expr,
        format!("job argument `{key}` expects a string literal: `{key} = {example}`"),
    );
    Ok(None)
}

/// `max_attempts = N`, N at least 1.
fn max_attempts(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<u32>> {
    let Some(expr) = value_expr(cx, MAX_ATTEMPTS, "5", meta)? else {
        return Ok(None);
    };
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(n), ..
    }) = &expr
    else {
        cx.error_spanned_by(
            &expr,
            "job argument `max_attempts` expects an integer literal: `max_attempts = 5`",
        );
        return Ok(None);
    };
    match n.base10_parse::<u32>() {
        Ok(0) => cx.error_spanned_by(
            n,
            "job argument `max_attempts` must be at least 1 (the first run counts)",
        ),
        Ok(v) => return Ok(Some(v)),
        Err(_) => cx.error_spanned_by(
            n,
            format!(
                "job argument `max_attempts` must be a whole number from 1 to {}",
                u32::MAX
            ),
        ),
    }
    Ok(None)
}

/// `timeout = "30s"`, `backoff = "500ms"`.
fn duration(cx: &Ctxt, key: Symbol, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Millis>> {
    let example = if key == TIMEOUT { "\"30s\"" } else { "\"2s\"" };
    let Some(s) = lit_str(cx, key, example, meta)? else {
        return Ok(None);
    };
    match parse_duration(&s.value()) {
        Some(Millis(0)) if key == TIMEOUT => {
            cx.error_spanned_by(
                &s,
                "job argument `timeout` must be more than zero: every run would time out",
            );
            Ok(None)
        }
        Some(d) => Ok(Some(d)),
        None => {
            cx.error_spanned_by(
                &s,
                format!(
                    "job argument `{key}` expects a duration such as {example}, \
                     {DURATION_FORMS}, not {:?}",
                    s.value()
                ),
            );
            Ok(None)
        }
    }
}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"` in milliseconds; `None` when malformed
/// or too long for a `u64` of milliseconds.
pub(crate) fn parse_duration(s: &str) -> Option<Millis> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let factor: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(factor).map(Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Millis(500)));
        assert_eq!(parse_duration("30s"), Some(Millis(30_000)));
        assert_eq!(parse_duration("5m"), Some(Millis(300_000)));
        assert_eq!(parse_duration("1h"), Some(Millis(3_600_000)));
        assert_eq!(parse_duration("0s"), Some(Millis(0)));
        for bad in [
            "", "30", "s", "1.5s", "-1s", " 30s", "30 s", "30sec", "1d", "1m30s", "30S",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration("99999999999999999999h"), None);
        assert_eq!(parse_duration("18446744073709551615h"), None);
    }
}
