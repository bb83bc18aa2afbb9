//! `#[job(crate = "...")]` for hosts that re-export platform-jobs under
//! another path.

mod host {
    pub mod jobs {
        pub use platform_jobs::*;
    }
}

use crate::host::jobs::{Job, JobContext, JobError, job};

#[derive(serde::Serialize, serde::Deserialize)]
struct Cleanup;

#[job(crate = "crate::host::jobs")]
impl Job for Cleanup {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {
    assert!(crate::host::jobs::registered_jobs().any(|t| t.name == "cleanup"));
}
