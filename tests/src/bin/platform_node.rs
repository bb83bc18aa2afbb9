//! One node of a deployment, for the two-node test (`tests/two_nodes.rs`):
//! the test domain's command line with the cache, the throttles and the
//! permission changes on Redis, and jobs on the main PostgreSQL database
//! (workers run in `serve`).
//!
//! Environment: `PLATFORM_DATABASE_URL`, `PLATFORM_REDIS_URL`,
//! `PLATFORM_REDIS_PREFIX` (keys and channels of this deployment),
//! `PLATFORM_JOBS_NAMESPACE` (its queues), `PLATFORM_NODE_NAME` (recorded
//! by [`platform_tests::node_jobs::NodeProbe`]).
//! Usage: `platform_node serve --addr 127.0.0.1:PORT`.

use std::time::Duration;

use platform_adapters::redis::RedisScaleOut;
use platform_core::Platform;
use platform_jobs::Jobs;
use platform_tests::node_jobs::NodeProbe;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("PLATFORM_REDIS_URL")?;
    let prefix = std::env::var("PLATFORM_REDIS_PREFIX").unwrap_or_else(|_| "platform:".into());
    let namespace = std::env::var("PLATFORM_JOBS_NAMESPACE").unwrap_or_else(|_| "platform".into());
    let redis = RedisScaleOut::connect_with_prefix(&url, &prefix).await?;
    let jobs = Jobs::new()
        .ignore_env()
        .namespace(namespace)
        .heartbeat(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(20))
        .job::<NodeProbe>();
    let builder = Platform::builder()
        .registry(platform_tests::domain::registry())
        .app_key(platform_tests::test_key())
        .with(jobs);
    platform_admin::cli::Cli::new(redis.apply(builder))
        .run()
        .await
}
