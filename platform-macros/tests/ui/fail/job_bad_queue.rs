use platform_jobs::{Job, JobContext, JobError, job};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct A;

#[job(queue = "Critical")]
impl Job for A {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct B;

#[job(queue = "critical,low")]
impl Job for B {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct C;

#[job(queue = critical)]
impl Job for C {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
