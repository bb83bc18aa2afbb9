//! `#[job]` on `impl Job for Type`: parse the arguments ([`attr`]) and the
//! block ([`ast`]), then fill in the consts and register the type
//! ([`expand`]). On error the block is given back (with what could be
//! filled in) and not registered, so that one mistake is one error.

mod ast;
mod attr;
mod expand;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use crate::ctxt::Ctxt;

/// Expands `#[job(args)]` on `item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = attr::Args::parse(&cx, args);
    let (item, registration) = match ast::from_tokens(&cx, item) {
        ast::Input::Job(job) => (
            expand::fill(&cx, &args, &job).into_token_stream(),
            Some(expand::register(&args, &job)),
        ),
        ast::Input::Other(tokens) => (tokens, None),
    };
    match cx.check() {
        Ok(()) => quote!(#item #registration),
        Err(err) => {
            let errors = err.to_compile_error();
            quote!(#errors #item)
        }
    }
}
