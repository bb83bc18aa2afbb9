//! Code generation for a checked container.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Path;

use super::ast::{Container, Field};
use super::attr::SKIP;

/// The path of the core crate: `crate = "..."` or `::platform_core`.
pub(crate) fn krate(path: Option<&Path>) -> Path {
    path.cloned().unwrap_or_else(|| {
        let ident = syn::Ident::new("platform_core", Span::call_site());
        syn::parse_quote!(::#ident)
    })
}

/// The `impl Resource` and its registration.
pub(crate) fn expand(cont: &Container<'_>) -> TokenStream {
    let krate = krate(cont.attrs.krate.get());
    let private = quote!(#krate::__private);
    let ident = cont.ident;
    let meta = resource_meta(cont, &private);
    let fields = cont.stored_fields().map(|f| field_meta(f, &private));

    // Every use of a field's type goes through `<T as FieldValue>` at the
    // type's span, so an unsupported type is one error (rustc merges the
    // identical diagnostics) rather than one per use.
    let stored: Vec<&Field<'_>> = cont.stored_fields().collect();
    let to_values = stored.iter().map(|f| {
        let member = f.ident;
        let field_value = field_value(f, &private);
        quote_spanned!(f.ty_span()=> #field_value::to_value(&self.#member))
    });
    let inits = cont.fields.iter().map(|f| {
        let member = f.ident;
        if f.is_stored() {
            let name = f.name();
            let field_value = field_value(f, &private);
            quote_spanned! {f.ty_span()=>
                #member: match #field_value::from_value(
                    ::core::option::Option::unwrap_or(
                        ::core::iter::Iterator::next(&mut __values),
                        #private::Value::Null,
                    ),
                ) {
                    ::core::result::Result::Ok(__value) => __value,
                    ::core::result::Result::Err(__error) => {
                        return ::core::result::Result::Err(#private::FromValuesError {
                            field: #name,
                            error: __error,
                        });
                    }
                }
            }
        } else {
            quote_spanned!(f.ty_span()=> #member: ::core::default::Default::default())
        }
    });

    quote! {
        #[allow(unused_qualifications)]
        const _: () = {
            // A `const` item, so that the field expressions need not be
            // promotable to `'static`.
            const __FIELDS: &[#private::FieldMeta] = &[#(#fields),*];

            #[automatically_derived]
            impl #private::Resource for #ident {
                const META: #private::ResourceMeta = #meta;

                fn to_values(&self) -> ::std::vec::Vec<#private::Value> {
                    ::std::vec![#(#to_values),*]
                }

                fn from_values(
                    __values: ::std::vec::Vec<#private::Value>,
                ) -> ::core::result::Result<Self, #private::FromValuesError> {
                    let mut __values = ::core::iter::IntoIterator::into_iter(__values);
                    ::core::result::Result::Ok(Self { #(#inits,)* })
                }
            }

            #private::inventory::submit! {
                #private::Registration::of::<#ident>()
            }
        };
    }
}

fn resource_meta(cont: &Container<'_>, private: &TokenStream) -> TokenStream {
    let attrs = &cont.attrs;
    let (name, plural, table) = (cont.name(), cont.plural(), cont.table());
    let (label, plural_label) = (cont.label(), cont.plural_label());
    let mut meta = quote! {
        #private::ResourceMeta::new(#name, #plural, #table)
            .label(#label, #plural_label)
            .fields(__FIELDS)
    };
    if let Some(search) = attrs.search.get() {
        let names = search
            .iter()
            .map(|i| syn::ext::IdentExt::unraw(i).to_string());
        meta.extend(quote!(.search(&[#(#names),*])));
    }
    if attrs.cache.is_set() {
        meta.extend(quote!(.cache()));
    }
    if attrs.soft_delete.is_set() {
        meta.extend(quote!(.soft_delete()));
    }
    if attrs.audit.get() == Some(&false) {
        meta.extend(quote!(.no_audit()));
    }
    if attrs.api.get() == Some(&false) {
        meta.extend(quote!(.no_api()));
    }
    if attrs.admin.get() == Some(&false) {
        meta.extend(quote!(.no_admin()));
    }
    if attrs.export.get() == Some(&false) {
        meta.extend(quote!(.no_export()));
    }
    if let Some(import) = attrs.import.get() {
        if !import.enabled {
            meta.extend(quote!(.no_import()));
        }
        if let Some(key) = import.key.get() {
            let key = syn::ext::IdentExt::unraw(key).to_string();
            meta.extend(quote!(.import_by(#key)));
        }
    }
    if let Some(policy) = attrs.policy.get() {
        meta.extend(quote!(.policy(#policy)));
    }
    if let Some(nav) = attrs.navigation.get() {
        let option = |s: Option<&syn::LitStr>| match s {
            Some(s) => quote!(::core::option::Option::Some(#s)),
            None => quote!(::core::option::Option::None),
        };
        let group = option(nav.group.get());
        let icon = option(nav.icon.get());
        let sort = nav.sort.get().copied().unwrap_or(0);
        meta.extend(quote! {
            .navigation(#private::Navigation { group: #group, icon: #icon, sort: #sort })
        });
    }
    meta
}

fn field_meta(f: &Field<'_>, private: &TokenStream) -> TokenStream {
    let attrs = &f.attrs;
    let name = f.name();
    let label = f.label();
    // The bound `T: FieldValue` is reported at the field's type.
    let field_value = field_value(f, private);
    // `FieldMeta::of::<T>`, spelled with `<T as FieldValue>` (see `expand`).
    let mut meta = quote_spanned! {f.ty_span()=>
        {
            let __field = #private::FieldMeta::new(#name, #field_value::TYPE);
            if #field_value::NULLABLE { __field.nullable() } else { __field }
        }
    };
    meta.extend(quote!(.label(#label)));
    for (key, attr) in attrs.flags() {
        // `skip` never reaches here; `text` is emitted before `max_length`.
        if attr.is_set() && key != SKIP {
            let method = syn::Ident::new(key.as_str(), Span::call_site());
            meta.extend(quote!(.#method()));
        }
    }
    if attrs.audit.get() == Some(&false) {
        meta.extend(quote!(.no_audit()));
    }
    if attrs.export.get() == Some(&false) {
        meta.extend(quote!(.no_export()));
    }
    if attrs.import.get() == Some(&false) {
        meta.extend(quote!(.no_import()));
    }
    if let Some(column) = attrs.column.get() {
        meta.extend(quote!(.column(#column)));
    }
    if let Some(max) = attrs.max_length.get() {
        let max = max.base10_parse::<u32>().unwrap_or(0);
        meta.extend(quote!(.max_length(#max)));
    }
    if let Some(choices) = attrs.choices.get() {
        meta.extend(quote!(.choices(&[#(#choices),*])));
    }
    if let Some(target) = attrs.belongs_to.get() {
        // A target that is not a resource fails here, with the trait's
        // `on_unimplemented` note, at the type the user wrote.
        let span = syn::spanned::Spanned::span(target);
        let target = quote_spanned!(span=> <#target as #private::Resource>::meta);
        meta.extend(quote!(.belongs_to(#target)));
    }
    meta
}

/// `<T as FieldValue>` for the field's type `T`, spanned at the type.
fn field_value(f: &Field<'_>, private: &TokenStream) -> TokenStream {
    let ty = f.ty();
    quote_spanned!(f.ty_span()=> <#ty as #private::FieldValue>)
}
