//! The item under `#[job]`: an `impl Job for Type` block, the name of its
//! type and the consts it defines.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::{ImplItem, Item, ItemImpl, Path, Type};

use crate::ctxt::Ctxt;

/// What `#[job]` was put on.
pub(crate) enum Input {
    /// `impl Job for Type { ... }` (possibly generic, which is an error
    /// recorded in the [`Ctxt`]).
    Job(Box<JobImpl>),
    /// Anything else, given back unchanged (an error is recorded).
    Other(TokenStream),
}

/// An `impl Job for Type` block.
pub(crate) struct JobImpl {
    /// The block as written.
    pub(crate) item: ItemImpl,
    /// The type's name (`SendWelcome` for `impl Job for jobs::SendWelcome`),
    /// `None` when the type is not a path.
    pub(crate) type_name: Option<String>,
}

impl JobImpl {
    /// Whether the block defines `const NAME` (or another const of `Job`).
    pub(crate) fn defines(&self, name: &str) -> bool {
        self.item
            .items
            .iter()
            .any(|i| matches!(i, ImplItem::Const(c) if c.ident == name))
    }
}

const MISPLACED: &str = "`#[job]` goes on the `impl Job for YourType { ... }` block of a job type";

/// Parses and checks the annotated item.
pub(crate) fn from_tokens(cx: &Ctxt, tokens: TokenStream) -> Input {
    let item = match syn::parse2::<Item>(tokens.clone()) {
        Ok(Item::Impl(item)) => item,
        Ok(Item::Struct(s)) => {
            cx.syn_error(syn::Error::new(
                Span::call_site(),
                format!(
                    "{MISPLACED}: put it on `impl Job for {}`, not on the struct",
                    s.ident
                ),
            ));
            return Input::Other(tokens);
        }
        Ok(Item::Enum(e)) => {
            cx.syn_error(syn::Error::new(
                Span::call_site(),
                format!(
                    "{MISPLACED}: put it on `impl Job for {}`, not on the enum",
                    e.ident
                ),
            ));
            return Input::Other(tokens);
        }
        Ok(_) | Err(_) => {
            cx.syn_error(syn::Error::new(Span::call_site(), MISPLACED));
            return Input::Other(tokens);
        }
    };
    match &item.trait_ {
        Some((None, path, _)) if is_job(path) => {}
        Some((Some(bang), _, _)) => {
            cx.error_spanned_by(bang, format!("{MISPLACED}, not on a negative impl"));
            return Input::Other(tokens);
        }
        Some((None, path, _)) => {
            cx.error_spanned_by(
                path,
                format!("{MISPLACED}, not on an impl of another trait"),
            );
            return Input::Other(tokens);
        }
        None => {
            cx.error_spanned_by(
                &item.self_ty,
                format!("{MISPLACED}, not on an inherent impl: write `impl Job for ...`"),
            );
            return Input::Other(tokens);
        }
    }
    if !item.generics.params.is_empty() {
        cx.error_spanned_by(
            &item.generics,
            "`#[job]` does not support generic impls: a job type is registered once, under one \
             name, so it must be concrete (write `impl Job for Wrapper<Concrete>`, or implement \
             `Job` without `#[job]` and register each type with `register_job!`)",
        );
    }
    let type_name = match &*item.self_ty {
        Type::Path(p) if p.qself.is_none() => {
            p.path.segments.last().map(|s| s.ident.unraw().to_string())
        }
        other => {
            cx.error_spanned_by(
                other,
                "`#[job]` needs a named type (`impl Job for SendWelcome`): a job is a serde \
                 struct or enum of its own",
            );
            None
        }
    };
    Input::Job(Box::new(JobImpl { item, type_name }))
}

/// `Job`, `platform_jobs::Job`, ...: a path ending in `Job` without
/// arguments.
fn is_job(path: &Path) -> bool {
    path.segments
        .last()
        .is_some_and(|s| s.ident == "Job" && s.arguments.is_none())
}
