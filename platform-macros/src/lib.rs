//! The procedural macros of Platform: `#[derive(Resource)]`,
//! `embed_migrations!` and `#[job]`.
//!
//! Do not depend on this crate: use the re-exports, `platform_core::Resource`
//! and `platform_core::embed_migrations!` in `platform-core`, and
//! `platform_jobs::job` in `platform-jobs`.

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

mod ctxt;
mod job;
mod migrations;
mod resource;

#[doc = include_str!("docs/derive_resource.md")]
#[proc_macro_derive(Resource, attributes(resource))]
pub fn derive_resource(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    resource::derive(&input).into()
}

#[doc = include_str!("docs/embed_migrations.md")]
#[proc_macro]
pub fn embed_migrations(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as migrations::Input);
    migrations::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[doc = include_str!("docs/job.md")]
#[proc_macro_attribute]
pub fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    job::expand(args.into(), item.into()).into()
}
