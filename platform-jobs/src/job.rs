//! Typed jobs: the [`Job`] trait, how a job type is registered
//! ([`job`](macro@crate::job) or [`register_job!`](crate::register_job)),
//! the context a job runs with, and the envelope the queue stores.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use platform_core::Platform;
use platform_core::context::{Actor, Context};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A unit of background work: a serde payload plus the code that runs it.
///
/// Write the `handle` method and put [`#[job]`](macro@crate::job) on the
/// block: it fills in the consts from its arguments (`NAME` defaults to
/// the type's name in snake case) and registers the type, so every worker
/// of the binary knows it.
///
/// ```
/// use platform_jobs::{Job, JobContext, JobError, job};
/// use serde::{Deserialize, Serialize};
///
/// /// Sends the welcome mail of a new user.
/// #[derive(Serialize, Deserialize)]
/// struct SendWelcome {
///     user_id: i64,
/// }
///
/// #[job(queue = "critical", max_attempts = 5, timeout = "30s")]
/// impl Job for SendWelcome {
///     async fn handle(self, cx: &JobContext) -> Result<(), JobError> {
///         let _user = cx.platform().access().user(self.user_id).await?;
///         Ok(())
///     }
/// }
///
/// assert_eq!(SendWelcome::NAME, "send_welcome");
/// ```
///
/// Without the attribute, write the consts yourself and register the type
/// with [`register_job!`](crate::register_job) (a generic job type, which
/// `#[job]` refuses, is registered this way once per concrete type):
///
/// ```
/// use platform_jobs::{Job, JobContext, JobError, register_job};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendReminder {
///     user_id: i64,
/// }
///
/// impl Job for SendReminder {
///     const NAME: &'static str = "send_reminder";
///     const QUEUE: &'static str = "low";
///     async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
///         Ok(())
///     }
/// }
/// register_job!(SendReminder);
/// ```
///
/// The payload is stored as JSON: renaming a field, or the job, after a
/// deploy leaves queued jobs that no longer decode. They fail at once
/// (no retries) with a reason that says so; keep old fields optional
/// (`#[serde(default)]`) while jobs of the old shape may be queued.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The job's stable name, stored with each job (`send_welcome`):
    /// never reuse or rename it while jobs of that name may be queued.
    /// `#[job]` makes it the type's name in snake case unless given
    /// `name = "..."`, so renaming the type renames the job too.
    const NAME: &'static str;
    /// The queue it runs on unless the dispatch says otherwise:
    /// `critical`, `default`, `low` or `scheduled`, or a queue the host
    /// added with [`Jobs::queue`](crate::Jobs::queue).
    const QUEUE: &'static str = "default";
    /// How many times it runs before it is failed (the first run counts).
    const MAX_ATTEMPTS: u32 = 3;
    /// How long one run may take; a run that takes longer fails (and is
    /// retried like any failure).
    const TIMEOUT: Duration = Duration::from_secs(60);
    /// The first retry's delay; each further retry doubles it (capped at
    /// one hour).
    const BACKOFF: Duration = Duration::from_secs(5);

    /// Runs the job. An `Err` is retried (after the backoff) until
    /// [`Job::MAX_ATTEMPTS`]; [`JobError::fatal`] fails it at once.
    fn handle(self, cx: &JobContext) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// Why a job run failed.
#[derive(Debug)]
pub struct JobError {
    message: String,
    retry: bool,
}

impl JobError {
    /// A failure worth retrying (a server that did not answer).
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retry: true,
        }
    }
    /// A failure that retrying cannot fix (a record that is gone, input
    /// that is invalid): the job is failed at once.
    pub fn fatal(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retry: false,
        }
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retry
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JobError {}

impl From<platform_core::Error> for JobError {
    fn from(e: platform_core::Error) -> Self {
        use platform_core::Error as E;
        // A permission the user no longer holds, a record that is gone or
        // invalid input will not change on a retry.
        let retry = !matches!(
            e,
            E::PermissionDenied { .. }
                | E::Unauthenticated
                | E::NotFound { .. }
                | E::Validation(_)
                | E::Configuration(_)
        );
        Self {
            message: e.to_string(),
            retry,
        }
    }
}

impl From<anyhow::Error> for JobError {
    fn from(e: anyhow::Error) -> Self {
        Self::new(format!("{e:#}"))
    }
}

impl From<serde_json::Error> for JobError {
    fn from(e: serde_json::Error) -> Self {
        Self::fatal(e)
    }
}

/// Who a job acts for: the user who caused it (their permissions are
/// loaded again when the job runs), or nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorSnapshot {
    /// The user's id.
    pub user_id: i64,
    /// Their e-mail address when the job was dispatched (for logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The request that dispatched the job, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ActorSnapshot {
    /// The user acting in `ctx`, if a user acts (a token acts for its
    /// user; the console, the system and jobs are nobody).
    pub fn of(ctx: &Context) -> Option<Self> {
        let email = match ctx.actor() {
            Actor::User(p) | Actor::Token(p, _) => Some(p.email.clone()),
            _ => None,
        };
        ctx.actor().user_id().map(|user_id| Self {
            user_id,
            email,
            request_id: ctx.request_id().map(str::to_owned),
        })
    }

    /// The user who made the change `event` reports, if a user made it
    /// (its actor snapshot; a token acts for its user).
    pub fn of_event(event: &platform_core::outbox::Event) -> Option<Self> {
        let a = &event.actor;
        // A token's label is `email (token N)`.
        let email = matches!(a.kind.as_str(), "user" | "token")
            .then(|| a.label.as_deref())
            .flatten()
            .and_then(|l| l.split(" (token ").next())
            .map(str::to_owned);
        a.user_id.map(|user_id| Self {
            user_id,
            email,
            request_id: event.request_id.clone(),
        })
    }
}

/// What the queue stores for every job, whatever its type: the name that
/// picks the code, the JSON payload, who it acts for, and bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The job's id (a UUID v7), the same across its attempts.
    pub id: String,
    /// [`Job::NAME`].
    pub kind: String,
    /// The job, as JSON.
    pub payload: serde_json::Value,
    /// Who it acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<ActorSnapshot>,
    /// The unique key it holds, if dispatched with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// Whether the key is released when the job ends (else it expires).
    #[serde(default)]
    pub release_unique: bool,
    /// The queue it is on.
    pub queue: String,
    /// This run's number, from 1.
    pub attempt: u32,
    /// The most runs it gets.
    pub max_attempts: u32,
    /// The first retry's delay in milliseconds when the dispatch set one
    /// ([`Options::backoff`](crate::Options::backoff)); else the job
    /// type's [`Job::BACKOFF`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    /// When it may run (milliseconds since the epoch): dispatch time plus
    /// any delay or backoff. The wait time is measured from here.
    pub available_at: i64,
}

/// What a running job gets: the platform, who it acts for, and its
/// bookkeeping.
#[derive(Clone)]
pub struct JobContext {
    pub(crate) platform: Platform,
    pub(crate) envelope: Arc<Envelope>,
    pub(crate) context: Context,
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.envelope.id)
            .field("kind", &self.envelope.kind)
            .field("attempt", &self.envelope.attempt)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// The platform.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }
    /// The context to act in: the dispatching user's (with the
    /// permissions they hold *now*), or a job actor named after the job
    /// when nobody dispatched it. Pass it to `platform.repo(..)` so the
    /// write path checks permissions and audits the change.
    pub fn context(&self) -> &Context {
        &self.context
    }
    /// Who the job acts for.
    pub fn actor(&self) -> Option<&ActorSnapshot> {
        self.envelope.actor.as_ref()
    }
    /// The job's id.
    pub fn job_id(&self) -> &str {
        &self.envelope.id
    }
    /// This run's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.envelope.attempt
    }
    /// The queue it runs on.
    pub fn queue(&self) -> &str {
        &self.envelope.queue
    }
}

/// A boxed job run.
pub type RunFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'static>>;

/// A job type as the worker knows it (made by [`#[job]`](macro@crate::job),
/// [`register_job!`](crate::register_job) or [`JobType::of`]).
#[derive(Clone, Copy)]
pub struct JobType {
    /// [`Job::NAME`].
    pub name: &'static str,
    /// [`Job::QUEUE`].
    pub queue: &'static str,
    /// [`Job::MAX_ATTEMPTS`].
    pub max_attempts: u32,
    /// [`Job::TIMEOUT`].
    pub timeout: Duration,
    /// [`Job::BACKOFF`].
    pub backoff: Duration,
    type_name: fn() -> &'static str,
    decode: fn(serde_json::Value, JobContext) -> Result<RunFuture, serde_json::Error>,
}

impl fmt::Debug for JobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobType")
            .field("name", &self.name)
            .field("queue", &self.queue)
            .field("max_attempts", &self.max_attempts)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn decode<J: Job>(
    payload: serde_json::Value,
    cx: JobContext,
) -> Result<RunFuture, serde_json::Error> {
    let job: J = serde_json::from_value(payload)?;
    Ok(Box::pin(async move { job.handle(&cx).await }))
}

impl JobType {
    /// The entry of `J`.
    pub const fn of<J: Job>() -> Self {
        Self {
            name: J::NAME,
            queue: J::QUEUE,
            max_attempts: if J::MAX_ATTEMPTS == 0 {
                1
            } else {
                J::MAX_ATTEMPTS
            },
            timeout: J::TIMEOUT,
            backoff: J::BACKOFF,
            type_name: std::any::type_name::<J>,
            decode: decode::<J>,
        }
    }
    /// The Rust type's name (for messages).
    pub fn type_name(&self) -> &'static str {
        (self.type_name)()
    }
    /// Decodes `payload` into the job and returns its run; an error when
    /// the payload no longer fits the type.
    pub(crate) fn start(
        &self,
        payload: serde_json::Value,
        cx: JobContext,
    ) -> Result<RunFuture, serde_json::Error> {
        (self.decode)(payload, cx)
    }
    /// The delay before attempt `next` (2, 3, ...): the backoff doubled
    /// for each retry after the first, capped at one hour.
    pub fn backoff_before(&self, next: u32) -> Duration {
        backoff_before(self.backoff, next)
    }
}

/// The delay before attempt `next` (2, 3, ...) when the first retry waits
/// `first`: doubled for each retry after the first, capped at one hour.
pub(crate) fn backoff_before(first: Duration, next: u32) -> Duration {
    let exp = next.saturating_sub(2).min(20);
    first
        .saturating_mul(1u32 << exp)
        .min(Duration::from_secs(3600))
}

/// A registration collected by `inventory`.
#[derive(Debug)]
pub struct JobRegistration(pub JobType);

inventory::collect!(JobRegistration);

/// Every job type registered with [`#[job]`](macro@crate::job) or
/// [`register_job!`](crate::register_job) in the binary.
pub fn registered_jobs() -> impl Iterator<Item = &'static JobType> {
    inventory::iter::<JobRegistration>.into_iter().map(|r| &r.0)
}

/// Registers a [`Job`] type so every worker of the binary knows it (no
/// list to keep by hand).
///
/// [`#[job]`](macro@crate::job) on the `impl Job` block does this for you;
/// use the macro for a block written without the attribute (such as one
/// concrete type of a generic job).
///
/// ```
/// # use platform_jobs::{Job, JobContext, JobError};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Noop;
/// # impl Job for Noop { const NAME: &'static str = "noop_doc";
/// #   async fn handle(self, _cx: &JobContext) -> Result<(), JobError> { Ok(()) } }
/// platform_jobs::register_job!(Noop);
/// ```
#[macro_export]
macro_rules! register_job {
    ($ty:ty) => {
        $crate::__private::inventory::submit! {
            $crate::JobRegistration($crate::JobType::of::<$ty>())
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct T;
    impl Job for T {
        const NAME: &'static str = "t";
        const BACKOFF: Duration = Duration::from_secs(2);
        async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let t = JobType::of::<T>();
        assert_eq!(t.backoff_before(2), Duration::from_secs(2));
        assert_eq!(t.backoff_before(3), Duration::from_secs(4));
        assert_eq!(t.backoff_before(4), Duration::from_secs(8));
        assert_eq!(t.backoff_before(40), Duration::from_secs(3600));
    }
}
