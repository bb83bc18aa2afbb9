//! `#[derive(Resource)]`: parse ([`attr`], [`ast`]), check ([`check`]),
//! then generate ([`expand`]) or, on error, fall back ([`fallback`]).

mod ast;
pub(crate) mod attr;
mod attr_exchange;
mod check;
mod check_exchange;
mod expand;
mod fallback;
pub(crate) mod naming;

use proc_macro2::TokenStream;
use syn::DeriveInput;

use crate::ctxt::Ctxt;

/// Expands `#[derive(Resource)]` on `input`.
pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let attrs = attr::ContainerAttrs::from_ast(&cx, &input.attrs);
    let krate = expand::krate(attrs.krate.get());
    let cont = ast::Container::from_ast(&cx, input, attrs);
    if let Some(cont) = &cont {
        check::check(&cx, cont);
    }
    match (cx.check(), cont) {
        (Ok(()), Some(cont)) => expand::expand(&cont),
        (result, _) => {
            let mut tokens = result
                .err()
                .map(|e| e.to_compile_error())
                .unwrap_or_default();
            tokens.extend(fallback::expand(input, &krate));
            tokens
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(input: DeriveInput) -> String {
        derive(&input).to_string()
    }

    #[test]
    fn expands_to_the_public_builders() {
        let out = expand(syn::parse_quote! {
            #[resource(search(number), cache, audit = false, navigation(group = "Billing", sort = 2))]
            struct InvoiceLine {
                #[resource(primary_key)]
                id: i64,
                #[resource(sortable, max_length = 20, choices("a", "b"))]
                number: String,
                #[resource(belongs_to = Invoice, column = "invoice")]
                invoice_id: i64,
                #[resource(skip)]
                scratch: u8,
            }
        });
        for expected in [
            "const _ : () =",
            "# [automatically_derived] impl :: platform_core :: __private :: Resource for InvoiceLine",
            "ResourceMeta :: new (\"invoice_line\" , \"invoice_lines\" , \"invoice_lines\") . label (\"Invoice line\" , \"Invoice lines\")",
            ". search (& [\"number\"]) . cache () . no_audit ()",
            "Navigation { group : :: core :: option :: Option :: Some (\"Billing\") , icon : :: core :: option :: Option :: None , sort : 2i32 }",
            "FieldMeta :: new (\"number\" , < String as :: platform_core :: __private :: FieldValue > :: TYPE)",
            ". label (\"Number\") . sortable () . max_length (20u32) . choices (& [\"a\" , \"b\"])",
            ". column (\"invoice\") . belongs_to (< Invoice as :: platform_core :: __private :: Resource > :: meta)",
            "scratch : :: core :: default :: Default :: default ()",
            ":: platform_core :: __private :: inventory :: submit !",
            "Registration :: of :: < InvoiceLine > ()",
        ] {
            assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
        }
        assert!(!out.contains("\"scratch\""), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn exchange_switches() {
        let out = expand(syn::parse_quote! {
            #[resource(export = false, import(key = number))]
            struct Invoice {
                #[resource(primary_key)]
                id: i64,
                #[resource(unique)]
                number: String,
                #[resource(export = false, import = false)]
                secret: String,
            }
        });
        assert!(!out.contains("compile_error"), "{out}");
        assert!(
            out.contains(". no_export () . import_by (\"number\")"),
            "{out}"
        );
        assert!(
            out.contains(". label (\"Secret\") . no_export () . no_import ()"),
            "{out}"
        );
        let out = expand(syn::parse_quote! {
            #[resource(import = false)]
            struct Note {
                #[resource(primary_key)]
                id: i64,
            }
        });
        assert!(out.contains(". no_import ()"), "{out}");
        assert!(!out.contains("no_export"), "{out}");
    }

    #[test]
    fn crate_path_replaces_platform_core() {
        let out = expand(syn::parse_quote! {
            #[resource(crate = "host::platform")]
            struct Note {
                #[resource(primary_key)]
                id: i64,
            }
        });
        assert!(
            out.contains("host :: platform :: __private :: Resource"),
            "{out}"
        );
        assert!(!out.contains("platform_core"), "{out}");
    }

    #[test]
    fn errors_come_with_a_fallback_impl() {
        let out = expand(syn::parse_quote! {
            #[resource(tabel = "x")]
            struct Invoice {
                #[resource(sortabel)]
                id: i64,
            }
        });
        assert_eq!(out.matches("compile_error").count(), 3, "{out}");
        assert!(out.contains("unknown resource attribute `tabel`"), "{out}");
        assert!(
            out.contains("unknown resource attribute `sortabel`"),
            "{out}"
        );
        assert!(out.contains("has no primary key"), "{out}");
        assert!(
            out.contains("ResourceMeta :: new (\"\" , \"\" , \"\")"),
            "{out}"
        );
        assert!(out.contains(":: core :: unreachable ! ()"), "{out}");
        assert!(!out.contains("inventory"), "{out}");
    }

    #[test]
    fn generic_input_has_no_fallback() {
        let out = expand(syn::parse_quote! {
            struct Wrapper<T> {
                id: T,
            }
        });
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
        assert!(!out.contains("impl"), "{out}");
    }
}
