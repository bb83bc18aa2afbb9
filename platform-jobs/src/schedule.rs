//! Cron schedules: jobs dispatched on the `scheduled` queue at the times a
//! cron expression matches, once per time across processes and restarts.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use platform_core::capability::Stop;

use crate::job::Job;
use crate::{Jobs, Options};

/// A job dispatched on a cron schedule ([`Jobs::schedule`]).
#[derive(Debug, Clone)]
pub struct ScheduleEntry {
    expr: String,
    schedule: cron::Schedule,
    kind: &'static str,
    max_attempts: u32,
    payload: serde_json::Value,
}

impl ScheduleEntry {
    pub(crate) fn new<J: Job>(expr: &str, job: &J) -> Result<Self, String> {
        let schedule = cron::Schedule::from_str(expr)
            .map_err(|e| format!("the schedule `{expr}` of `{}` is invalid: {e}", J::NAME))?;
        let payload = serde_json::to_value(job)
            .map_err(|e| format!("the scheduled job `{}` does not serialise: {e}", J::NAME))?;
        Ok(Self {
            expr: expr.to_owned(),
            schedule,
            kind: J::NAME,
            max_attempts: J::MAX_ATTEMPTS,
            payload,
        })
    }
    /// The cron expression.
    pub fn expression(&self) -> &str {
        &self.expr
    }
    /// The job's name.
    pub fn job(&self) -> &'static str {
        self.kind
    }
    /// The next time it runs after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&after).next()
    }
    /// The unique key of its run at `at`: the job's name and the time.
    pub fn key_at(&self, at: DateTime<Utc>) -> String {
        format!("schedule:{}:{}:{}", self.kind, self.expr, at.timestamp())
    }
}

/// Dispatches every schedule's due times until `stop`. Times that passed
/// while no process ran are skipped (not caught up).
pub(crate) async fn run(jobs: Arc<Jobs>, mut stop: Stop) {
    let entries = jobs.config.schedules.clone();
    if entries.is_empty() {
        return;
    }
    let mut next: Vec<Option<DateTime<Utc>>> =
        entries.iter().map(|e| e.next_after(Utc::now())).collect();
    loop {
        let now = Utc::now();
        for (e, due) in entries.iter().zip(next.iter_mut()) {
            while let Some(at) = *due
                && at <= now
            {
                let options = Options::new()
                    .queue("scheduled")
                    .unique_key(e.key_at(at))
                    .unique_for(Duration::from_secs(7 * 24 * 3600));
                if let Err(err) = jobs
                    .dispatch_raw(
                        e.kind,
                        "scheduled",
                        e.max_attempts,
                        e.payload.clone(),
                        options,
                    )
                    .await
                {
                    tracing::warn!(job = e.kind, error = %err, "could not dispatch a scheduled job");
                }
                *due = e.next_after(at);
            }
        }
        let wait = next
            .iter()
            .flatten()
            .min()
            .map(|t| (*t - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(Duration::from_secs(60))
            .min(Duration::from_secs(1));
        if stop.wait_for(wait.max(Duration::from_millis(20))).await {
            return;
        }
    }
}
