//! The workers: one apalis worker per queue (its concurrency is the
//! queue's worker count), a handler that picks the job's code by name,
//! the writer of finished runs and the scheduler.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use apalis::prelude::{AbortError, BackendExt, BoxDynError, Data, WorkerBuilder, WorkerBuilderExt};
use futures::FutureExt;
use platform_core::Platform;
use platform_core::capability::Stop;
use platform_core::context::{Actor, Context};

use crate::backend::QueueStore;
use crate::job::{Envelope, JobContext, JobError};
use crate::store::{self, RunRecord, now_ms};
use crate::{Jobs, State};

/// What the handler gets.
#[derive(Clone)]
pub(crate) struct Runtime {
    platform: Platform,
    jobs: Arc<Jobs>,
}

/// The `job workers` task: the queues' workers, the scheduler and the run
/// writer, until `stop`.
pub(crate) async fn run(platform: Platform, stop: Stop) {
    let Some(jobs) = platform.get::<Jobs>() else {
        return;
    };
    let Ok(state) = jobs.state().cloned() else {
        return;
    };
    let only = state.only.lock().ok().and_then(|o| o.clone());
    let rt = Runtime {
        platform: platform.clone(),
        jobs: jobs.clone(),
    };
    let poll = jobs.config.poll_interval;
    let instance = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut workers = Vec::new();
    for (queue, n) in &jobs.config.queues {
        if only.as_ref().is_some_and(|o| !o.contains(queue)) {
            continue;
        }
        let Some(store) = state.stores.get(queue).cloned() else {
            continue;
        };
        let name = format!("{queue}@{}-{instance}", std::process::id());
        let fut = run_queue(store, name, *n, poll, rt.clone(), stop.clone());
        workers.push(tokio::spawn(fut));
    }
    let writer = tokio::spawn(write_runs(state.clone(), stop.clone()));
    let scheduler = if only
        .as_ref()
        .is_none_or(|o| o.iter().any(|q| q == "scheduled"))
    {
        Some(tokio::spawn(crate::schedule::run(
            jobs.clone(),
            stop.clone(),
        )))
    } else {
        None
    };
    for w in workers {
        let _ = w.await;
    }
    if let Some(s) = scheduler {
        let _ = s.await;
    }
    let _ = writer.await;
    if let Err(e) = flush(&state).await {
        tracing::warn!(error = %e, "could not write the last job runs");
    }
}

async fn run_queue(
    store: QueueStore,
    name: String,
    concurrency: usize,
    poll: Duration,
    rt: Runtime,
    stop: Stop,
) {
    let signal = {
        let mut stop = stop.clone();
        async move {
            stop.stopped().await;
            Ok::<(), std::io::Error>(())
        }
    };
    macro_rules! work {
        ($backend:expr) => {
            WorkerBuilder::new(name.as_str())
                .backend($backend.poll_with_stream(Ticks::new(poll)))
                .data(rt)
                .concurrency(concurrency)
                .build(handle)
                .run_until(signal)
                .await
        };
    }
    let res = match store {
        QueueStore::Sqlite(s) => work!(s),
        QueueStore::Postgres(s) => work!(s),
        #[cfg(feature = "redis")]
        QueueStore::Redis(s) => work!(s),
    };
    if let Err(e) = res {
        tracing::error!(worker = %name, error = %e, "a job worker stopped with an error");
    }
}

/// A tick every `every`, waking an idle worker to look for jobs.
///
/// Written by hand because apalis's `IntervalStrategy` re-arms its timer
/// without polling it: when the fetch that a tick started finishes within
/// the same poll (an empty queue answers fast), no waker is registered for
/// the next tick, and an idle worker slept until its next heartbeat (10 s
/// by default), so a job dispatched to an idle PostgreSQL queue waited up
/// to 10 s. This stream polls the next timer before it yields a tick.
struct Ticks {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    every: Duration,
}

impl Ticks {
    fn new(every: Duration) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(every)),
            every,
        }
    }
}

impl futures::Stream for Ticks {
    type Item = ();

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<()>> {
        use std::future::Future;
        if self.sleep.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        let next = tokio::time::Instant::now() + self.every;
        self.sleep.as_mut().reset(next);
        // Registers the waker for the next tick now.
        let _ = self.sleep.as_mut().poll(cx);
        std::task::Poll::Ready(Some(()))
    }
}

/// How many runs [`Runs`] remembers.
const RUNS_KEPT: usize = 4_096;

/// The runs this process started lately (job id, attempt, due time),
/// oldest first. A back end may hand out a run again before its first
/// delivery is acknowledged (apalis-redis re-queues a worker's in-flight
/// set when it registers again); that second delivery is not a new run.
/// A retry has a new attempt and a `queue:retry` a new due time, so
/// neither is taken for a duplicate; another process (after a crash)
/// still runs the job again, as at-least-once delivery says.
#[derive(Default)]
pub(crate) struct Runs {
    seen: std::collections::HashSet<(String, u32, i64)>,
    order: std::collections::VecDeque<(String, u32, i64)>,
}

impl Runs {
    /// Notes the run of `env`; false when it was noted already.
    pub(crate) fn start(&mut self, env: &Envelope) -> bool {
        let key = (env.id.clone(), env.attempt, env.available_at);
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > RUNS_KEPT
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

/// Runs one delivery of a job.
async fn handle(env: Envelope, rt: Data<Runtime>) -> Result<(), BoxDynError> {
    let state = rt.jobs.state()?.clone();
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    let res = deliver(&rt, &state, env).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    res
}

async fn deliver(rt: &Runtime, state: &Arc<State>, env: Envelope) -> Result<(), BoxDynError> {
    let first = state
        .runs
        .lock()
        .map(|mut r| r.start(&env))
        .unwrap_or(true);
    if !first {
        tracing::info!(job = %env.id, kind = %env.kind, attempt = env.attempt, "the back end delivered a run this process already took; dropped");
        return Ok(());
    }
    // SQLite and PostgreSQL store the run time to the second: a job due
    // within the second may come early; it waits for its time here.
    let early = env.available_at - now_ms();
    if (1..=2_000).contains(&early) {
        tokio::time::sleep(Duration::from_millis(early.unsigned_abs())).await;
    }
    let started_ms = now_ms();
    let started = Instant::now();
    let wait_ms = (started_ms - env.available_at).max(0);
    let env = Arc::new(env);
    let outcome: Result<(), JobError> = match state.types.get(env.kind.as_str()) {
        None => Err(JobError::fatal(format!(
            "unknown job `{}`: no job type of that name is registered in this binary \
             (renamed or removed after it was queued?)",
            env.kind
        ))),
        Some(ty) => match context_for(&rt.platform, &env).await {
            Err(e) => Err(e),
            Ok(context) => {
                let cx = JobContext {
                    platform: rt.platform.clone(),
                    envelope: env.clone(),
                    context,
                };
                match ty.start(env.payload.clone(), cx) {
                    Err(e) => Err(JobError::fatal(format!(
                        "the payload no longer deserialises into {} (job `{}`): {e}",
                        ty.type_name(),
                        env.kind
                    ))),
                    Ok(fut) => {
                        match tokio::time::timeout(
                            ty.timeout,
                            std::panic::AssertUnwindSafe(fut).catch_unwind(),
                        )
                        .await
                        {
                            Ok(Ok(r)) => r,
                            Ok(Err(panic)) => Err(JobError::new(format!(
                                "panicked: {}",
                                panic_message(panic.as_ref())
                            ))),
                            Err(_) => {
                                Err(JobError::new(format!("timed out after {:?}", ty.timeout)))
                            }
                        }
                    }
                }
            }
        },
    };
    let run_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let mut record = RunRecord {
        job_id: env.id.clone(),
        queue: env.queue.clone(),
        kind: env.kind.clone(),
        status: "done",
        attempt: env.attempt,
        wait_ms,
        run_ms,
        finished_at: now_ms(),
        error: None,
        payload: env.payload.to_string(),
    };
    // Why the job fails for good, if it does.
    let failure: Option<String> = match outcome {
        Ok(()) => {
            release(state, &env).await;
            None
        }
        Err(e) => {
            record.error = Some(e.message().to_owned());
            let backoff = state
                .types
                .get(env.kind.as_str())
                .map(|t| match env.backoff_ms {
                    Some(ms) => {
                        crate::job::backoff_before(Duration::from_millis(ms), env.attempt + 1)
                    }
                    None => t.backoff_before(env.attempt + 1),
                });
            match backoff {
                Some(delay) if e.is_retryable() && env.attempt < env.max_attempts => {
                    record.status = "retrying";
                    let mut next = (*env).clone();
                    next.attempt += 1;
                    next.available_at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(0);
                    match state.stores.get(&env.queue) {
                        Some(store) => match store.push(next, delay).await {
                            Ok(()) => None,
                            Err(pe) => {
                                tracing::error!(job = %env.id, error = %pe, "could not queue the retry; failing the job");
                                Some(format!("{e} (and the retry could not be queued: {pe})"))
                            }
                        },
                        None => Some(e.message().to_owned()),
                    }
                }
                _ => {
                    record.status = "failed";
                    Some(e.message().to_owned())
                }
            }
        }
    };
    if let Ok(mut b) = state.buffer.lock() {
        b.push(record);
    }
    match failure {
        None => Ok(()),
        Some(error) => fail(state, &env, &error).await,
    }
}

/// Records a failed job; the delivery ends as "killed" for apalis (no
/// retry from the back end). The buffered runs, this job's last one
/// among them, are written first: whoever sees the job among the failed
/// ones also sees every run of it.
async fn fail(state: &Arc<State>, env: &Envelope, error: &str) -> Result<(), BoxDynError> {
    tracing::warn!(job = %env.id, kind = %env.kind, attempt = env.attempt, error, "job failed");
    if let Err(e) = flush(state).await {
        tracing::warn!(error = %e, "could not write job runs; will try again");
    }
    store::insert_failed(&state.db, env, error).await?;
    release(state, env).await;
    Err(Box::new(AbortError::new(error.to_owned())))
}

async fn release(state: &Arc<State>, env: &Envelope) {
    if env.release_unique
        && let Some(key) = &env.unique_key
        && let Err(e) = store::release_unique(&state.db, key, &env.id).await
    {
        tracing::warn!(job = %env.id, error = %e, "could not release a unique job key");
    }
}

/// The context a job acts in: its dispatcher's, loaded now.
async fn context_for(platform: &Platform, env: &Envelope) -> Result<Context, JobError> {
    let Some(actor) = &env.actor else {
        return Ok(Context::job(env.kind.clone()));
    };
    match platform.access().principal(actor.user_id).await {
        Ok(Some(p)) => {
            let mut cx =
                Context::new(Actor::User(Arc::new(p))).with_tag(format!("job:{}", env.kind));
            if let Some(r) = &actor.request_id {
                cx = cx.with_request_id(r.clone());
            }
            Ok(cx)
        }
        Ok(None) => Err(JobError::fatal(format!(
            "the user {} the job acts for no longer exists or is disabled",
            actor.user_id
        ))),
        Err(e) => Err(JobError::new(e)),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Writes the buffered runs.
pub(crate) async fn flush(state: &State) -> platform_core::Result<()> {
    let runs: Vec<RunRecord> = match state.buffer.lock() {
        Ok(mut b) => std::mem::take(&mut *b),
        Err(_) => return Ok(()),
    };
    if runs.is_empty() {
        return Ok(());
    }
    if let Err(e) = store::insert_runs(&state.db, &runs).await {
        // Keep them for the next try (bounded).
        if let Ok(mut b) = state.buffer.lock()
            && b.len() < 100_000
        {
            b.extend(runs);
        }
        return Err(e);
    }
    Ok(())
}

async fn write_runs(state: Arc<State>, mut stop: Stop) {
    loop {
        if stop.wait_for(Duration::from_millis(200)).await {
            return;
        }
        if let Err(e) = flush(&state).await {
            tracing::warn!(error = %e, "could not write job runs; will try again");
        }
    }
}

/// The `job run trimmer` task: deletes runs older than the retention.
pub(crate) async fn trim(platform: Platform, mut stop: Stop) {
    let Some(jobs) = platform.get::<Jobs>() else {
        return;
    };
    let Ok(state) = jobs.state().cloned() else {
        return;
    };
    let keep = i64::try_from(jobs.config.retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        if let Err(e) = store::trim_runs(&state.db, now_ms().saturating_sub(keep)).await {
            tracing::warn!(error = %e, "could not trim job runs");
        }
        if stop.wait_for(Duration::from_secs(600)).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(id: &str, attempt: u32, available_at: i64) -> Envelope {
        Envelope {
            id: id.to_owned(),
            kind: "k".to_owned(),
            payload: serde_json::Value::Null,
            actor: None,
            unique_key: None,
            release_unique: false,
            queue: "default".to_owned(),
            attempt,
            max_attempts: 3,
            backoff_ms: None,
            available_at,
        }
    }

    #[test]
    fn a_run_delivered_twice_is_taken_once_but_retries_are_new_runs() {
        let mut runs = Runs::default();
        assert!(runs.start(&env("a", 1, 10)));
        assert!(!runs.start(&env("a", 1, 10)), "the same run again");
        assert!(runs.start(&env("a", 2, 10)), "a retry");
        assert!(runs.start(&env("a", 1, 20)), "queue:retry");
        assert!(runs.start(&env("b", 1, 10)), "another job");
        // Bounded: the oldest runs are forgotten.
        for i in 0..RUNS_KEPT {
            assert!(runs.start(&env(&format!("x{i}"), 1, 0)));
        }
        assert_eq!(runs.seen.len(), RUNS_KEPT);
        assert!(runs.start(&env("a", 1, 10)), "forgotten after {RUNS_KEPT}");
    }
}
