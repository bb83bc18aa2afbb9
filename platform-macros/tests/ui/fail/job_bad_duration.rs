use platform_jobs::{Job, JobContext, JobError, job};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct A;

#[job(timeout = "30", backoff = "1.5s")]
impl Job for A {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct B;

#[job(timeout = 30, backoff = "2 s")]
impl Job for B {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct C;

#[job(timeout = "0s", backoff = "1d")]
impl Job for C {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
