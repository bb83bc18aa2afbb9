//! The queued delivery: one job per recipient and channel.

use platform_jobs::{Job, JobContext, JobError, job};
use serde::{Deserialize, Serialize};

use crate::{Notifier, To};

/// Delivers one notification to one recipient through one channel.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DeliverNotification {
    /// The sending's id (the same for every recipient, channel and retry).
    pub(crate) id: String,
    /// [`Notification::NAME`](crate::Notification::NAME).
    pub(crate) notification: String,
    /// The notification, as JSON.
    pub(crate) payload: serde_json::Value,
    /// Who it goes to.
    pub(crate) to: To,
    /// The channel's name.
    pub(crate) channel: String,
}

// The name queued notifications are stored under: never change it.
#[job(name = "platform_notification", timeout = "60s")]
impl Job for DeliverNotification {
    async fn handle(self, cx: &JobContext) -> Result<(), JobError> {
        let notifier = cx.platform().get::<Notifier>().ok_or_else(|| {
            JobError::fatal(
                "the notifications capability is not added in this process: add \
                 `platform_notify::Notifications` to the builder of every process that runs jobs",
            )
        })?;
        let label = match &self.to {
            To::User(id) => format!("user {id}"),
            To::Address(_) => "on demand".to_owned(),
        };
        match notifier.deliver(&self).await {
            Ok(None) => Ok(()),
            Ok(Some(reason)) => {
                tracing::debug!(
                    notification = %self.notification,
                    channel = %self.channel,
                    recipient = %label,
                    ?reason,
                    "notification delivery skipped when it ran"
                );
                Ok(())
            }
            Err(e) => {
                let message = format!(
                    "notification `{}` via {} to {label}: {e}",
                    self.notification, self.channel
                );
                if JobError::from(e).is_retryable() {
                    Err(JobError::new(message))
                } else {
                    Err(JobError::fatal(message))
                }
            }
        }
    }
}
