//! Long imports as jobs: the uploaded file is kept in storage, the job
//! reads it back and runs the batch on behalf of the user who sent it
//! (whose permissions are checked again when it runs).

use platform_jobs::{Job, JobContext, JobError};
use serde::{Deserialize, Serialize};

use super::{Format, Imports};

/// Runs a queued import batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImportJob {
    pub(crate) batch_id: i64,
    pub(crate) resource: String,
    pub(crate) format: Format,
    pub(crate) mapping: Vec<(String, String)>,
    pub(crate) dry_run: bool,
    pub(crate) key: Option<String>,
}

impl Job for ImportJob {
    const NAME: &'static str = "platform_import";
    // A batch runs once: a second run would import its rows again.
    const MAX_ATTEMPTS: u32 = 1;
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

    async fn handle(self, cx: &JobContext) -> Result<(), JobError> {
        let platform = cx.platform();
        let imports = platform
            .get::<Imports>()
            .ok_or_else(|| JobError::fatal("the exchange capability is not added"))?;
        match imports.run_queued(platform, cx.context(), &self).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = super::batch::finish(
                    platform.db(),
                    self.batch_id,
                    super::Status::Failed,
                    Some(e.to_string()),
                    None,
                )
                .await;
                Err(JobError::fatal(e))
            }
        }
    }
}

platform_jobs::register_job!(ImportJob);
