//! The command line over the test domain, for the command-line tests
//! (`tests/cli.rs`): what a host binary gets from `platform_admin::cli`.

use platform_core::Platform;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let builder = Platform::builder()
        .registry(platform_tests::domain::registry())
        .migrations(platform_core::embed_migrations!("migrations"));
    platform_admin::cli::Cli::new(builder).run().await
}
