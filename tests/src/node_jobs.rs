//! The job the two-node test runs on its nodes (`bin/platform_node.rs`):
//! each run records where and when it started and ended in the table
//! `two_node_runs`, so the test (another process) sees every run.

use std::time::Duration;

use platform_core::db::Db;
use platform_jobs::{Job, JobContext, JobError};
use serde::{Deserialize, Serialize};

/// The table the probe writes (the test creates it).
pub const TABLE: &str = "CREATE TABLE two_node_runs (tag VARCHAR(64) NOT NULL, node VARCHAR(32) NOT NULL, phase VARCHAR(8) NOT NULL)";

/// Records `start`, sleeps `ms`, records `end`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeProbe {
    /// Which dispatch this is.
    pub tag: String,
    /// How long it works.
    pub ms: u64,
}

impl Job for NodeProbe {
    const NAME: &'static str = "two_node_probe";
    const MAX_ATTEMPTS: u32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(60);
    async fn handle(self, cx: &JobContext) -> Result<(), JobError> {
        let node = std::env::var("PLATFORM_NODE_NAME").unwrap_or_else(|_| "test".into());
        let db = cx.platform().db();
        record(db, &self.tag, &node, "start").await?;
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        record(db, &self.tag, &node, "end").await?;
        Ok(())
    }
}

async fn record(db: &Db, tag: &str, node: &str, phase: &str) -> Result<(), JobError> {
    let mut q = db.sql();
    q.push("INSERT INTO two_node_runs (tag, node, phase) VALUES (")
        .bind_str(tag.to_owned())
        .push(", ")
        .bind_str(node.to_owned())
        .push(", ")
        .bind_str(phase.to_owned())
        .push(")");
    db.execute(q).await.map_err(JobError::new)?;
    Ok(())
}
