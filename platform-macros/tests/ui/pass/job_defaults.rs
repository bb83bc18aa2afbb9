//! A bare `#[job]`: the name is the type's in snake case, the rest are the
//! trait's defaults, and the type is registered. Consts written in the block
//! are kept.

use std::time::Duration;

use platform_jobs::{Job, JobContext, JobError, job, registered_jobs};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct SendWelcome {
    user_id: i64,
}

#[job]
impl Job for SendWelcome {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct HTTPPing;

// The trait named by its path; a const of the block next to an argument.
#[job(queue = "low")]
impl platform_jobs::Job for HTTPPing {
    const MAX_ATTEMPTS: u32 = 7;

    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

mod jobs {
    #[derive(serde::Serialize, serde::Deserialize)]
    pub(crate) struct Legacy;
}

// A type named by its path; the block's own name.
#[job]
impl Job for jobs::Legacy {
    const NAME: &'static str = "legacy_job";

    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {
    assert_eq!(SendWelcome::NAME, "send_welcome");
    assert_eq!(SendWelcome::QUEUE, "default");
    assert_eq!(SendWelcome::MAX_ATTEMPTS, 3);
    assert_eq!(SendWelcome::TIMEOUT, Duration::from_secs(60));
    assert_eq!(SendWelcome::BACKOFF, Duration::from_secs(5));
    assert_eq!(
        (HTTPPing::NAME, HTTPPing::QUEUE, HTTPPing::MAX_ATTEMPTS),
        ("http_ping", "low", 7)
    );
    assert_eq!(jobs::Legacy::NAME, "legacy_job");

    let mut names: Vec<&str> = registered_jobs().map(|t| t.name).collect();
    names.sort_unstable();
    assert_eq!(names, ["http_ping", "legacy_job", "send_welcome"]);
    let welcome = registered_jobs().find(|t| t.name == "send_welcome").unwrap();
    assert_eq!(welcome.queue, "default");
    assert_eq!(welcome.max_attempts, 3);
    assert!(welcome.type_name().ends_with("SendWelcome"));
}
