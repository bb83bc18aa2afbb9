use platform_jobs::{Job, JobContext, JobError, job};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct A;

#[job(max_attempts = 0)]
impl Job for A {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct B;

#[job(max_attempts = "3")]
impl Job for B {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
