//! The access log: who requested what from the panel and the API, with what
//! result, when.
//!
//! Recording costs the request one channel send: a background writer
//! inserts the entries in batches (up to 500 per statement, at least once a
//! second), so the log never holds up a response. When the writer falls
//! behind by more than the channel's capacity, entries are dropped and
//! counted ([`AccessLog::dropped`]) rather than slowing requests down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::db::{Db, Sql};
use crate::error::Result;
use crate::value::{FieldType, Value};

/// One request.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AccessEntry {
    /// When the request arrived.
    pub at: DateTime<Utc>,
    /// `api` or `panel`.
    pub surface: &'static str,
    /// HTTP method.
    pub method: String,
    /// Path and query, with secrets and personal data (reset tokens,
    /// signatures, searches, filters on personal fields) masked by the
    /// caller ([`mask_path`]).
    pub path: String,
    /// Response status.
    pub status: u16,
    /// Time to the response head, in milliseconds.
    pub duration_ms: f64,
    /// The signed-in user, if any.
    pub user_id: Option<i64>,
    /// The API token, if any.
    pub token_id: Option<i64>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
}

/// Entries a batch statement carries at most.
const BATCH: usize = 500;
/// Entries waiting to be written at most.
const CAPACITY: usize = 50_000;

/// The access log of one database.
#[derive(Debug, Clone)]
pub struct AccessLog {
    db: Db,
    tx: mpsc::Sender<AccessEntry>,
    rx: Arc<std::sync::Mutex<Option<mpsc::Receiver<AccessEntry>>>>,
    dropped: Arc<AtomicU64>,
    enabled: bool,
    stop: Arc<tokio::sync::Notify>,
    /// Told when a whole batch is queued.
    full: Arc<tokio::sync::Notify>,
    done: Arc<tokio::sync::Notify>,
    running: Arc<std::sync::atomic::AtomicBool>,
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// What replaces a hidden value in a logged path.
pub const MASK: &str = "***";

/// Words that hide a query parameter's value wherever they appear in its
/// name (compared lower-cased, after percent-decoding): secrets (`token`,
/// `password`, `secret`, `signature`, `code`, `key`, `csrf`, `otp`,
/// `session`, `auth`), personal data (`email`, `phone`, `iban`), searches
/// (`search`, whose text is whatever a user looked for, an e-mail address
/// as often as not) and paging cursors (`after`, `before`, `cursor`, which
/// carry the sort value of a row).
pub const MASKED_PARAM_WORDS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "signature",
    "code",
    "key",
    "csrf",
    "otp",
    "session",
    "auth",
    "email",
    "phone",
    "iban",
    "search",
    "after",
    "before",
    "cursor",
];

/// Parameter names hidden when they are the whole name (the panel's global
/// search and the relation picker's lookup send `q`).
const MASKED_PARAMS: &[&str] = &["q", "query", "term"];

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: Option<&u8>| c.and_then(|c| char::from(*c).to_digit(16));
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(h), Some(l)) = (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the value of query parameter `name` (as sent, percent-encoded)
/// must be hidden: its name holds one of [`MASKED_PARAM_WORDS`], is one of
/// the search parameters, or is a filter (`filter[field]`,
/// `filter[field][op]`, `filter[relation.field]`) on a field named in
/// `sensitive_fields` (the registry's `pii`, encrypted and hidden fields).
pub fn is_masked_param(name: &str, sensitive_fields: &std::collections::HashSet<String>) -> bool {
    let name = percent_decode(name).to_lowercase();
    if MASKED_PARAMS.contains(&name.as_str()) || MASKED_PARAM_WORDS.iter().any(|w| name.contains(w))
    {
        return true;
    }
    if let Some(rest) = name.strip_prefix("filter[") {
        let field = rest.split(']').next().unwrap_or_default();
        return field.split('.').any(|part| sensitive_fields.contains(part));
    }
    false
}

/// `path_and_query` with secret and personal values replaced by [`MASK`]:
/// the query parameters of [`is_masked_param`], and the path segment after
/// `reset-password` (a reset token). Names and the other values are kept,
/// so the log still tells what was asked for.
pub fn mask_path(
    path_and_query: &str,
    sensitive_fields: &std::collections::HashSet<String>,
) -> String {
    const SECRET_SEGMENTS: [&str; 1] = ["reset-password"];
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut out = String::with_capacity(path_and_query.len());
    let mut hide_next = false;
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if hide_next && !seg.is_empty() {
            out.push_str(MASK);
        } else {
            out.push_str(seg);
        }
        hide_next = SECRET_SEGMENTS.contains(&seg);
    }
    if let Some(q) = query {
        out.push('?');
        for (i, pair) in q.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, v)) if !v.is_empty() && is_masked_param(k, sensitive_fields) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(MASK);
                }
                // A bare word with an `@` is an address sent without a name.
                None if percent_decode(pair).contains('@') => out.push_str(MASK),
                _ => out.push_str(pair),
            }
        }
    }
    out
}

/// The names of the fields whose values a logged filter must not show:
/// every `pii`, encrypted or hidden field of any resource of `registry`.
pub fn sensitive_fields(registry: &crate::resource::Registry) -> std::collections::HashSet<String> {
    registry
        .entries()
        .flat_map(|e| e.meta().field_list().iter())
        .filter(|f| f.is_pii() || f.is_encrypted() || f.is_hidden())
        .map(|f| f.name().to_lowercase())
        .collect()
}

impl AccessLog {
    /// An access log writing to `db` (the writer starts with
    /// [`AccessLog::run_writer`]); `enabled = false` records nothing.
    pub fn new(db: Db, enabled: bool) -> Self {
        let (tx, rx) = mpsc::channel(CAPACITY);
        Self {
            db,
            tx,
            rx: Arc::new(std::sync::Mutex::new(Some(rx))),
            dropped: Arc::new(AtomicU64::new(0)),
            enabled,
            stop: Arc::new(tokio::sync::Notify::new()),
            full: Arc::new(tokio::sync::Notify::new()),
            done: Arc::new(tokio::sync::Notify::new()),
            running: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Whether requests are recorded.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Records a request (never waits).
    pub fn record(&self, mut entry: AccessEntry) {
        if !self.enabled {
            return;
        }
        entry.path = truncate(&entry.path, 2048);
        entry.method = truncate(&entry.method, 16);
        entry.user_agent = entry.user_agent.map(|u| truncate(&u, 512));
        entry.request_id = entry.request_id.map(|r| truncate(&r, 64));
        if self.tx.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else if self.tx.max_capacity() - self.tx.capacity() >= BATCH {
            self.full.notify_one();
        }
    }

    /// Entries dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes recorded entries until the platform stops. Runs once: a second
    /// call returns at once.
    pub async fn run_writer(self) {
        let rx = self.rx.lock().ok().and_then(|mut r| r.take());
        let Some(mut rx) = rx else {
            return;
        };
        self.running.store(true, Ordering::SeqCst);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let first = tokio::select! {
                biased;
                () = self.stop.notified() => {
                    while let Ok(e) = rx.try_recv() {
                        batch.push(e);
                    }
                    for chunk in batch.chunks(BATCH) {
                        if let Err(e) = self.write(chunk).await {
                            tracing::warn!(error = %e, "could not write the access log");
                        }
                    }
                    self.running.store(false, Ordering::SeqCst);
                    self.done.notify_one();
                    return;
                }
                e = rx.recv() => e,
            };
            let Some(first) = first else {
                self.running.store(false, Ordering::SeqCst);
                return;
            };
            batch.push(first);
            // Gather for 250 ms, or until a batch is queued, without waking
            // for each entry (a wake-up per request was measurable load).
            let deadline = tokio::time::Instant::now() + Duration::from_millis(250);
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = self.full.notified() => {}
                // Handled at the top of the loop, after this batch.
                () = self.stop.notified() => self.stop.notify_one(),
            }
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.write(&batch).await {
                tracing::warn!(error = %e, entries = batch.len(), "could not write the access log");
            }
            batch.clear();
        }
    }

    /// Stops the writer after it has written what is queued (waits up to
    /// 5 s).
    pub async fn stop(&self) {
        if !self.running.load(Ordering::SeqCst) {
            let _ = self.flush().await;
            return;
        }
        self.stop.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.done.notified()).await;
    }

    /// Writes whatever is queued now when no writer runs (tests, commands).
    pub async fn flush(&self) -> Result<usize> {
        let mut batch = Vec::new();
        if let Ok(mut guard) = self.rx.lock()
            && let Some(rx) = guard.as_mut()
        {
            while let Ok(e) = rx.try_recv() {
                batch.push(e);
            }
        }
        for chunk in batch.chunks(BATCH) {
            self.write(chunk).await?;
        }
        Ok(batch.len())
    }

    async fn write(&self, entries: &[AccessEntry]) -> Result<()> {
        use crate::db::dialect::{self, JsonColumn};
        if entries.is_empty() {
            return Ok(());
        }
        // One statement of fixed text with the rows as one JSON parameter:
        // a `VALUES` list of 11 parameters per row was a new statement for
        // every batch size, and PostgreSQL spent 10 ms parsing each one.
        let backend = self.db.backend();
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "at": dialect::json_time(backend, e.at),
                    "surface": e.surface,
                    "method": e.method,
                    "path": e.path,
                    "status": e.status,
                    "duration_ms": e.duration_ms,
                    "user_id": e.user_id,
                    "token_id": e.token_id,
                    "ip": e.ip,
                    "user_agent": e.user_agent,
                    "request_id": e.request_id,
                })
            })
            .collect();
        let q = dialect::insert_from_json(
            backend,
            "platform_access_log",
            &[
                ("at", JsonColumn::DateTime),
                ("surface", JsonColumn::Text),
                ("method", JsonColumn::Text),
                ("path", JsonColumn::Text),
                ("status", JsonColumn::Int),
                ("duration_ms", JsonColumn::Float),
                ("user_id", JsonColumn::Int),
                ("token_id", JsonColumn::Int),
                ("ip", JsonColumn::Text),
                ("user_agent", JsonColumn::Text),
                ("request_id", JsonColumn::Text),
            ],
            serde_json::Value::Array(rows).to_string(),
        );
        self.db.execute(q).await?;
        Ok(())
    }

    /// The newest entries, optionally of one user, before entry `before`.
    pub async fn recent(
        &self,
        user_id: Option<i64>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(i64, AccessEntry)>> {
        let mut q = self.db.sql();
        q.push("SELECT id, at, surface, method, path, status, duration_ms, user_id, token_id, ip, user_agent, request_id FROM platform_access_log WHERE 1 = 1");
        if let Some(u) = user_id {
            q.push(" AND user_id = ").bind_i64(u);
        }
        if let Some(b) = before {
            q.push(" AND id < ").bind_i64(b);
        }
        q.push(" ORDER BY id DESC LIMIT ").int(limit.clamp(1, 1000));
        let types = [
            FieldType::I64,
            FieldType::DateTime,
            FieldType::Text,
            FieldType::Text,
            FieldType::Text,
            // `status INTEGER` (INT4 on PostgreSQL).
            FieldType::I32,
            FieldType::F64,
            FieldType::I64,
            FieldType::I64,
            FieldType::Text,
            FieldType::Text,
            FieldType::Text,
        ];
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Ok(self
            .db
            .fetch_all(q, &types)
            .await?
            .iter()
            .map(|r| {
                let surface = match r[2].as_str() {
                    Some("panel") => "panel",
                    Some("api") => "api",
                    _ => "other",
                };
                (
                    r[0].as_i64().unwrap_or_default(),
                    AccessEntry {
                        at: match r[1] {
                            Value::DateTime(t) => t,
                            _ => DateTime::<Utc>::default(),
                        },
                        surface,
                        method: text(&r[3]).unwrap_or_default(),
                        path: text(&r[4]).unwrap_or_default(),
                        status: u16::try_from(r[5].as_i64().unwrap_or(0)).unwrap_or(0),
                        duration_ms: match r[6] {
                            Value::Float(f) => f,
                            _ => 0.0,
                        },
                        user_id: r[7].as_i64(),
                        token_id: r[8].as_i64(),
                        ip: text(&r[9]),
                        user_agent: text(&r[10]),
                        request_id: text(&r[11]),
                    },
                )
            })
            .collect())
    }

    /// Deletes entries older than `before`; returns how many.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut q: Sql = self.db.sql();
        q.push("DELETE FROM platform_access_log WHERE at < ")
            .bind(Value::DateTime(before), FieldType::DateTime);
        self.db.execute(q).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_filters_and_secrets_are_masked() {
        let pii: std::collections::HashSet<String> =
            ["email".to_owned(), "iban".to_owned(), "notes".to_owned()].into();
        assert_eq!(
            mask_path(
                "/api/customers?search=ada@example.com&filter[email]=x&token=abc",
                &pii
            ),
            "/api/customers?search=***&filter[email]=***&token=***"
        );
        // Encoded names, other cases, operators and relations.
        assert_eq!(
            mask_path(
                "/api/customers?filter%5Bnotes%5D%5Bcontains%5D=secret+plan&filter[status]=paid&Access_Token=x&filter[customer.notes]=y",
                &pii
            ),
            "/api/customers?filter%5Bnotes%5D%5Bcontains%5D=***&filter[status]=paid&Access_Token=***&filter[customer.notes]=***"
        );
        assert_eq!(
            mask_path(
                "/admin/search?q=ada%40example.com&page[after]=eyJz&sort=-email&page[size]=5",
                &pii
            ),
            "/admin/search?q=***&page[after]=***&sort=-email&page[size]=5"
        );
        assert_eq!(
            mask_path("/admin/reset-password/abc123?x=1", &pii),
            "/admin/reset-password/***?x=1"
        );
        assert_eq!(
            mask_path(
                "/admin/verify-email?user=3&email=a%40b.c&expires=9&signature=dead",
                &pii
            ),
            "/admin/verify-email?user=3&email=***&expires=9&signature=***"
        );
        assert_eq!(mask_path("/api/x?ada@example.com", &pii), "/api/x?***");
        assert_eq!(mask_path("/api/x?search=&a", &pii), "/api/x?search=&a");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41+b"), "%zzA b");
    }
}
