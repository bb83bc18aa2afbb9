//! Durable background jobs for Platform, on [apalis](https://docs.rs/apalis) 1.0.
//!
//! Add the [`Jobs`] capability to the builder, write jobs as serde types
//! implementing [`Job`] with [`#[job]`](macro@job) on the `impl` block
//! (it names the job, sets its queue, attempts, timeout and backoff, and
//! registers it so every worker knows it), and dispatch them through the
//! service the capability adds:
//!
//! ```no_run
//! use platform_jobs::{Job, JobContext, JobError, Jobs, Options, job};
//! use serde::{Deserialize, Serialize};
//! use std::time::Duration;
//!
//! /// Recomputes a customer's balance.
//! #[derive(Serialize, Deserialize)]
//! struct RecomputeBalance {
//!     customer_id: i64,
//! }
//!
//! #[job(queue = "critical", max_attempts = 5, backoff = "2s")]
//! impl Job for RecomputeBalance {
//!     async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
//!         Ok(())
//!     }
//! }
//!
//! # async fn run() -> platform_core::Result<()> {
//! let platform = platform_core::Platform::builder()
//!     .with(Jobs::new().queue("critical", 4))
//!     .build()
//!     .await?;
//! let jobs = platform.get::<Jobs>().expect("the jobs capability");
//! jobs.dispatch(RecomputeBalance { customer_id: 7 }).await?;
//! jobs.dispatch_with(
//!     RecomputeBalance { customer_id: 8 },
//!     Options::new().delay(Duration::from_secs(30)).unique_key("balance:8"),
//! )
//! .await?;
//! platform.start_workers(); // `serve` and `queue:work` do this
//! # Ok(())
//! # }
//! ```
//!
//! Where jobs wait: the main database when it is SQLite or PostgreSQL
//! (apalis-sqlite / apalis-postgres over the platform's own pool), or
//! the URL in `PLATFORM_QUEUE_URL` / [`Jobs::queue_url`]: `redis://...`
//! (the `redis` feature) or a separate SQLite file (`sqlite://jobs.db`).
//! On MySQL/MariaDB one of the two is required. The dashboard's figures,
//! failed jobs and unique keys live in the main database on every back
//! end (`platform_job_runs`, `platform_failed_jobs`, `platform_job_unique`).
//!
//! Without the attribute, a job writes its consts in the block and is
//! registered with [`register_job!`] (see [`Job`]).
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `macros` | on | the [`#[job]`](macro@job) attribute |
//! | `redis` | off | jobs on Redis (`redis://` queue URLs) |
//!
//! Delivery is at least once: a worker that dies mid-job leaves the job to
//! be taken again once its heartbeat is missed; a job must tolerate
//! running twice (make its effect idempotent, or check first). A second
//! delivery of the same run to the same process (Redis can hand a job
//! back while its first delivery is still being acknowledged) is dropped:
//! a run is its job id, attempt and due time, so a retry or a
//! `queue:retry` is a new run.

mod backend;
mod commands;
mod dashboard;
mod job;
mod runtime;
mod schedule;
mod store;

pub use backend::QueueBackend;
pub use dashboard::{JobView, QueueStats, Stats, mask_payload};
pub use job::{
    ActorSnapshot, Envelope, Job, JobContext, JobError, JobRegistration, JobType, RunFuture,
    registered_jobs,
};
pub use schedule::ScheduleEntry;
pub use store::{FailedJob, MIGRATIONS};

#[doc(hidden)]
pub mod __private {
    //! Items the `#[job]` expansion refers to. Not public API: may change
    //! in any release.
    pub use inventory;

    pub use crate::job::{JobRegistration, JobType};
}

#[cfg(feature = "macros")]
pub use platform_macros::job;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use platform_admin::capability::SetupExt;
use platform_core::Platform;
use platform_core::capability::{Capability, HealthCheck, HealthResult, Setup, TaskKind};
use platform_core::context::Context;
use platform_core::error::{Error, Result};

use crate::backend::{QueueStore, Transport};

/// The queues every [`Jobs`] has, with their default worker counts.
pub const DEFAULT_QUEUES: [(&str, usize); 4] = [
    ("critical", 2),
    ("default", 2),
    ("low", 1),
    ("scheduled", 1),
];

#[derive(Clone)]
struct Config {
    queues: BTreeMap<String, usize>,
    queue_url: Option<String>,
    namespace: String,
    use_env: bool,
    heartbeat: Duration,
    poll_interval: Duration,
    prefetch: usize,
    retention: Duration,
    schedules: Vec<ScheduleEntry>,
    schedule_errors: Vec<String>,
    extra_types: Vec<JobType>,
}

/// The jobs capability, and the service it adds
/// (`platform.get::<Jobs>()`): dispatch, failed jobs, figures.
///
/// Built with [`Jobs::new`] and added with
/// `Platform::builder().with(..)`; the copy `platform.get::<Jobs>()`
/// returns is connected to the back end.
#[derive(Clone)]
pub struct Jobs {
    config: Arc<Config>,
    state: Option<Arc<State>>,
}

impl fmt::Debug for Jobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jobs")
            .field("queues", &self.config.queues)
            .field("backend", &self.state.as_ref().map(|s| s.transport.kind()))
            .finish_non_exhaustive()
    }
}

pub(crate) struct State {
    pub(crate) transport: Transport,
    pub(crate) stores: BTreeMap<String, QueueStore>,
    pub(crate) db: platform_core::db::Db,
    pub(crate) types: BTreeMap<&'static str, JobType>,
    pub(crate) only: Mutex<Option<Vec<String>>>,
    pub(crate) buffer: Mutex<Vec<store::RunRecord>>,
    pub(crate) in_flight: std::sync::atomic::AtomicUsize,
    /// The runs this process started lately, to drop a back end's second
    /// delivery of the same run (see [`runtime::Runs`]).
    pub(crate) runs: Mutex<runtime::Runs>,
}

/// How a job is dispatched (see [`Jobs::dispatch_with`]).
#[derive(Debug, Clone, Default)]
pub struct Options {
    delay: Option<Duration>,
    unique_key: Option<String>,
    unique_for: Option<Duration>,
    queue: Option<String>,
    max_attempts: Option<u32>,
    backoff: Option<Duration>,
    actor: Option<ActorSnapshot>,
}

impl Options {
    /// The defaults: now, on the job's queue, no unique key.
    pub fn new() -> Self {
        Self::default()
    }
    /// Runs it no sooner than `delay` from now (SQLite and PostgreSQL
    /// store the time to the second).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
    /// Dispatches it only if no job holding `key` is queued or running
    /// (the key is released when the job ends); a second dispatch returns
    /// [`Dispatched::Duplicate`].
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }
    /// Holds the unique key for `d` from dispatch instead of until the job
    /// ends (schedules use this so that a minute's run is not doubled).
    pub fn unique_for(mut self, d: Duration) -> Self {
        self.unique_for = Some(d);
        self
    }
    /// Puts it on `queue` instead of [`Job::QUEUE`].
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    /// Gives it `n` runs instead of [`Job::MAX_ATTEMPTS`].
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }
    /// Waits `first` before the first retry instead of [`Job::BACKOFF`]
    /// (each further retry doubles it, capped at one hour).
    pub fn backoff(mut self, first: Duration) -> Self {
        self.backoff = Some(first);
        self
    }
    /// Runs it on behalf of the user acting in `ctx` (their permissions
    /// are checked again when it runs).
    pub fn on_behalf_of(mut self, ctx: &Context) -> Self {
        self.actor = ActorSnapshot::of(ctx);
        self
    }
    /// Runs it on behalf of the user who made the change `event` reports
    /// (an outbox subscriber queueing the slow part of its work); nobody
    /// when no user made it (the console, the system, a job). Their
    /// permissions are checked again when it runs.
    pub fn on_behalf_of_actor(mut self, event: &platform_core::outbox::Event) -> Self {
        self.actor = ActorSnapshot::of_event(event);
        self
    }
}

/// What a dispatch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatched {
    /// Queued, with this job id.
    Queued(String),
    /// Not queued: a job holding the same unique key is queued or running.
    Duplicate,
}

impl Dispatched {
    /// The job id, when queued.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Queued(id) => Some(id),
            Self::Duplicate => None,
        }
    }
}

impl Default for Jobs {
    fn default() -> Self {
        Self::new()
    }
}

impl Jobs {
    /// The queues `critical` (2 workers), `default` (2), `low` (1) and
    /// `scheduled` (1), on the main database unless `PLATFORM_QUEUE_URL`
    /// says otherwise.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                queues: DEFAULT_QUEUES
                    .iter()
                    .map(|(q, n)| ((*q).to_owned(), *n))
                    .collect(),
                queue_url: None,
                namespace: "platform".into(),
                use_env: true,
                heartbeat: Duration::from_secs(10),
                poll_interval: Duration::from_millis(100),
                prefetch: DEFAULT_PREFETCH,
                retention: Duration::from_secs(24 * 3600),
                schedules: Vec::new(),
                schedule_errors: Vec::new(),
                extra_types: Vec::new(),
            }),
            state: None,
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Sets (or adds) a queue with `workers` concurrent jobs per process.
    pub fn queue(mut self, name: impl Into<String>, workers: usize) -> Self {
        self.config_mut().queues.insert(name.into(), workers.max(1));
        self
    }
    /// Jobs on Redis at `url` (needs the `redis` feature) or in a separate
    /// SQLite file (`sqlite://jobs.db?mode=rwc`). `PLATFORM_QUEUE_URL`
    /// overrides it.
    pub fn queue_url(mut self, url: impl Into<String>) -> Self {
        self.config_mut().queue_url = Some(url.into());
        self
    }
    /// Jobs on the Redis server at `url` (the `redis` feature).
    pub fn redis(self, url: impl Into<String>) -> Self {
        self.queue_url(url)
    }
    /// The prefix of the queues' names in the back end (default
    /// `platform`: `platform:default`); two applications sharing a Redis
    /// server or database need different ones.
    pub fn namespace(mut self, prefix: impl Into<String>) -> Self {
        self.config_mut().namespace = prefix.into();
        self
    }
    /// Ignores `PLATFORM_QUEUE_URL` (tests).
    pub fn ignore_env(mut self) -> Self {
        self.config_mut().use_env = false;
        self
    }
    /// How often a worker tells the back end it is alive (default 10 s);
    /// jobs held by a worker silent for five intervals are taken again
    /// (they run again: at least once).
    pub fn heartbeat(mut self, d: Duration) -> Self {
        self.config_mut().heartbeat = d.max(Duration::from_secs(1));
        self
    }
    /// How often an idle worker looks for new jobs (default 100 ms).
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.config_mut().poll_interval = d.max(Duration::from_millis(5));
        self
    }
    /// How many jobs a queue's worker takes from the back end in one fetch,
    /// per worker of the queue (default 4; see [`DEFAULT_PREFETCH`]).
    /// `1` takes as many jobs as the queue has workers (10 at least),
    /// leaving the rest to other processes sooner; a larger one costs
    /// fewer fetches. A fetch takes at least 10 jobs and at most 200.
    pub fn prefetch(mut self, per_worker: usize) -> Self {
        self.config_mut().prefetch = per_worker.max(1);
        self
    }
    /// How long finished runs are kept for the dashboard (default 24 h).
    pub fn retention(mut self, d: Duration) -> Self {
        self.config_mut().retention = d;
        self
    }
    /// Registers `J` explicitly (on top of [`#[job]`](macro@job) and
    /// [`register_job!`]).
    pub fn job<J: Job>(mut self) -> Self {
        self.config_mut().extra_types.push(JobType::of::<J>());
        self
    }
    /// Runs `job` on the `scheduled` queue at every time `cron` matches
    /// (six fields with seconds: `"0 */5 * * * *"` is every five minutes).
    /// A time is run once across processes and restarts (its unique key is
    /// the job's name and the time). An invalid expression fails the build.
    pub fn schedule<J: Job>(mut self, cron: &str, job: J) -> Self {
        match ScheduleEntry::new::<J>(cron, &job) {
            Ok(e) => {
                let c = self.config_mut();
                c.schedules.push(e);
                c.extra_types.push(JobType::of::<J>());
            }
            Err(e) => self.config_mut().schedule_errors.push(e),
        }
        self
    }

    /// The queues and their worker counts.
    pub fn queues(&self) -> impl Iterator<Item = (&str, usize)> {
        self.config.queues.iter().map(|(q, n)| (q.as_str(), *n))
    }
    /// The schedules.
    pub fn schedules(&self) -> &[ScheduleEntry] {
        &self.config.schedules
    }

    pub(crate) fn state(&self) -> Result<&Arc<State>> {
        self.state.as_ref().ok_or_else(|| {
            Error::Configuration(
                "use the `Jobs` from `platform.get::<Jobs>()`, not the builder's".into(),
            )
        })
    }

    /// The back end the jobs are on.
    pub fn backend(&self) -> Option<QueueBackend> {
        self.state.as_ref().map(|s| s.transport.kind())
    }

    /// Starts only `queues`' workers when the workers start (the
    /// `queue:work --queue` option); call before
    /// [`Platform::start_workers`].
    pub fn only_queues(&self, queues: Vec<String>) -> Result<()> {
        for q in &queues {
            if !self.config.queues.contains_key(q) {
                return Err(Error::Configuration(format!(
                    "unknown queue `{q}` (the queues are {})",
                    self.config
                        .queues
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        if let Ok(mut only) = self.state()?.only.lock() {
            *only = Some(queues);
        }
        Ok(())
    }

    async fn connect(&self, platform: Platform) -> Result<Self> {
        let c = &self.config;
        if !c.schedule_errors.is_empty() {
            return Err(Error::Configuration(c.schedule_errors.join("; ")));
        }
        let env_url = if c.use_env {
            std::env::var("PLATFORM_QUEUE_URL")
                .ok()
                .filter(|v| !v.trim().is_empty())
        } else {
            None
        };
        let url = env_url.or_else(|| c.queue_url.clone());
        let transport = Transport::connect(&platform, url.as_deref()).await?;
        let stores = c
            .queues
            .iter()
            .map(|(q, workers)| {
                let store = transport.store(
                    &c.namespace,
                    q,
                    c.heartbeat,
                    fetch_batch(*workers, c.prefetch),
                );
                (q.clone(), store)
            })
            .collect();
        let mut types = BTreeMap::new();
        for t in registered_jobs()
            .copied()
            .chain(c.extra_types.iter().copied())
        {
            if let Some(old) = types.insert(t.name, t)
                && old.type_name() != t.type_name()
            {
                return Err(Error::Configuration(format!(
                    "two job types are named `{}`: {} and {}",
                    t.name,
                    old.type_name(),
                    t.type_name()
                )));
            }
        }
        Ok(Self {
            config: self.config.clone(),
            state: Some(Arc::new(State {
                transport,
                stores,
                db: platform.db().clone(),
                types,
                only: Mutex::new(None),
                buffer: Mutex::new(Vec::new()),
                in_flight: std::sync::atomic::AtomicUsize::new(0),
                runs: Mutex::new(runtime::Runs::default()),
            })),
        })
    }

    /// Queues `job` now, on its queue.
    pub async fn dispatch<J: Job>(&self, job: J) -> Result<Dispatched> {
        self.dispatch_with(job, Options::new()).await
    }

    /// Queues `job` with `options`.
    pub async fn dispatch_with<J: Job>(&self, job: J, options: Options) -> Result<Dispatched> {
        let payload = serde_json::to_value(&job).map_err(|e| {
            Error::Configuration(format!("the job `{}` does not serialise: {e}", J::NAME))
        })?;
        self.dispatch_raw(J::NAME, J::QUEUE, J::MAX_ATTEMPTS, payload, options)
            .await
    }

    pub(crate) async fn dispatch_raw(
        &self,
        kind: &str,
        default_queue: &str,
        default_attempts: u32,
        payload: serde_json::Value,
        options: Options,
    ) -> Result<Dispatched> {
        let state = self.state()?;
        let queue = options.queue.unwrap_or_else(|| default_queue.to_owned());
        let store = state.stores.get(&queue).ok_or_else(|| {
            Error::Configuration(format!(
                "the job `{kind}` goes to the queue `{queue}`, which is not configured \
                 (add it with `Jobs::queue`)"
            ))
        })?;
        let id = uuid::Uuid::now_v7().to_string();
        let delay = options.delay.unwrap_or_default();
        let now = store::now_ms();
        if let Some(key) = &options.unique_key {
            let hold = options
                .unique_for
                .unwrap_or(Duration::from_secs(7 * 24 * 3600));
            let until = now.saturating_add(i64::try_from(hold.as_millis()).unwrap_or(i64::MAX));
            if !store::take_unique(&state.db, key, &id, until).await? {
                return Ok(Dispatched::Duplicate);
            }
        }
        let env = Envelope {
            id: id.clone(),
            kind: kind.to_owned(),
            payload,
            actor: options.actor,
            release_unique: options.unique_key.is_some() && options.unique_for.is_none(),
            unique_key: options.unique_key,
            queue,
            attempt: 1,
            max_attempts: options.max_attempts.unwrap_or(default_attempts).max(1),
            backoff_ms: options
                .backoff
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            available_at: now + i64::try_from(delay.as_millis()).unwrap_or(0),
        };
        let key = env.unique_key.clone();
        if let Err(e) = store.push(env, delay).await {
            if let Some(k) = key {
                let _ = store::release_unique(&state.db, &k, &id).await;
            }
            return Err(e);
        }
        Ok(Dispatched::Queued(id))
    }

    /// Failed jobs, newest first (at most `limit`).
    pub async fn failed(&self, limit: i64) -> Result<Vec<FailedJob>> {
        store::failed(&self.state()?.db, limit).await
    }

    /// Queues a failed job again (from its first attempt) and removes it
    /// from the failed list; false when there is no such failed job.
    pub async fn retry(&self, id: &str) -> Result<bool> {
        let state = self.state()?;
        let Some(failed) = store::failed_one(&state.db, id).await? else {
            return Ok(false);
        };
        let Some(mut env) = failed.envelope else {
            return Err(Error::Configuration(format!(
                "the failed job {id} has no readable envelope; forget it instead"
            )));
        };
        let store = state.stores.get(&env.queue).ok_or_else(|| {
            Error::Configuration(format!("the queue `{}` is not configured", env.queue))
        })?;
        env.attempt = 1;
        env.available_at = store::now_ms();
        store.push(env, Duration::ZERO).await?;
        store::forget(&state.db, id).await?;
        Ok(true)
    }

    /// Queues every failed job again; returns how many.
    pub async fn retry_all(&self) -> Result<usize> {
        let mut n = 0;
        loop {
            let batch = self.failed(500).await?;
            if batch.is_empty() {
                return Ok(n);
            }
            for f in batch {
                if self.retry(&f.id).await? {
                    n += 1;
                }
            }
        }
    }

    /// Deletes a failed job; false when there is no such failed job.
    pub async fn forget(&self, id: &str) -> Result<bool> {
        store::forget(&self.state()?.db, id).await
    }

    /// Writes the finished runs still buffered (the workers write them
    /// every 200 ms, and when they stop).
    pub async fn flush(&self) -> Result<()> {
        runtime::flush(self.state()?).await
    }
}

/// `/health`: the queue back end answers.
struct QueueHealth;

#[async_trait::async_trait]
impl HealthCheck for QueueHealth {
    fn name(&self) -> &str {
        "queue"
    }
    async fn check(&self, platform: &Platform) -> HealthResult {
        let jobs = platform
            .get::<Jobs>()
            .ok_or_else(|| "the jobs service is missing".to_owned())?;
        let state = jobs.state().map_err(|e| e.to_string())?;
        state
            .transport
            .ping()
            .await
            .map_err(|e| format!("{}: {e}", state.transport.kind().name()))
    }
}

impl Capability for Jobs {
    fn name(&self) -> &'static str {
        "jobs"
    }

    fn setup(&self, setup: &mut Setup) {
        let this = self.clone();
        setup
            .migrations(MIGRATIONS)
            .permission("view_jobs", "See the queue dashboard")
            .permission("retry_jobs", "Retry and forget failed jobs")
            .service(move |p: Platform| {
                let this = this.clone();
                async move { this.connect(p).await }
            })
            .task("job workers", TaskKind::Worker, |p, stop| {
                runtime::run(p, stop)
            })
            .task("job run trimmer", TaskKind::Service, |p, stop| {
                runtime::trim(p, stop)
            })
            .health_check(QueueHealth);
        dashboard::contribute(setup);
        for c in commands::commands() {
            setup.command(c);
        }
    }
}

/// How many jobs a queue's worker takes per fetch, per worker, unless
/// [`Jobs::prefetch`] says otherwise: 4, as Celery's prefetch multiplier.
///
/// A queue's worker fetches its next batch when it has handed out the
/// current one, and a worker slot that frees up meanwhile waits for that
/// fetch (a transaction of its own), so the batch sets the throughput of
/// short jobs. Measured with 4 workers on no-op jobs on
/// PostgreSQL (`cargo bench -p platform-benches --bench jobs`, bare
/// apalis): a batch of 10 ran 4,428 jobs/s, 16 ran 6,257, 20 ran 7,438
/// and 40 ran 10,997. The jobs fetched and not yet running are held by
/// this process: another process cannot take them until they ran, or
/// until this one is found dead (its heartbeat) and they are taken again.
pub const DEFAULT_PREFETCH: usize = 4;

/// How many jobs a queue's worker takes from its back end in one fetch:
/// `prefetch` per worker, between 10 (apalis's default) and 200.
///
/// With apalis's default of 10, a PostgreSQL queue stayed near 780
/// jobs/s on the CI machine whatever its worker count (16, 32 or 64
/// workers; apalis also sizes a worker's acknowledgement channel from the
/// fetch, four times it, two messages per run).
fn fetch_batch(workers: usize, prefetch: usize) -> usize {
    workers.saturating_mul(prefetch).clamp(10, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_is_prefetch_per_worker_within_10_and_200() {
        assert_eq!(fetch_batch(4, DEFAULT_PREFETCH), 16);
        assert_eq!(fetch_batch(1, DEFAULT_PREFETCH), 10);
        assert_eq!(fetch_batch(4, 1), 10);
        assert_eq!(fetch_batch(30, 4), 120);
        assert_eq!(fetch_batch(64, 4), 200);
        assert_eq!(fetch_batch(usize::MAX, 4), 200);
        let jobs = Jobs::new().prefetch(0);
        assert_eq!(jobs.config.prefetch, 1);
    }
}
