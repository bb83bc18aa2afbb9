use platform_jobs::{Job, JobContext, JobError, job};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct SendWelcome;

#[job(queu = "critical", retries = 3, timeout = "30s")]
impl Job for SendWelcome {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
