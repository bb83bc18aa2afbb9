//! Every argument of `#[job(...)]`, and each unit of a duration.

use std::time::Duration;

use platform_jobs::{Job, JobContext, JobError, job, registered_jobs};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct SendWelcome {
    user_id: i64,
}

#[job(name = "welcome_mail", queue = "critical", max_attempts = 5, timeout = "30s", backoff = "500ms")]
impl Job for SendWelcome {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Report;

#[job(timeout = "1h", backoff = "5m", queue = "reports_2")]
impl Job for Report {
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {
    assert_eq!(SendWelcome::NAME, "welcome_mail");
    assert_eq!(SendWelcome::QUEUE, "critical");
    assert_eq!(SendWelcome::MAX_ATTEMPTS, 5);
    assert_eq!(SendWelcome::TIMEOUT, Duration::from_secs(30));
    assert_eq!(SendWelcome::BACKOFF, Duration::from_millis(500));
    assert_eq!(Report::TIMEOUT, Duration::from_secs(3600));
    assert_eq!(Report::BACKOFF, Duration::from_secs(300));

    let t = registered_jobs().find(|t| t.name == "welcome_mail").unwrap();
    assert_eq!(
        (t.queue, t.max_attempts, t.timeout, t.backoff),
        ("critical", 5, Duration::from_secs(30), Duration::from_millis(500))
    );
    let r = registered_jobs().find(|t| t.name == "report").unwrap();
    assert_eq!(r.queue, "reports_2");
    assert_eq!(registered_jobs().count(), 2);
}
