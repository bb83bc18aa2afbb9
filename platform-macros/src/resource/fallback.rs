//! What to emit when the input has errors (thiserror's `fallback.rs`): the
//! `compile_error!`s plus an `impl Resource` whose bodies never run, so that
//! code using the type does not add "trait not implemented" errors.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, Path};

/// The placeholder impl, or nothing for a generic input (whose impl could
/// not be written without errors of its own).
pub(crate) fn expand(input: &DeriveInput, krate: &Path) -> TokenStream {
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        return TokenStream::new();
    }
    let ident = &input.ident;
    let private = quote!(#krate::__private);
    quote! {
        #[allow(unused_qualifications)]
        const _: () = {
            #[automatically_derived]
            impl #private::Resource for #ident {
                const META: #private::ResourceMeta = #private::ResourceMeta::new("", "", "");

                fn to_values(&self) -> ::std::vec::Vec<#private::Value> {
                    ::core::unreachable!()
                }

                fn from_values(
                    __values: ::std::vec::Vec<#private::Value>,
                ) -> ::core::result::Result<Self, #private::FromValuesError> {
                    ::core::unreachable!()
                }
            }
        };
    }
}
