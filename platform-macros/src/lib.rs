//! The `#[derive(Resource)]` macro. Use it through `platform-core`.
use proc_macro::TokenStream;

/// Derives `platform_core::Resource`.
#[proc_macro_derive(Resource, attributes(resource))]
pub fn derive_resource(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
