//! Code generation: the consts the block leaves out, then the registration.

use proc_macro2::{Literal, Span, TokenStream};
use quote::quote;
use syn::{ImplItem, ItemImpl, Path};

use super::ast::JobImpl;
use super::attr::{Arg, Args, BACKOFF, MAX_ATTEMPTS, Millis, NAME, QUEUE, TIMEOUT};
use crate::ctxt::Ctxt;
use crate::resource::attr::Symbol;
use crate::resource::naming::snake_case;

/// The path of the jobs crate: `crate = "..."` or `::platform_jobs`.
pub(crate) fn krate(path: Option<&Path>) -> Path {
    path.cloned().unwrap_or_else(|| {
        let ident = syn::Ident::new("platform_jobs", Span::call_site());
        syn::parse_quote!(::#ident)
    })
}

/// The `Job` const an argument sets.
fn const_name(key: Symbol) -> &'static str {
    match key.as_str() {
        "name" => "NAME",
        "queue" => "QUEUE",
        "max_attempts" => "MAX_ATTEMPTS",
        "timeout" => "TIMEOUT",
        _ => "BACKOFF",
    }
}

/// Whether the argument may be used: given, and not also a const of the
/// block (an error when it is both).
fn usable<T>(cx: &Ctxt, job: &JobImpl, key: Symbol, arg: &Arg<T>) -> bool {
    let Some(path) = arg.key() else {
        return false;
    };
    let name = const_name(key);
    if job.defines(name) {
        cx.error_spanned_by(
            path,
            format!(
                "job argument `{key}` and `const {name}` in the block both set `Job::{name}`: \
                 keep one"
            ),
        );
        return false;
    }
    true
}

fn duration(ms: Millis) -> TokenStream {
    if ms.0.is_multiple_of(1000) {
        let secs = Literal::u64_unsuffixed(ms.0 / 1000);
        quote!(::core::time::Duration::from_secs(#secs))
    } else {
        let ms = Literal::u64_unsuffixed(ms.0);
        quote!(::core::time::Duration::from_millis(#ms))
    }
}

/// The block with the consts it does not define filled in from the
/// arguments (`NAME` defaults to the type's name in snake case). An
/// argument in conflict with the block is an error, and the block's const
/// is kept.
pub(crate) fn fill(cx: &Ctxt, args: &Args, job: &JobImpl) -> ItemImpl {
    let mut consts: Vec<ImplItem> = Vec::new();
    if usable(cx, job, NAME, &args.name)
        && let Some(name) = args.name.get()
    {
        consts.push(syn::parse_quote!(const NAME: &'static str = #name;));
    } else if !job.defines("NAME") && args.name.key().is_none() {
        // A type that is not a path has no name to default to (that error
        // is recorded): an empty one keeps the block complete.
        let name = job.type_name.as_deref().map(snake_case).unwrap_or_default();
        consts.push(syn::parse_quote!(const NAME: &'static str = #name;));
    }
    if usable(cx, job, QUEUE, &args.queue)
        && let Some(queue) = args.queue.get()
    {
        consts.push(syn::parse_quote!(const QUEUE: &'static str = #queue;));
    }
    if usable(cx, job, MAX_ATTEMPTS, &args.max_attempts)
        && let Some(n) = args.max_attempts.get()
    {
        let n = Literal::u32_unsuffixed(*n);
        consts.push(syn::parse_quote!(const MAX_ATTEMPTS: u32 = #n;));
    }
    if usable(cx, job, TIMEOUT, &args.timeout)
        && let Some(d) = args.timeout.get()
    {
        let d = duration(*d);
        consts.push(syn::parse_quote!(const TIMEOUT: ::core::time::Duration = #d;));
    }
    if usable(cx, job, BACKOFF, &args.backoff)
        && let Some(d) = args.backoff.get()
    {
        let d = duration(*d);
        consts.push(syn::parse_quote!(const BACKOFF: ::core::time::Duration = #d;));
    }
    let mut item = job.item.clone();
    item.items.splice(0..0, consts);
    item
}

/// The registration `register_job!` would write.
pub(crate) fn register(args: &Args, job: &JobImpl) -> TokenStream {
    let krate = krate(args.krate.get());
    let private = quote!(#krate::__private);
    let ty = &job.item.self_ty;
    quote! {
        const _: () = {
            #private::inventory::submit! {
                #private::JobRegistration(#private::JobType::of::<#ty>())
            }
        };
    }
}
