//! The transactional outbox: durable events about committed changes.
//!
//! When something subscribes to a resource's events ([`Outbox::subscribe`]),
//! the write path records each change to it as a row of
//! `platform_outbox`, **in the transaction of the change** (next to the row
//! and its audit entry). After the commit, the dispatcher delivers the
//! event to the subscribers at once; should the process die first, a later
//! sweep (any node's, after [`PlatformBuilder::outbox_retry_after`]) delivers
//! it. So:
//!
//! - a rolled-back transaction fires nothing (its row is rolled back too);
//! - a committed one is delivered **at least once** to each subscriber:
//!   use [`Event::id`] to make a subscriber idempotent;
//! - a subscriber that fails is retried with exponential backoff (1 s, 2 s,
//!   4 s, ... at most 10 minutes apart), up to [`MAX_ATTEMPTS`], then the
//!   event is marked failed with its error; the others are not delayed and
//!   the write never waits on a subscriber;
//! - a delivered event's row is deleted (in bulk, by one task): the table
//!   holds what is still to deliver and what failed, never the history
//!   (that is the audit trail's);
//! - events of different records may arrive in any order.
//!
//! An event carries the changed fields with their old and new values under
//! the audit's rules (fields excluded from the audit are left out,
//! encrypted values are `[redacted]`), a snapshot of the actor, the
//! request id and the context's tags.
//!
//! Subscribers are named: the name is stored with each event, so that after
//! a restart the right subscribers get what they missed. Subscribe before
//! the platform serves (in a capability's
//! [`on_start`](crate::capability::Setup::on_start), say); a stored event
//! whose subscriber no longer exists fails after its attempts.
//!
//! Nothing is written when nothing subscribes: the outbox costs a resource
//! nothing until something listens to it.
//!
//! [`PlatformBuilder::outbox_retry_after`]: crate::platform::PlatformBuilder::outbox_retry_after

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::audit::{AuditValues, NewEntry};
use crate::capability::Stop;
use crate::context::Context;
use crate::db::{Db, Sql, Tx};
use crate::error::{BoxError, Result};
use crate::event::EventKind;
use crate::resource::Resource;
use crate::value::{FieldType, Value};

/// How many times a subscriber gets an event before it is marked failed.
pub const MAX_ATTEMPTS: u32 = 10;

/// How long one subscriber may take with one event.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// Events delivered at the same time by the dispatcher.
const CONCURRENCY: usize = 32;

/// Events one `INSERT` carries, at most (13 parameters each).
const INSERT_CHUNK: usize = 200;

/// Delivered events removed per statement, at most.
const REMOVE_BATCH: usize = 500;

/// Who made a change, as it was when the change was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorSnapshot {
    /// `user`, `token`, `job`, `console`, `system` or `anonymous`.
    pub kind: String,
    /// The user behind the actor, if any. A job acting on their behalf
    /// loads their permissions again when it runs.
    pub user_id: Option<i64>,
    /// A label (e-mail, job name).
    pub label: Option<String>,
}

impl ActorSnapshot {
    /// The snapshot of `ctx`'s actor.
    pub fn of(ctx: &Context) -> Self {
        let a = ctx.actor();
        Self {
            kind: a.kind().to_owned(),
            user_id: a.user_id(),
            label: a.label(),
        }
    }
}

/// One field's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The value before (`null` for a created record).
    pub old: serde_json::Value,
    /// The value after (`null` for a deleted record).
    pub new: serde_json::Value,
}

/// A committed change, as subscribers get it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event's id (a UUID v7), the same at every delivery: the key of
    /// an idempotent subscriber.
    pub id: String,
    /// What happened (`created`, `updated`, ...).
    pub event: String,
    /// The resource's singular name.
    pub resource: String,
    /// The record's id, as text.
    pub record_id: String,
    /// The changed fields (every audited field on create and delete).
    pub changes: BTreeMap<String, FieldChange>,
    /// Who made the change.
    pub actor: ActorSnapshot,
    /// The request that made it, if any.
    pub request_id: Option<String>,
    /// The context's tags (`import`, `bulk`, ...).
    pub tags: Vec<String>,
    /// When it was committed (to the microsecond).
    pub occurred_at: DateTime<Utc>,
    /// Which delivery this is (1 the first time).
    pub attempt: u32,
    /// The subscribers it is still for (their names).
    #[serde(skip)]
    listeners: Vec<String>,
    /// The subscribers it reached at earlier attempts.
    #[serde(skip)]
    delivered: Vec<String>,
}

impl Event {
    /// What happened, when it is one of the write path's events.
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::from_name(&self.event)
    }
    /// Whether it is about a record of `R`.
    pub fn is<R: Resource>(&self) -> bool {
        self.resource == R::meta().name()
    }
    /// Whether `field` changed.
    pub fn changed(&self, field: &str) -> bool {
        self.changes.contains_key(field)
    }
    /// The new value of `field`, read as `T` (`None` when it did not change
    /// or does not read as `T`).
    pub fn new_value<T: serde::de::DeserializeOwned>(&self, field: &str) -> Option<T> {
        let c = self.changes.get(field)?;
        serde_json::from_value(c.new.clone()).ok()
    }
    /// The old value of `field`, read as `T`.
    pub fn old_value<T: serde::de::DeserializeOwned>(&self, field: &str) -> Option<T> {
        let c = self.changes.get(field)?;
        serde_json::from_value(c.old.clone()).ok()
    }
}

/// Handles events; see the [module docs](self). Closures
/// `Fn(Event) -> impl Future<Output = Result<(), BoxError>>` are
/// subscribers too.
#[async_trait]
pub trait Subscriber: Send + Sync + 'static {
    /// Handles one event. An error (or a panic, or 30 s without an answer)
    /// means: deliver it again later.
    async fn handle(&self, event: Event) -> std::result::Result<(), BoxError>;
}

#[async_trait]
impl<F, Fut> Subscriber for F
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), BoxError>> + Send + 'static,
{
    async fn handle(&self, event: Event) -> std::result::Result<(), BoxError> {
        self(event).await
    }
}

/// Which events a subscription wants (see [`Outbox::subscribe_to_where`]).
pub type EventFilter = Arc<dyn Fn(&Event) -> bool + Send + Sync>;

struct Subscription {
    name: String,
    resource: Option<String>,
    filter: Option<EventFilter>,
    subscriber: Arc<dyn Subscriber>,
}

struct Inner {
    subs: RwLock<Vec<Subscription>>,
    tx: mpsc::UnboundedSender<Vec<Event>>,
    rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Vec<Event>>>>,
    retry_after: Duration,
}

/// The outbox: subscriptions and the dispatcher. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .inner
            .subs
            .read()
            .map(|s| s.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default();
        f.debug_struct("Outbox")
            .field("subscribers", &names)
            .field("retry_after", &self.inner.retry_after)
            .finish()
    }
}

impl Outbox {
    /// An outbox whose sweep takes over an undelivered event `retry_after`
    /// after its commit.
    pub(crate) fn new(retry_after: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            inner: Arc::new(Inner {
                subs: RwLock::new(Vec::new()),
                tx,
                rx: std::sync::Mutex::new(Some(rx)),
                retry_after,
            }),
        }
    }

    /// Subscribes `subscriber`, called `name` (unique: a second
    /// subscription of one name replaces the first), to every resource's
    /// events.
    pub fn subscribe(&self, name: impl Into<String>, subscriber: impl Subscriber) {
        self.push(name.into(), None, None, Arc::new(subscriber));
    }

    /// Subscribes `subscriber` to the events of `R`.
    pub fn subscribe_to<R: Resource>(&self, name: impl Into<String>, subscriber: impl Subscriber) {
        self.push(
            name.into(),
            Some(R::meta().name().to_owned()),
            None,
            Arc::new(subscriber),
        );
    }

    /// Subscribes `subscriber` to the events of `R` that `filter` accepts.
    /// The filter runs in the write's transaction, before anything is
    /// stored: an event no subscriber wants costs no outbox row (a bulk
    /// load that never matches writes none). It sees the event as the
    /// subscriber would (changes, actor, tags) and must be cheap and pure.
    ///
    /// ```no_run
    /// # use platform_core::outbox::Event;
    /// # fn sub<R: platform_core::resource::Resource>(outbox: &platform_core::outbox::Outbox) {
    /// /// Status changes to `sent` made by a user.
    /// fn sent_by_a_user(e: &Event) -> bool {
    ///     e.event == "updated"
    ///         && e.actor.user_id.is_some()
    ///         && e.new_value::<String>("status").as_deref() == Some("sent")
    /// }
    /// outbox.subscribe_to_where::<R>("invoice_sent", sent_by_a_user, |e: Event| async move {
    ///     println!("{} sent", e.record_id);
    ///     Ok(())
    /// });
    /// # }
    /// ```
    pub fn subscribe_to_where<R: Resource>(
        &self,
        name: impl Into<String>,
        filter: impl Fn(&Event) -> bool + Send + Sync + 'static,
        subscriber: impl Subscriber,
    ) {
        self.push(
            name.into(),
            Some(R::meta().name().to_owned()),
            Some(Arc::new(filter)),
            Arc::new(subscriber),
        );
    }

    /// Subscribes `subscriber` to the events of every resource that
    /// `filter` accepts (run in the write's transaction, as for
    /// [`Outbox::subscribe_to_where`]).
    pub fn subscribe_where(
        &self,
        name: impl Into<String>,
        filter: impl Fn(&Event) -> bool + Send + Sync + 'static,
        subscriber: impl Subscriber,
    ) {
        self.push(
            name.into(),
            None,
            Some(Arc::new(filter)),
            Arc::new(subscriber),
        );
    }

    /// Subscribes `subscriber` to the events of the resource with this
    /// singular name.
    pub fn subscribe_to_named(
        &self,
        name: impl Into<String>,
        resource: impl Into<String>,
        subscriber: impl Subscriber,
    ) {
        self.push(
            name.into(),
            Some(resource.into()),
            None,
            Arc::new(subscriber),
        );
    }

    fn push(
        &self,
        name: String,
        resource: Option<String>,
        filter: Option<EventFilter>,
        subscriber: Arc<dyn Subscriber>,
    ) {
        if let Ok(mut subs) = self.inner.subs.write() {
            subs.retain(|s| s.name != name);
            subs.push(Subscription {
                name,
                resource,
                filter,
                subscriber,
            });
        }
    }

    /// Whether anything subscribes to `resource`'s events.
    pub fn has_subscribers(&self, resource: &str) -> bool {
        self.inner.subs.read().is_ok_and(|subs| {
            subs.iter()
                .any(|s| s.resource.as_deref().is_none_or(|r| r == resource))
        })
    }

    /// The names of the subscribers of `resource`'s events.
    pub fn subscribers_of(&self, resource: &str) -> Vec<String> {
        self.inner
            .subs
            .read()
            .map(|subs| {
                subs.iter()
                    .filter(|s| s.resource.as_deref().is_none_or(|r| r == resource))
                    .map(|s| s.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The subscribers of `resource` with their filters.
    fn subscriptions_of(&self, resource: &str) -> Vec<(String, Option<EventFilter>)> {
        self.inner
            .subs
            .read()
            .map(|subs| {
                subs.iter()
                    .filter(|s| s.resource.as_deref().is_none_or(|r| r == resource))
                    .map(|s| (s.name.clone(), s.filter.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn subscriber(&self, name: &str) -> Option<Arc<dyn Subscriber>> {
        self.inner.subs.read().ok().and_then(|subs| {
            subs.iter()
                .find(|s| s.name == name)
                .map(|s| s.subscriber.clone())
        })
    }

    /// Records `entries` (changes of one resource) in `tx` for the
    /// resource's subscribers, if it has any; they are handed to the
    /// dispatcher when `tx` commits.
    pub(crate) async fn record(
        &self,
        tx: &mut Tx,
        ctx: &Context,
        entries: &[NewEntry],
    ) -> Result<()> {
        let events = self.events_for(ctx, entries);
        if events.is_empty() {
            return Ok(());
        }
        for chunk in events.chunks(INSERT_CHUNK) {
            let mut q = tx.sql();
            self.push_insert(&mut q, chunk);
            tx.execute(q).await?;
        }
        tx.defer_events(events);
        Ok(())
    }

    /// The events of `entries` (changes of one resource, made by `ctx`)
    /// that a subscriber takes; empty when none does.
    pub(crate) fn events_for(&self, ctx: &Context, entries: &[NewEntry]) -> Vec<Event> {
        let Some(first) = entries.first() else {
            return Vec::new();
        };
        let subscriptions = self.subscriptions_of(&first.resource);
        if subscriptions.is_empty() {
            return Vec::new();
        }
        let now = crate::db::truncate_micros(Utc::now());
        let actor = ActorSnapshot::of(ctx);
        let mut events: Vec<Event> = entries
            .iter()
            .map(|e| Event {
                id: uuid::Uuid::now_v7().to_string(),
                event: e.event.clone(),
                resource: e.resource.clone(),
                record_id: e.record_id.clone(),
                changes: changes(e.old.as_ref(), e.new.as_ref()),
                actor: actor.clone(),
                request_id: ctx.request_id().map(str::to_owned),
                tags: ctx.tags().to_vec(),
                occurred_at: now,
                attempt: 1,
                listeners: Vec::new(),
                delivered: Vec::new(),
            })
            .collect();
        // Each event goes to the subscribers whose filter takes it; one
        // nobody takes is not stored.
        for event in &mut events {
            event.listeners = subscriptions
                .iter()
                .filter(|(_, filter)| filter.as_ref().is_none_or(|f| f(event)))
                .map(|(name, _)| name.clone())
                .collect();
        }
        events.retain(|e| !e.listeners.is_empty());
        events
    }

    /// Appends to a `WITH` list (after at least one query of it) the insert
    /// of `events` (at most [`INSERT_CHUNK`], from [`Outbox::events_for`]),
    /// for a statement that writes the change itself too; they go to
    /// [`Outbox::committed`] once it has run.
    pub(crate) fn push_chained_insert(&self, q: &mut Sql, events: &[Event]) {
        debug_assert!(events.len() <= INSERT_CHUNK);
        if !events.is_empty() {
            q.push(", outbox_rows AS (");
            self.push_insert(q, events);
            q.push(")");
        }
    }

    /// Appends `INSERT INTO platform_outbox (…) VALUES …` of `events`.
    fn push_insert(&self, q: &mut Sql, events: &[Event]) {
        q.push(
            "INSERT INTO platform_outbox (event_id, event, resource, record_id, changes, actor, \
             request_id, tags, listeners, delivered, attempts, created_at, next_attempt_at) VALUES ",
        );
        q.join(events, ", ", |q, e| {
            q.push("(")
                .bind_str(e.id.as_str())
                .push(", ")
                .bind_str(e.event.as_str())
                .push(", ")
                .bind_str(e.resource.as_str())
                .push(", ")
                .bind_str(e.record_id.as_str())
                .push(", ")
                .bind_str(serde_json::to_string(&e.changes).unwrap_or_default())
                .push(", ")
                .bind_str(serde_json::to_string(&e.actor).unwrap_or_default())
                .push(", ")
                .bind(
                    e.request_id.clone().map_or(Value::Null, Value::Text),
                    FieldType::Text,
                )
                .push(", ")
                .bind_str(serde_json::to_string(&e.tags).unwrap_or_default())
                .push(", ")
                .bind_str(serde_json::to_string(&e.listeners).unwrap_or_default())
                .push(", '[]', 0, ")
                .bind(Value::DateTime(e.occurred_at), FieldType::DateTime)
                .push(", ")
                .bind(
                    Value::DateTime(e.occurred_at + self.retry_after_chrono()),
                    FieldType::DateTime,
                )
                .push(")");
        });
    }

    fn retry_after_chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.inner.retry_after).unwrap_or(chrono::Duration::seconds(30))
    }

    /// Hands committed events to the dispatcher.
    pub(crate) fn committed(&self, events: Vec<Event>) {
        if !events.is_empty() {
            // The dispatcher gone (shutdown): the sweep delivers them.
            let _ = self.inner.tx.send(events);
        }
    }

    /// Runs the dispatcher until `stop`: delivers committed events at once
    /// and sweeps the table every `sweep_every` for events nobody
    /// delivered (a process that died) and for retries.
    pub async fn run_dispatcher(self, db: Db, sweep_every: Duration, mut stop: Stop) {
        let Some(mut rx) = self.inner.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        let mut next_sweep = tokio::time::Instant::now();
        // Delivered events are removed by one task, many per statement:
        // under load one `DELETE` (and one commit) covers what arrived
        // meanwhile, where each event used to take its own.
        let (done, done_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let remover = tokio::spawn(Self::run_remover(db.clone(), done_rx));
        loop {
            tokio::select! {
                biased;
                () = stop.stopped() => break,
                batch = rx.recv() => {
                    let Some(batch) = batch else { break };
                    for event in batch {
                        let permit = limit.clone().acquire_owned().await;
                        let (outbox, db, done) = (self.clone(), db.clone(), done.clone());
                        tasks.spawn(async move {
                            let (event, errors) = outbox.run_listeners(event).await;
                            if errors.is_empty() {
                                let _ = done.send(event.id);
                            } else {
                                outbox.settle_logged(&db, &event, &errors).await;
                            }
                            drop(permit);
                        });
                    }
                }
                () = tokio::time::sleep_until(next_sweep) => {
                    // Nothing subscribed, nothing to deliver: no query.
                    let idle = self.inner.subs.read().is_ok_and(|s| s.is_empty());
                    if !idle && let Err(e) = self.sweep(&db).await {
                        tracing::warn!(error = %e, "the outbox sweep failed; will retry");
                    }
                    next_sweep = tokio::time::Instant::now() + sweep_every;
                }
            }
            while tasks.try_join_next().is_some() {}
        }
        // What is being delivered finishes (within the grace period);
        // what was not started stays in the table for the next sweep.
        while tasks.join_next().await.is_some() {}
        drop(done);
        let _ = remover.await;
    }

    /// Removes delivered events until every sender is gone: what is
    /// waiting (up to [`REMOVE_BATCH`]) in one statement. A failed removal
    /// leaves the events due: the sweep delivers them again (at least
    /// once).
    async fn run_remover(db: Db, mut rx: tokio::sync::mpsc::UnboundedReceiver<String>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < REMOVE_BATCH {
                match rx.try_recv() {
                    Ok(id) => batch.push(id),
                    Err(_) => break,
                }
            }
            if let Err(e) = remove_delivered(&db, &batch).await {
                tracing::warn!(error = %e, events = batch.len(), "could not record outbox deliveries; the sweep delivers them again");
            }
        }
    }

    /// Delivers the due events nobody is delivering; returns how many it
    /// took.
    pub async fn sweep(&self, db: &Db) -> Result<usize> {
        let now = crate::db::truncate_micros(Utc::now());
        let mut q = db.sql();
        q.push("SELECT id FROM platform_outbox WHERE dispatched_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ")
            .bind(Value::DateTime(now), FieldType::DateTime)
            .push(" AND (claimed_until IS NULL OR claimed_until < ")
            .bind(Value::DateTime(now), FieldType::DateTime)
            .push(") ORDER BY id LIMIT 100");
        let ids: Vec<i64> = db
            .fetch_all(q, &[FieldType::I64])
            .await?
            .into_iter()
            .filter_map(|r| r.first().and_then(Value::as_i64))
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        // Claim them: another node sweeping at the same time takes none of
        // them (the claim is this sweep's own time, to the microsecond,
        // plus a random offset).
        let mut r = [0u8; 2];
        crate::crypto::random_bytes(&mut r);
        let claim = now
            + self.retry_after_chrono()
            + chrono::Duration::microseconds(i64::from(u16::from_le_bytes(r)));
        let mut q = db.sql();
        q.push("UPDATE platform_outbox SET claimed_until = ")
            .bind(Value::DateTime(claim), FieldType::DateTime)
            .push(" WHERE id");
        q.in_list(&ids, |q, id| {
            q.bind_i64(*id);
        });
        q.push(" AND (claimed_until IS NULL OR claimed_until < ")
            .bind(Value::DateTime(now), FieldType::DateTime)
            .push(")");
        db.execute(q).await?;
        let mut q = db.sql();
        q.push("SELECT event_id, event, resource, record_id, changes, actor, request_id, tags, listeners, delivered, attempts, created_at FROM platform_outbox WHERE claimed_until = ")
            .bind(Value::DateTime(claim), FieldType::DateTime)
            .push(" AND id");
        q.in_list(&ids, |q, id| {
            q.bind_i64(*id);
        });
        let types = [
            FieldType::Text,
            FieldType::Text,
            FieldType::Text,
            FieldType::Text,
            FieldType::Text,
            FieldType::Text,
            FieldType::Text,
            FieldType::Text,
            FieldType::Text,
            FieldType::Text,
            FieldType::I64,
            FieldType::DateTime,
        ];
        let rows = db.fetch_all(q, &types).await?;
        let n = rows.len();
        for row in rows {
            match event_from_row(row) {
                Some(event) => self.deliver(db, event).await,
                None => tracing::warn!("an outbox row could not be read; skipped"),
            }
        }
        Ok(n)
    }

    /// Delivers `event` to the subscribers it has not reached yet, then
    /// records the outcome.
    async fn deliver(&self, db: &Db, event: Event) {
        let (event, errors) = self.run_listeners(event).await;
        self.settle_logged(db, &event, &errors).await;
    }

    /// Hands `event` to the subscribers it has not reached yet; answers it
    /// (with those reached moved to `delivered`) and the failures.
    async fn run_listeners(&self, mut event: Event) -> (Event, Vec<String>) {
        let mut errors = Vec::new();
        let mut delivered = Vec::new();
        for name in event.listeners.clone() {
            let Some(sub) = self.subscriber(&name) else {
                errors.push(format!(
                    "{name}: no subscriber of this name in this process"
                ));
                continue;
            };
            let call = sub.handle(event.clone());
            let outcome = tokio::time::timeout(
                HANDLER_TIMEOUT,
                futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(call)),
            )
            .await;
            match outcome {
                Ok(Ok(Ok(()))) => delivered.push(name),
                Ok(Ok(Err(e))) => errors.push(format!("{name}: {e}")),
                Ok(Err(_)) => errors.push(format!("{name}: panicked")),
                Err(_) => errors.push(format!(
                    "{name}: no answer within {} s",
                    HANDLER_TIMEOUT.as_secs()
                )),
            }
        }
        event.listeners.retain(|n| !delivered.contains(n));
        event.delivered.extend(delivered);
        (event, errors)
    }

    /// Records the outcome of one delivery; a failure to record it is
    /// logged.
    async fn settle_logged(&self, db: &Db, event: &Event, errors: &[String]) {
        if let Err(e) = self.settle(db, event, errors).await {
            // The row stays due: the sweep delivers it again (at least once).
            tracing::warn!(error = %e, event = %event.id, "could not record an outbox delivery");
        }
    }

    async fn settle(&self, db: &Db, event: &Event, errors: &[String]) -> Result<()> {
        if errors.is_empty() {
            return remove_delivered(db, std::slice::from_ref(&event.id)).await;
        }
        let now = crate::db::truncate_micros(Utc::now());
        // `delivered` keeps what reached its subscriber, so a retry goes
        // only to the others.
        let remaining = serde_json::to_string(&event.listeners).unwrap_or_default();
        let delivered = serde_json::to_string(&event.delivered).unwrap_or_default();
        let attempts = event.attempt;
        tracing::warn!(event = %event.id, resource = %event.resource, attempt = attempts, errors = ?errors, "an outbox subscriber failed");
        let error = errors.join("; ");
        let error: String = error.chars().take(2000).collect();
        let mut q = db.sql();
        q.push("UPDATE platform_outbox SET attempts = ")
            .bind_i64(i64::from(attempts))
            .push(", listeners = ")
            .bind_str(remaining)
            .push(", delivered = ")
            .bind_str(delivered)
            .push(", last_error = ")
            .bind_str(error)
            .push(", claimed_until = NULL, ");
        if attempts >= MAX_ATTEMPTS {
            q.push("failed_at = ")
                .bind(Value::DateTime(now), FieldType::DateTime);
        } else {
            q.push("next_attempt_at = ").bind(
                Value::DateTime(now + backoff(attempts)),
                FieldType::DateTime,
            );
        }
        q.push(" WHERE event_id = ").bind_str(event.id.as_str());
        db.execute(q).await?;
        Ok(())
    }

    /// Counts of the outbox rows: `(pending, failed)`.
    pub async fn counts(&self, db: &Db) -> Result<(i64, i64)> {
        let count = |failed: bool| {
            let mut q = db.sql();
            q.push("SELECT COUNT(*) FROM platform_outbox WHERE ");
            q.push(if failed {
                "failed_at IS NOT NULL"
            } else {
                "dispatched_at IS NULL AND failed_at IS NULL"
            });
            q
        };
        let pending = db.fetch_all(count(false), &[FieldType::I64]).await?;
        let failed = db.fetch_all(count(true), &[FieldType::I64]).await?;
        let first = |rows: &[crate::db::Row]| {
            rows.first()
                .and_then(|r| r.first())
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        Ok((first(&pending), first(&failed)))
    }
}

/// Deletes the rows of delivered events: the outbox holds what is still
/// to deliver and what failed, the audit trail holds the history.
async fn remove_delivered(db: &Db, event_ids: &[String]) -> Result<()> {
    if event_ids.is_empty() {
        return Ok(());
    }
    let mut q = db.sql();
    // Not `Sql::in_list`: this runs after every write under load, in small
    // batches whose few lengths stay prepared on the connection, where
    // `in_list` would parse and plan every batch again. The table holds
    // only what is still to deliver.
    q.push("DELETE FROM platform_outbox WHERE event_id IN (");
    q.join(event_ids, ", ", |q, id| {
        q.bind_str(id.as_str());
    });
    q.push(")");
    db.execute(q).await?;
    Ok(())
}

/// The wait before attempt `n + 1`: 1 s doubling, at most 10 minutes.
fn backoff(attempts: u32) -> chrono::Duration {
    let secs = 1_i64 << attempts.saturating_sub(1).min(10);
    chrono::Duration::seconds(secs.min(600))
}

fn changes(old: Option<&AuditValues>, new: Option<&AuditValues>) -> BTreeMap<String, FieldChange> {
    let mut out = BTreeMap::new();
    for (k, v) in old.into_iter().flatten() {
        out.insert(
            k.clone(),
            FieldChange {
                old: v.clone(),
                new: serde_json::Value::Null,
            },
        );
    }
    for (k, v) in new.into_iter().flatten() {
        out.entry(k.clone())
            .or_insert(FieldChange {
                old: serde_json::Value::Null,
                new: serde_json::Value::Null,
            })
            .new = v.clone();
    }
    out
}

fn event_from_row(row: crate::db::Row) -> Option<Event> {
    let text = |i: usize| row.get(i).and_then(Value::as_str).map(str::to_owned);
    let attempts = row.get(10).and_then(Value::as_i64).unwrap_or(0);
    let occurred_at = match row.get(11) {
        Some(Value::DateTime(t)) => *t,
        _ => return None,
    };
    let delivered: Vec<String> = serde_json::from_str(&text(9)?).ok()?;
    let mut listeners: Vec<String> = serde_json::from_str(&text(8)?).ok()?;
    listeners.retain(|l| !delivered.contains(l));
    Some(Event {
        id: text(0)?,
        event: text(1)?,
        resource: text(2)?,
        record_id: text(3)?,
        changes: serde_json::from_str(&text(4)?).ok()?,
        actor: serde_json::from_str(&text(5)?).ok()?,
        request_id: text(6),
        tags: serde_json::from_str(&text(7)?).ok()?,
        occurred_at,
        attempt: u32::try_from(attempts)
            .unwrap_or(u32::MAX)
            .saturating_add(1),
        listeners,
        delivered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(1).num_seconds(), 1);
        assert_eq!(backoff(2).num_seconds(), 2);
        assert_eq!(backoff(5).num_seconds(), 16);
        assert_eq!(backoff(30).num_seconds(), 600);
    }

    #[test]
    fn changes_pair_old_and_new() {
        let mut old = AuditValues::new();
        old.insert("a".into(), serde_json::json!(1));
        let mut new = AuditValues::new();
        new.insert("a".into(), serde_json::json!(2));
        new.insert("b".into(), serde_json::json!("x"));
        let c = changes(Some(&old), Some(&new));
        assert_eq!(c["a"].old, serde_json::json!(1));
        assert_eq!(c["a"].new, serde_json::json!(2));
        assert_eq!(c["b"].old, serde_json::Value::Null);
    }
}
