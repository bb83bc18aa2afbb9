//! Parsing of the struct's `import = false` / `import(key = field)`.

use syn::meta::ParseNestedMeta;
use syn::{Expr, Ident, Token};

use super::attr::{Attr, IMPORT, KEY, KeyName, path_to_string, skip_value, value_expr};
use crate::ctxt::Ctxt;

/// The struct's `import` key.
#[derive(Debug)]
pub(crate) struct ImportAttr {
    /// `import = true` or `import(...)`: on; `import = false`: off.
    pub(crate) enabled: bool,
    /// `import(key = number)`: the field imports upsert by.
    pub(crate) key: Attr<Ident>,
}

const HINT: &str = "`import = false` or `import(key = number)`";

/// `import = true|false` or `import(key = field)`.
pub(crate) fn import(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<ImportAttr>> {
    let mut import = ImportAttr {
        enabled: true,
        key: Attr::none(KeyName::nested(IMPORT, KEY)),
    };
    if meta.input.peek(Token![=]) {
        let Some(expr) = value_expr(cx, IMPORT.into(), "false", meta)? else {
            return Ok(None);
        };
        if let Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Bool(b),
            ..
        }) = &expr
        {
            import.enabled = b.value;
            return Ok(Some(import));
        }
        cx.error_spanned_by(
            &expr,
            format!("resource attribute `import` expects `true` or `false`: {HINT}"),
        );
        return Ok(None);
    }
    if !meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(
            &meta.path,
            format!("resource attribute `import` expects a value or a list: {HINT}"),
        );
        skip_value(meta.input)?;
        return Ok(None);
    }
    let parsed = meta.parse_nested_meta(|inner| {
        let path = &inner.path;
        if path == KEY {
            if let Some(expr) = value_expr(cx, KeyName::nested(IMPORT, KEY), "number", &inner)? {
                match &expr {
                    Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                        if let Some(ident) = p.path.get_ident() {
                            import.key.set(cx, path, ident.clone());
                        }
                    }
                    _ => cx.error_spanned_by(
                        &expr,
                        "`import(key)` expects a field name: `import(key = number)`",
                    ),
                }
            }
        } else {
            cx.error_spanned_by(
                path,
                format!(
                    "unknown resource attribute `import({})`: expected `key`",
                    path_to_string(path)
                ),
            );
            skip_value(inner.input)?;
        }
        Ok(())
    });
    if let Err(err) = parsed {
        cx.syn_error(err);
    }
    Ok(Some(import))
}
