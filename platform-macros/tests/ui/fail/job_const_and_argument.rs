use std::time::Duration;

use platform_jobs::{Job, JobContext, JobError, job};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct SendWelcome;

#[job(name = "welcome", queue = "critical", timeout = "5s")]
impl Job for SendWelcome {
    const NAME: &'static str = "send_welcome";
    const TIMEOUT: Duration = Duration::from_secs(30);

    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
