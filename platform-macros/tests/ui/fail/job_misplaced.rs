use platform_jobs::{JobContext, JobError, job};
use serde::{Deserialize, Serialize};

#[job]
#[derive(Serialize, Deserialize)]
struct SendWelcome;

#[job]
impl SendWelcome {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[job]
impl Default for SendWelcome {
    fn default() -> Self {
        Self
    }
}

#[job(queue = "critical")]
fn send_welcome() {}

fn main() {}
