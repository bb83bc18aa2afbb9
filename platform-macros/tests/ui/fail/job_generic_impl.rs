use platform_jobs::{Job, JobContext, JobError, job};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Wrapper<T> {
    inner: T,
}

#[job]
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Job for Wrapper<T> {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
