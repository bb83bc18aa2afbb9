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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: TokenStream, item: TokenStream) -> String {
        expand(args, item).to_string()
    }

    #[test]
    fn fills_the_consts_and_registers() {
        let out = run(
            quote!(
                queue = "critical",
                max_attempts = 5,
                timeout = "30s",
                backoff = "250ms"
            ),
            quote! {
                impl Job for SendWelcome {
                    async fn handle(self, cx: &JobContext) -> Result<(), JobError> { Ok(()) }
                }
            },
        );
        for expected in [
            "const NAME : & 'static str = \"send_welcome\" ;",
            "const QUEUE : & 'static str = \"critical\" ;",
            "const MAX_ATTEMPTS : u32 = 5 ;",
            "const TIMEOUT : :: core :: time :: Duration = :: core :: time :: Duration :: from_secs (30) ;",
            "const BACKOFF : :: core :: time :: Duration = :: core :: time :: Duration :: from_millis (250) ;",
            ":: platform_jobs :: __private :: inventory :: submit !",
            ":: platform_jobs :: __private :: JobRegistration (:: platform_jobs :: __private :: JobType :: of :: < SendWelcome > ())",
        ] {
            assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
        }
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn keeps_the_block_s_consts_and_leaves_defaults_to_the_trait() {
        let out = run(
            quote!(crate = "host::jobs"),
            quote! {
                impl jobs::Job for a::Legacy {
                    const NAME: &'static str = "old_name";
                    async fn handle(self, cx: &JobContext) -> Result<(), JobError> { Ok(()) }
                }
            },
        );
        assert_eq!(out.matches("const NAME").count(), 1, "{out}");
        assert!(out.contains("\"old_name\""), "{out}");
        assert!(!out.contains("QUEUE") && !out.contains("TIMEOUT"), "{out}");
        assert!(
            out.contains("host :: jobs :: __private :: JobType :: of :: < a :: Legacy > ()"),
            "{out}"
        );
    }

    #[test]
    fn errors_keep_the_block_and_skip_the_registration() {
        let out = run(
            quote!(queu = "low", max_attempts = 0, timeout = "soon"),
            quote! {
                impl Job for SendWelcome {
                    async fn handle(self, cx: &JobContext) -> Result<(), JobError> { Ok(()) }
                }
            },
        );
        assert_eq!(out.matches("compile_error").count(), 3, "{out}");
        assert!(
            out.contains("unknown job argument `queu`; did you mean `queue`?"),
            "{out}"
        );
        assert!(out.contains("impl Job for SendWelcome"), "{out}");
        // Still complete: the name is filled in, so no second error follows.
        assert!(out.contains("\"send_welcome\""), "{out}");
        assert!(!out.contains("inventory"), "{out}");
    }

    #[test]
    fn anything_but_impl_job_is_given_back_with_an_error() {
        let out = run(
            TokenStream::new(),
            quote!(
                struct SendWelcome;
            ),
        );
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
        assert!(out.contains("struct SendWelcome ;"), "{out}");
        let out = run(
            TokenStream::new(),
            quote!(
                impl<T> Job for W<T> {}
            ),
        );
        assert!(out.contains("does not support generic impls"), "{out}");
        assert!(out.contains("\"w\""), "{out}");
        assert!(!out.contains("inventory"), "{out}");
    }
}
