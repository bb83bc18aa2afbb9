//! One node of a deployment, for the two-node test (`tests/two_nodes.rs`):
//! the test domain's command line with the cache, the throttles and the
//! permission changes on Redis.
//!
//! Environment: `PLATFORM_DATABASE_URL`, `PLATFORM_REDIS_URL`,
//! `PLATFORM_REDIS_PREFIX` (keys and channels of this deployment).
//! Usage: `platform_node serve --addr 127.0.0.1:PORT`.

use platform_adapters::redis::RedisScaleOut;
use platform_core::Platform;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("PLATFORM_REDIS_URL")?;
    let prefix = std::env::var("PLATFORM_REDIS_PREFIX").unwrap_or_else(|_| "platform:".into());
    let redis = RedisScaleOut::connect_with_prefix(&url, &prefix).await?;
    let builder = Platform::builder()
        .registry(platform_tests::domain::registry())
        .app_key(platform_tests::test_key());
    platform_admin::cli::Cli::new(redis.apply(builder))
        .run()
        .await
}
