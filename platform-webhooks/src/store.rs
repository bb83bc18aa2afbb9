//! The webhooks' tables, on all three databases: subscriptions, calls
//! (one per event per subscription), attempts, and incoming calls.

use platform_core::db::{Db, Migration, MigrationSet, Row, dialect};
use platform_core::error::Result;
use platform_core::value::{FieldType, Value};
use serde::Serialize;

/// The tables of the webhooks capability.
pub const MIGRATIONS: MigrationSet = MigrationSet {
    name: "webhooks",
    migrations: &[Migration {
        version: 1,
        name: "webhook subscriptions, calls, attempts, incoming calls",
        sqlite: "
CREATE TABLE platform_webhook_subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL, secret TEXT NOT NULL, secret_hint TEXT NOT NULL, events TEXT NOT NULL,
    description TEXT NOT NULL, active BIGINT NOT NULL, owner_id BIGINT, failures BIGINT NOT NULL,
    disabled_reason TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE platform_webhook_calls (
    id TEXT PRIMARY KEY, subscription_id BIGINT NOT NULL, event_id TEXT NOT NULL,
    event_type TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL,
    attempts BIGINT NOT NULL, last_status BIGINT, created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL, UNIQUE (subscription_id, event_id));
CREATE INDEX platform_webhook_calls_created ON platform_webhook_calls (created_at);
CREATE TABLE platform_webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, call_id TEXT NOT NULL, attempt BIGINT NOT NULL,
    status_code BIGINT, latency_ms BIGINT NOT NULL, response TEXT, error TEXT,
    created_at BIGINT NOT NULL);
CREATE INDEX platform_webhook_attempts_call ON platform_webhook_attempts (call_id);
CREATE TABLE platform_webhook_incoming (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, event_id TEXT NOT NULL, headers TEXT NOT NULL,
    payload TEXT NOT NULL, status TEXT NOT NULL, attempts BIGINT NOT NULL, error TEXT,
    received_at BIGINT NOT NULL, processed_at BIGINT, UNIQUE (source, event_id));
CREATE INDEX platform_webhook_incoming_received ON platform_webhook_incoming (received_at);",
        postgres: "
CREATE TABLE platform_webhook_subscriptions (
    id BIGSERIAL PRIMARY KEY,
    url TEXT NOT NULL, secret TEXT NOT NULL, secret_hint VARCHAR(16) NOT NULL, events TEXT NOT NULL,
    description TEXT NOT NULL, active BIGINT NOT NULL, owner_id BIGINT, failures BIGINT NOT NULL,
    disabled_reason TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE platform_webhook_calls (
    id VARCHAR(64) PRIMARY KEY, subscription_id BIGINT NOT NULL, event_id VARCHAR(64) NOT NULL,
    event_type VARCHAR(191) NOT NULL, payload TEXT NOT NULL, status VARCHAR(16) NOT NULL,
    attempts BIGINT NOT NULL, last_status BIGINT, created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL, UNIQUE (subscription_id, event_id));
CREATE INDEX platform_webhook_calls_created ON platform_webhook_calls (created_at);
CREATE TABLE platform_webhook_attempts (
    id BIGSERIAL PRIMARY KEY, call_id VARCHAR(64) NOT NULL, attempt BIGINT NOT NULL,
    status_code BIGINT, latency_ms BIGINT NOT NULL, response TEXT, error TEXT,
    created_at BIGINT NOT NULL);
CREATE INDEX platform_webhook_attempts_call ON platform_webhook_attempts (call_id);
CREATE TABLE platform_webhook_incoming (
    id VARCHAR(64) PRIMARY KEY, source VARCHAR(64) NOT NULL, event_id VARCHAR(191) NOT NULL,
    headers TEXT NOT NULL, payload TEXT NOT NULL, status VARCHAR(16) NOT NULL,
    attempts BIGINT NOT NULL, error TEXT, received_at BIGINT NOT NULL, processed_at BIGINT,
    UNIQUE (source, event_id));
CREATE INDEX platform_webhook_incoming_received ON platform_webhook_incoming (received_at);",
        mysql: "
CREATE TABLE platform_webhook_subscriptions (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    url TEXT NOT NULL, secret TEXT NOT NULL, secret_hint VARCHAR(16) NOT NULL, events TEXT NOT NULL,
    description TEXT NOT NULL, active BIGINT NOT NULL, owner_id BIGINT, failures BIGINT NOT NULL,
    disabled_reason TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE platform_webhook_calls (
    id VARCHAR(64) PRIMARY KEY, subscription_id BIGINT NOT NULL, event_id VARCHAR(64) NOT NULL,
    event_type VARCHAR(191) NOT NULL, payload MEDIUMTEXT NOT NULL, status VARCHAR(16) NOT NULL,
    attempts BIGINT NOT NULL, last_status BIGINT, created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL, UNIQUE KEY platform_webhook_calls_event (subscription_id, event_id),
    INDEX platform_webhook_calls_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE platform_webhook_attempts (
    id BIGINT AUTO_INCREMENT PRIMARY KEY, call_id VARCHAR(64) NOT NULL, attempt BIGINT NOT NULL,
    status_code BIGINT, latency_ms BIGINT NOT NULL, response TEXT, error TEXT,
    created_at BIGINT NOT NULL, INDEX platform_webhook_attempts_call (call_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE platform_webhook_incoming (
    id VARCHAR(64) PRIMARY KEY, source VARCHAR(64) NOT NULL, event_id VARCHAR(191) NOT NULL,
    headers TEXT NOT NULL, payload MEDIUMTEXT NOT NULL, status VARCHAR(16) NOT NULL,
    attempts BIGINT NOT NULL, error TEXT, received_at BIGINT NOT NULL, processed_at BIGINT,
    UNIQUE KEY platform_webhook_incoming_event (source, event_id),
    INDEX platform_webhook_incoming_received (received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;",
    }],
    backends: &[],
};

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn s(row: &Row, i: usize) -> String {
    row.get(i)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
fn n(row: &Row, i: usize) -> i64 {
    row.get(i).and_then(Value::as_i64).unwrap_or_default()
}
fn on(row: &Row, i: usize) -> Option<i64> {
    row.get(i).and_then(Value::as_i64)
}
fn os(row: &Row, i: usize) -> Option<String> {
    row.get(i).and_then(Value::as_str).map(str::to_owned)
}

/// A subscription as it is shown: the secret is never shown back, only
/// its last four characters.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Subscription {
    /// Its id.
    pub id: i64,
    /// The endpoint.
    pub url: String,
    /// The events it wants (`invoices.created`, `invoices.*`, `*`,
    /// `order.shipped`).
    pub events: Vec<String>,
    /// A note for people.
    pub description: String,
    /// Whether calls are made.
    pub active: bool,
    /// The user it belongs to (notified when it is disabled).
    pub owner_id: Option<i64>,
    /// Final failures in a row.
    pub failures: i64,
    /// Why it was disabled, when the platform disabled it.
    pub disabled_reason: Option<String>,
    /// `…` and the secret's last four characters.
    pub secret_hint: String,
    /// Created (ms since the epoch).
    pub created_at: i64,
}

impl Subscription {
    /// Whether it wants events of `event_type`: an exact name, `*`, or a
    /// prefix ending in `.*` (`invoices.*` takes `invoices.created`).
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.iter().any(|p| pattern_matches(p, event_type))
    }
}

/// Whether `pattern` (an event name, `*`, or `prefix.*`) takes `event_type`.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" || pattern == event_type {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => event_type
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.')),
        None => false,
    }
}

pub(crate) const SUB_COLUMNS: &str = "id, url, events, description, active, owner_id, failures, disabled_reason, secret_hint, created_at, secret";
pub(crate) const SUB_TYPES: &[FieldType] = &[
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::I64,
    FieldType::I64,
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::I64,
    FieldType::Text,
];

/// A subscription row and its (encrypted) secret.
pub(crate) fn subscription_of(row: &Row) -> (Subscription, String) {
    let events: Vec<String> = serde_json::from_str(&s(row, 2)).unwrap_or_default();
    (
        Subscription {
            id: n(row, 0),
            url: s(row, 1),
            events,
            description: s(row, 3),
            active: n(row, 4) != 0,
            owner_id: on(row, 5),
            failures: n(row, 6),
            disabled_reason: os(row, 7),
            secret_hint: s(row, 8),
            created_at: n(row, 9),
        },
        s(row, 10),
    )
}

/// An outgoing call: one event for one subscription.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Call {
    /// Its id (a UUID v7).
    pub id: String,
    /// The subscription.
    pub subscription_id: i64,
    /// The event's id (the same for every subscription and attempt).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The body sent (`{id, type, timestamp, data}`).
    pub payload: String,
    /// `pending`, `retrying`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// The last answer's status code.
    pub last_status: Option<i64>,
    /// Created (ms since the epoch).
    pub created_at: i64,
    /// Last changed (ms since the epoch).
    pub updated_at: i64,
}

pub(crate) const CALL_COLUMNS: &str = "id, subscription_id, event_id, event_type, payload, status, attempts, last_status, created_at, updated_at";
pub(crate) const CALL_TYPES: &[FieldType] = &[
    FieldType::Text,
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::I64,
    FieldType::I64,
    FieldType::I64,
    FieldType::I64,
];

pub(crate) fn call_of(row: &Row) -> Call {
    Call {
        id: s(row, 0),
        subscription_id: n(row, 1),
        event_id: s(row, 2),
        event_type: s(row, 3),
        payload: s(row, 4),
        status: s(row, 5),
        attempts: n(row, 6),
        last_status: on(row, 7),
        created_at: n(row, 8),
        updated_at: n(row, 9),
    }
}

/// The call `id` with its subscription and the subscription's
/// (encrypted) secret, in one query (`None` for the subscription when it
/// is gone): what one delivery attempt reads.
pub(crate) async fn call_for_delivery(
    db: &Db,
    id: &str,
) -> Result<Option<(Call, Option<(Subscription, String)>)>> {
    let mut q = db.sql();
    q.push("SELECT ");
    q.join(CALL_COLUMNS.split(", "), ", ", |q, c| {
        q.push("c.").push(c);
    });
    q.push(", ");
    q.join(SUB_COLUMNS.split(", "), ", ", |q, c| {
        q.push("s.").push(c);
    });
    q.push(" FROM platform_webhook_calls c LEFT JOIN platform_webhook_subscriptions s ON s.id = c.subscription_id WHERE c.id = ")
        .bind_str(id);
    let types: Vec<FieldType> = CALL_TYPES.iter().chain(SUB_TYPES).copied().collect();
    let Some(row) = db.fetch_optional(q, &types).await? else {
        return Ok(None);
    };
    let call = call_of(&row);
    let rest: Row = row[CALL_TYPES.len()..].to_vec();
    let sub = (!rest[0].is_null()).then(|| subscription_of(&rest));
    Ok(Some((call, sub)))
}

/// One attempt of a call.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Attempt {
    /// Its number, from 1 (a replay continues the count).
    pub attempt: i64,
    /// The answer's status code, if one came.
    pub status_code: Option<i64>,
    /// How long it took.
    pub latency_ms: i64,
    /// The first 200 characters of the answer.
    pub response: Option<String>,
    /// Why it failed, when it did (no URL path or query: they may hold a
    /// secret).
    pub error: Option<String>,
    /// When (ms since the epoch).
    pub created_at: i64,
}

pub(crate) async fn attempts_of(db: &Db, call_id: &str) -> Result<Vec<Attempt>> {
    let mut q = db.sql();
    q.push("SELECT attempt, status_code, latency_ms, response, error, created_at FROM platform_webhook_attempts WHERE call_id = ")
        .bind_str(call_id)
        .push(" ORDER BY id");
    let rows = db
        .fetch_all(
            q,
            &[
                FieldType::I64,
                FieldType::I64,
                FieldType::I64,
                FieldType::Text,
                FieldType::Text,
                FieldType::I64,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Attempt {
            attempt: n(r, 0),
            status_code: on(r, 1),
            latency_ms: n(r, 2),
            response: os(r, 3),
            error: os(r, 4),
            created_at: n(r, 5),
        })
        .collect())
}

/// Inserts the call unless the subscription already has one for the
/// event (the outbox delivers at least once); whether it was inserted.
pub(crate) async fn insert_call(db: &Db, call: &Call) -> Result<bool> {
    let mut q = db.sql();
    dialect::push_insert_ignore_into(&mut q);
    q.push("platform_webhook_calls (id, subscription_id, event_id, event_type, payload, status, attempts, created_at, updated_at) VALUES (")
        .bind_str(call.id.clone())
        .push(", ")
        .bind_i64(call.subscription_id)
        .push(", ")
        .bind_str(call.event_id.clone())
        .push(", ")
        .bind_str(call.event_type.clone())
        .push(", ")
        .bind_str(call.payload.clone())
        .push(", ")
        .bind_str("pending")
        .push(", 0, ")
        .bind_i64(call.created_at)
        .push(", ")
        .bind_i64(call.created_at)
        .push(")");
    dialect::push_ignore_conflicts(&mut q, &["subscription_id", "event_id"]);
    Ok(db.execute(q).await? == 1)
}

/// An incoming call as stored before it is processed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IncomingCall {
    /// Its id (a UUID v7).
    pub id: String,
    /// The source's name (`stripe`).
    pub source: String,
    /// The sender's event id (the key against replays).
    pub event_id: String,
    /// The request headers that matter (JSON object; no signature).
    pub headers: String,
    /// The body as received.
    pub payload: String,
    /// `pending`, `processed` or `failed`.
    pub status: String,
    /// Times the handler ran.
    pub attempts: i64,
    /// The handler's last error.
    pub error: Option<String>,
    /// Received (ms since the epoch).
    pub received_at: i64,
    /// Processed (ms since the epoch).
    pub processed_at: Option<i64>,
}

impl IncomingCall {
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

pub(crate) const IN_COLUMNS: &str =
    "id, source, event_id, headers, payload, status, attempts, error, received_at, processed_at";
pub(crate) const IN_TYPES: &[FieldType] = &[
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::I64,
    FieldType::Text,
    FieldType::I64,
    FieldType::I64,
];

pub(crate) fn incoming_of(row: &Row) -> IncomingCall {
    IncomingCall {
        id: s(row, 0),
        source: s(row, 1),
        event_id: s(row, 2),
        headers: s(row, 3),
        payload: s(row, 4),
        status: s(row, 5),
        attempts: n(row, 6),
        error: os(row, 7),
        received_at: n(row, 8),
        processed_at: on(row, 9),
    }
}

/// Stores an incoming call unless its source already has its event id;
/// whether it was stored.
pub(crate) async fn insert_incoming(db: &Db, c: &IncomingCall) -> Result<bool> {
    let mut q = db.sql();
    dialect::push_insert_ignore_into(&mut q);
    q.push("platform_webhook_incoming (id, source, event_id, headers, payload, status, attempts, received_at) VALUES (")
        .bind_str(c.id.clone())
        .push(", ")
        .bind_str(c.source.clone())
        .push(", ")
        .bind_str(c.event_id.clone())
        .push(", ")
        .bind_str(c.headers.clone())
        .push(", ")
        .bind_str(c.payload.clone())
        .push(", ")
        .bind_str("pending")
        .push(", 0, ")
        .bind_i64(c.received_at)
        .push(")");
    dialect::push_ignore_conflicts(&mut q, &["source", "event_id"]);
    Ok(db.execute(q).await? == 1)
}
