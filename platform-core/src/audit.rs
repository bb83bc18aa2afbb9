//! The audit trail: who changed what, when and from where, tamper-evident.
//!
//! ## Writing
//! The write path inserts audit entries in the same transaction as the
//! change ([`insert_entries`]); a rolled-back change leaves no entry.
//! Inserting takes no lock beyond the row itself, so audited writes to
//! different records (and resources) never wait on each other.
//!
//! ## Sealing: the hash chain in commit order
//! Entries are inserted unsealed (`seq`, `prev_hash` and `hash` empty). A
//! sealer ([`AuditLog::seal`]) takes the chain head under a lock (`FOR
//! UPDATE` on PostgreSQL and MySQL, the write lock on SQLite), reads the
//! committed unsealed entries in id order, gives each the next sequence
//! number, the previous entry's hash and the SHA-256 of its own canonical
//! content, and moves the head, which it signs with the application key.
//! Because only committed entries are visible to it, entries are chained in
//! the order they committed; an entry whose transaction commits late is
//! simply sealed in a later batch. One sealer runs at a time across every
//! process (the lock), so many writers in many processes still form one
//! valid chain. The platform runs the sealer in the background after each
//! write; `audit:verify` seals before checking.
//!
//! ## Verifying and pruning
//! [`AuditLog::verify`] walks the chain in sequence order, recomputes each
//! hash, checks each link and the signed head, and names the first broken
//! entry. [`AuditLog::prune`] deletes a prefix of the chain and stores a
//! signed checkpoint of the last deleted entry, from which the remainder
//! still verifies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::context::Context;
use crate::crypto::{Crypto, Signature, hex, random_bytes};
use crate::db::{Backend, Db, Sql, Tx};
use crate::error::{Error, Result};
use crate::value::{FieldType, Value};

/// The value stored in the audit trail in place of an encrypted field.
pub const REDACTED: &str = "[encrypted]";
/// The value shown in place of personal data to users without `view_pii`.
pub const MASKED: &str = "[hidden]";

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Field values in an audit entry: field name to JSON value, sorted.
pub type AuditValues = BTreeMap<String, serde_json::Value>;

/// An audit entry to write.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// `created`, `updated`, `deleted`, `restored`, `force_deleted`, or a
    /// custom event.
    pub event: String,
    /// The resource's singular name (`invoice`).
    pub resource: String,
    /// The record's id.
    pub record_id: String,
    /// Values before (changed fields only).
    pub old: Option<AuditValues>,
    /// Values after (changed fields only).
    pub new: Option<AuditValues>,
}

/// An audit entry as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entry {
    /// Row id.
    pub id: i64,
    /// Position in the chain (`None` until sealed).
    pub seq: Option<i64>,
    /// Event name.
    pub event: String,
    /// Resource name.
    pub resource: String,
    /// Record id.
    pub record_id: String,
    /// Old values (JSON text as stored).
    pub old_values: Option<String>,
    /// New values (JSON text as stored).
    pub new_values: Option<String>,
    /// `user`, `token`, `job`, `console`, `system`.
    pub actor_type: String,
    /// The acting user.
    pub actor_id: Option<i64>,
    /// A label for the actor (e-mail, job name).
    pub actor_label: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Request URL.
    pub url: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Tags (JSON array text).
    pub tags: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The previous entry's hash (`None` until sealed).
    pub prev_hash: Option<String>,
    /// This entry's hash (`None` until sealed).
    pub hash: Option<String>,
    /// The entry's MAC, made with the application key when it was written
    /// (`<nonce>:<key id>:<hex>`); `None` on entries older than MACs.
    pub mac: Option<String>,
    /// In a listing ([`AuditLog::list`]): the fields whose old or new value
    /// was cut to [`PREVIEW_CHARS`] (the whole entry is one
    /// [`AuditLog::get`] away). Empty for whole entries.
    pub truncated: Vec<String>,
}

impl Entry {
    /// Old values, parsed.
    pub fn old(&self) -> AuditValues {
        parse_values(self.old_values.as_deref())
    }
    /// New values, parsed.
    pub fn new_values_map(&self) -> AuditValues {
        parse_values(self.new_values.as_deref())
    }
    /// Tags, parsed.
    pub fn tag_list(&self) -> Vec<String> {
        self.tags
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }

    /// The canonical bytes the hash covers: every stored field, length
    /// prefixed, in a fixed order, plus the previous hash.
    fn canonical(&self, seq: i64, prev_hash: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        put(&mut out, "v", Some("1"));
        put(&mut out, "id", Some(&self.id.to_string()));
        put(&mut out, "seq", Some(&seq.to_string()));
        self.put_content(&mut out);
        put(&mut out, "prev", Some(prev_hash));
        out
    }

    /// The fields written with the entry (everything but the row id and
    /// the chain), length prefixed, in a fixed order.
    fn put_content(&self, out: &mut Vec<u8>) {
        put(out, "event", Some(&self.event));
        put(out, "resource", Some(&self.resource));
        put(out, "record_id", Some(&self.record_id));
        put(out, "old", self.old_values.as_deref());
        put(out, "new", self.new_values.as_deref());
        put(out, "actor_type", Some(&self.actor_type));
        put(
            out,
            "actor_id",
            self.actor_id.map(|i| i.to_string()).as_deref(),
        );
        put(out, "actor_label", self.actor_label.as_deref());
        put(out, "ip", self.ip.as_deref());
        put(out, "user_agent", self.user_agent.as_deref());
        put(out, "url", self.url.as_deref());
        put(out, "request_id", self.request_id.as_deref());
        put(out, "tags", self.tags.as_deref());
        put(
            out,
            "created_at",
            Some(&self.created_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        );
    }

    /// The bytes the entry's MAC covers: its content and the MAC's nonce.
    fn mac_message(&self, nonce: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        put(&mut out, "v", Some("audit-mac-1"));
        put(&mut out, "nonce", Some(nonce));
        self.put_content(&mut out);
        out
    }

    /// Whether the entry carries a MAC made by a configured key over its
    /// content: it was written by the platform and not altered since.
    pub fn check_mac(&self, crypto: &Crypto) -> Signature {
        let Some((nonce, sig)) = self.mac.as_deref().and_then(|m| m.split_once(':')) else {
            return Signature::Invalid;
        };
        crypto.check_signature(&self.mac_message(nonce), sig)
    }

    /// The hash of this entry at `seq` after `prev_hash`.
    pub fn compute_hash(&self, seq: i64, prev_hash: &str) -> String {
        hex(&Sha256::digest(self.canonical(seq, prev_hash)))
    }
}

/// Appends `name=N` (none) or `name=S<len>:<value>` and a newline.
fn put(out: &mut Vec<u8>, name: &str, v: Option<&str>) {
    out.extend_from_slice(name.as_bytes());
    match v {
        None => out.extend_from_slice(b"=N\n"),
        Some(s) => {
            out.extend_from_slice(format!("=S{}:", s.len()).as_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(b'\n');
        }
    }
}

fn parse_values(s: Option<&str>) -> AuditValues {
    s.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

const COLUMNS: &str = "id, seq, event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at, prev_hash, hash, mac";
const COLUMN_TYPES: [FieldType; 19] = [
    FieldType::I64,
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::DateTime,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
];

fn entry_from_row(row: Vec<Value>) -> Result<Entry> {
    let mut it = row.into_iter();
    let mut next = || it.next().unwrap_or(Value::Null);
    let text = |v: Value| match v {
        Value::Text(s) => Some(s),
        _ => None,
    };
    let id = next().as_i64().ok_or_else(|| corrupt("id"))?;
    Ok(Entry {
        id,
        seq: next().as_i64(),
        event: text(next()).unwrap_or_default(),
        resource: text(next()).unwrap_or_default(),
        record_id: text(next()).unwrap_or_default(),
        old_values: text(next()),
        new_values: text(next()),
        actor_type: text(next()).unwrap_or_default(),
        actor_id: next().as_i64(),
        actor_label: text(next()),
        ip: text(next()),
        user_agent: text(next()),
        url: text(next()),
        request_id: text(next()),
        tags: text(next()),
        created_at: match next() {
            Value::DateTime(t) => t,
            _ => return Err(corrupt("created_at")),
        },
        prev_hash: text(next()),
        hash: text(next()),
        mac: text(next()),
        truncated: Vec::new(),
    })
}

fn corrupt(what: &str) -> Error {
    Error::Backend {
        backend: "audit",
        source: format!("audit row without {what}").into(),
    }
}

/// How many rows one multi-row `INSERT` carries (16 parameters each; well
/// under every back end's parameter limit).
const INSERT_CHUNK: usize = 200;

/// Inserts entries in the caller's transaction, attributed to `ctx`. Each
/// entry carries a MAC over its content made with the application key
/// (and a random nonce, unique across the table), so the sealer and
/// [`AuditLog::verify`] can tell entries the platform wrote from rows
/// inserted around it.
pub async fn insert_entries(tx: &mut Tx, ctx: &Context, entries: &[NewEntry]) -> Result<()> {
    let crypto = tx.crypto().cloned();
    let Some(crypto) = crypto else {
        return Err(Error::Configuration(
            "audit entries are written in a transaction of the platform's database".into(),
        ));
    };
    insert_entries_with(tx, &crypto, ctx, entries).await
}

/// [`insert_entries`] with an explicit key.
pub(crate) async fn insert_entries_with(
    tx: &mut Tx,
    crypto: &Crypto,
    ctx: &Context,
    entries: &[NewEntry],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    // Stored with microseconds on every back end: the MAC covers what is
    // read back.
    let now = crate::db::truncate_micros(Utc::now());
    let actor = ctx.actor();
    let tags =
        (!ctx.tags().is_empty()).then(|| serde_json::to_string(ctx.tags()).unwrap_or_default());
    let json = |m: &Option<AuditValues>| {
        m.as_ref()
            .map(|m| serde_json::to_string(m).unwrap_or_default())
    };
    let rows: Vec<Entry> = entries
        .iter()
        .map(|e| {
            let mut row = Entry {
                id: 0,
                seq: None,
                event: e.event.clone(),
                resource: e.resource.clone(),
                record_id: e.record_id.clone(),
                old_values: json(&e.old),
                new_values: json(&e.new),
                actor_type: actor.kind().to_owned(),
                actor_id: actor.user_id(),
                actor_label: actor.label(),
                ip: ctx.ip().map(|i| i.to_string()),
                user_agent: ctx.user_agent().map(str::to_owned),
                url: ctx.url().map(str::to_owned),
                request_id: ctx.request_id().map(str::to_owned),
                tags: tags.clone(),
                created_at: now,
                prev_hash: None,
                hash: None,
                mac: None,
                truncated: Vec::new(),
            };
            let mut nonce = [0u8; 16];
            random_bytes(&mut nonce);
            let nonce = hex(&nonce);
            let sig = crypto.sign_with_id(&row.mac_message(&nonce));
            row.mac = Some(format!("{nonce}:{sig}"));
            row
        })
        .collect();
    let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::Text);
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut q = tx.sql();
        q.push(
            "INSERT INTO platform_audits (event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at, mac) VALUES ",
        );
        q.join(chunk, ", ", |q, e| {
            q.push("(")
                .bind_str(&e.event)
                .push(", ")
                .bind_str(&e.resource)
                .push(", ")
                .bind_str(&e.record_id)
                .push(", ")
                .bind(text(&e.old_values), FieldType::Text)
                .push(", ")
                .bind(text(&e.new_values), FieldType::Text)
                .push(", ")
                .bind_str(&e.actor_type)
                .push(", ")
                .bind(e.actor_id.map_or(Value::Null, Value::Int), FieldType::I64)
                .push(", ")
                .bind(text(&e.actor_label), FieldType::Text)
                .push(", ")
                .bind(text(&e.ip), FieldType::Text)
                .push(", ")
                .bind(text(&e.user_agent), FieldType::Text)
                .push(", ")
                .bind(text(&e.url), FieldType::Text)
                .push(", ")
                .bind(text(&e.request_id), FieldType::Text)
                .push(", ")
                .bind(text(&e.tags), FieldType::Text)
                .push(", ")
                .bind(Value::DateTime(e.created_at), FieldType::DateTime)
                .push(", ")
                .bind(text(&e.mac), FieldType::Text)
                .push(")");
        });
        tx.execute(q).await?;
    }
    Ok(())
}

/// What [`AuditLog::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Entries checked.
    pub checked: u64,
    /// Entries still unsealed after sealing (written by transactions that
    /// had not committed yet).
    pub unsealed: u64,
    /// The first broken entry, if any.
    pub broken: Option<Broken>,
    /// Rows the sealer refused because they carry no valid MAC: inserted
    /// into the table around the platform (row ids, oldest first, at most
    /// [`MAX_REPORTED`]).
    pub rejected: Vec<i64>,
}

impl VerifyReport {
    /// Whether the chain is intact and no forged row was found.
    pub fn is_ok(&self) -> bool {
        self.broken.is_none() && self.rejected.is_empty()
    }
}

/// The longest value (in characters) a listing shows; longer values end in
/// `…` and the entry names the field in [`Entry::truncated`].
pub const PREVIEW_CHARS: usize = 1_000;
/// A listing stops adding entries once its values hold this many bytes
/// (it always holds at least one entry); the rest is on the next page.
pub const PAGE_BYTE_BUDGET: usize = 256 * 1024;
/// Old or new values longer than this (bytes or characters, as the
/// database counts) are not read with a listing's page: such an entry is
/// read alone and cut before the next, so one request never holds more
/// than one large entry. (Spelled out in [`LIST_COLUMNS`].)
#[cfg(test)]
const LARGE_VALUES: i64 = 64 * 1024;
/// [`COLUMNS`] for a listing: large values left out (read alone after),
/// and a last column telling which rows have them.
const LIST_COLUMNS: &str = "id, seq, event, resource, record_id, \
    CASE WHEN LENGTH(old_values) > 65536 THEN NULL ELSE old_values END, \
    CASE WHEN LENGTH(new_values) > 65536 THEN NULL ELSE new_values END, \
    actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at, prev_hash, hash, mac, \
    CASE WHEN LENGTH(old_values) > 65536 OR LENGTH(new_values) > 65536 THEN 'y' ELSE 'n' END";
/// The most entries one listing page holds.
pub const MAX_LIST: usize = 1000;

/// Which entries [`AuditLog::list`] lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditFilter<'a> {
    /// One resource (singular name), or all.
    pub resource: Option<&'a str>,
    /// One record of that resource (its id as text), from its latest
    /// `created` entry on, or all.
    pub record_id: Option<&'a str>,
}

/// A page of a listing, newest first.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// The entries, values cut to [`PREVIEW_CHARS`].
    pub entries: Vec<Entry>,
    /// Whether older entries remain.
    pub has_more: bool,
    /// The `before` of the next page.
    pub next_before: Option<i64>,
}

/// Cuts each value of a JSON object text longer than [`PREVIEW_CHARS`]
/// (as text, or as JSON text for non-strings), adding the field names to
/// `cut`. Returns the new text and its length.
fn preview_values(text: Option<String>, cut: &mut Vec<String>) -> (Option<String>, usize) {
    let Some(text) = text else {
        return (None, 0);
    };
    if text.len() <= PREVIEW_CHARS {
        let n = text.len();
        return (Some(text), n);
    }
    let mut values = parse_values(Some(&text));
    drop(text);
    for (name, v) in &mut values {
        let full = match &*v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if full.chars().count() > PREVIEW_CHARS {
            let mut short: String = full.chars().take(PREVIEW_CHARS).collect();
            short.push('…');
            *v = serde_json::Value::String(short);
            if !cut.contains(name) {
                cut.push(name.clone());
            }
        }
    }
    let out = serde_json::to_string(&values).unwrap_or_default();
    let n = out.len();
    (Some(out), n)
}

impl Entry {
    /// This entry with its values cut to [`PREVIEW_CHARS`]; returns it and
    /// the bytes its values take.
    fn previewed(mut self) -> (Self, usize) {
        let mut cut = Vec::new();
        let (old, a) = preview_values(self.old_values.take(), &mut cut);
        let (new, b) = preview_values(self.new_values.take(), &mut cut);
        self.old_values = old;
        self.new_values = new;
        self.truncated = cut;
        let other = self.user_agent.as_ref().map_or(0, String::len)
            + self.url.as_ref().map_or(0, String::len)
            + self.tags.as_ref().map_or(0, String::len)
            + 512;
        (self, a + b + other)
    }
}

/// The most rejected row ids a report lists.
pub const MAX_REPORTED: i64 = 100;

/// Why a signature or MAC did not check, for reports and errors.
fn signature_problem(what: &str, check: &Signature) -> Option<String> {
    match check {
        Signature::Valid => None,
        Signature::Invalid => Some(format!("{what} is invalid")),
        Signature::UnknownKey(kid) => Some(format!(
            "{what} is signed with key id {kid}, which is not configured (add that key to PLATFORM_PREVIOUS_KEYS)"
        )),
    }
}

/// The first entry at which the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Broken {
    /// The entry's row id (if the entry exists).
    pub id: Option<i64>,
    /// Its position in the chain.
    pub seq: i64,
    /// What is wrong.
    pub reason: String,
}

/// What one range of [`AuditLog::verify`] found.
#[derive(Debug)]
struct RangePart {
    from: i64,
    first_prev: Option<String>,
    first_id: Option<i64>,
    checked: u64,
    last_seq: i64,
    last_hash: Option<String>,
    broken: Option<Broken>,
}

/// The chain head as stored.
#[derive(Debug, Clone)]
struct Head {
    seq: i64,
    hash: String,
    signature: String,
}

fn head_message(seq: i64, hash: &str) -> String {
    format!("audit-head:{seq}:{hash}")
}

fn checkpoint_message(seq: i64, hash: &str, pruned: i64) -> String {
    format!("audit-checkpoint:{seq}:{hash}:{pruned}")
}

/// Sealing batch size.
const SEAL_BATCH: i64 = 500;
/// Verification page size.
const VERIFY_PAGE: i64 = 5000;

/// The audit trail of one database.
#[derive(Debug, Clone)]
pub struct AuditLog {
    db: Db,
    crypto: Arc<Crypto>,
    wake: Arc<Notify>,
}

impl AuditLog {
    /// The audit trail stored in `db`, signed with `crypto`.
    pub fn new(db: Db, crypto: Arc<Crypto>) -> Self {
        Self {
            db,
            crypto,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Asks the background sealer to run soon.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Runs the sealer until stopped: after each [`AuditLog::notify`] (with a
    /// short pause to gather a batch) and at least every `interval`.
    pub async fn run_sealer(self, interval: Duration) {
        loop {
            tokio::select! {
                () = self.wake.notified() => tokio::time::sleep(Duration::from_millis(20)).await,
                () = tokio::time::sleep(interval) => {}
            }
            if let Err(e) = self.seal().await {
                tracing::warn!(error = %e, "audit sealing failed; will retry");
            }
        }
    }

    /// Seals every committed unsealed entry; returns how many. Rows
    /// without a valid MAC (inserted around the platform) are not chained:
    /// they are marked rejected, logged by id, and reported by
    /// [`AuditLog::verify`].
    pub async fn seal(&self) -> Result<u64> {
        let mut total = 0;
        let mut after = 0;
        loop {
            let (read, sealed, last) = self.seal_batch(after).await?;
            total += sealed;
            if read < SEAL_BATCH as u64 {
                return Ok(total);
            }
            after = last;
        }
    }

    async fn lock_head(&self, tx: &mut Tx) -> Result<Head> {
        let backend = tx.backend();
        let select = |backend| {
            let mut q = Sql::new(backend);
            q.push("SELECT seq, head_hash, signature FROM platform_audit_chain WHERE id = 1");
            if backend != Backend::Sqlite {
                q.push(" FOR UPDATE");
            }
            q
        };
        let types = [FieldType::I64, FieldType::Text, FieldType::Text];
        if let Some(row) = tx.fetch_optional(select(backend), &types).await? {
            return head_from_row(row);
        }
        // No head yet: start from the latest checkpoint, or the genesis.
        let (seq, hash) = self
            .latest_checkpoint_in(tx)
            .await?
            .unwrap_or((0, GENESIS.to_owned()));
        let sig = self
            .crypto
            .sign_with_id(head_message(seq, &hash).as_bytes());
        let mut ins = tx.sql();
        ins.push(match backend {
            Backend::Sqlite => "INSERT OR IGNORE INTO platform_audit_chain (id, seq, head_hash, signature, updated_at) VALUES (1, ",
            Backend::Postgres => "INSERT INTO platform_audit_chain (id, seq, head_hash, signature, updated_at) VALUES (1, ",
            Backend::MySql => "INSERT IGNORE INTO platform_audit_chain (id, seq, head_hash, signature, updated_at) VALUES (1, ",
        })
        .bind_i64(seq)
        .push(", ")
        .bind_str(hash)
        .push(", ")
        .bind_str(sig)
        .push(", ")
        .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
        .push(")");
        if backend == Backend::Postgres {
            ins.push(" ON CONFLICT (id) DO NOTHING");
        }
        tx.execute(ins).await?;
        let row = tx
            .fetch_optional(select(backend), &types)
            .await?
            .ok_or_else(|| corrupt("chain head"))?;
        head_from_row(row)
    }

    async fn latest_checkpoint_in(&self, tx: &mut Tx) -> Result<Option<(i64, String)>> {
        let q = Sql::literal(
            tx.backend(),
            "SELECT seq, hash, pruned, signature FROM platform_audit_checkpoints ORDER BY seq DESC LIMIT 1",
        );
        let row = tx
            .fetch_optional(
                q,
                &[
                    FieldType::I64,
                    FieldType::Text,
                    FieldType::I64,
                    FieldType::Text,
                ],
            )
            .await?;
        Ok(row.and_then(|r| Some((r[0].as_i64()?, r[1].as_str()?.to_owned()))))
    }

    /// Seals one batch of the unsealed rows after row id `after`; returns
    /// the rows read, the rows sealed and the last row id read.
    async fn seal_batch(&self, after: i64) -> Result<(u64, u64, i64)> {
        let mut tx = self.db.begin().await?;
        let head = self.lock_head(&mut tx).await?;
        let check = self.crypto.check_signature(
            head_message(head.seq, &head.hash).as_bytes(),
            &head.signature,
        );
        if let Some(problem) = signature_problem("the audit chain head's signature", &check) {
            tx.rollback().await?;
            let why = if check == Signature::Invalid {
                "it was altered outside the platform; run audit:verify"
            } else {
                "entries are not sealed until that key is configured"
            };
            return Err(Error::Backend {
                backend: "audit",
                source: format!("{problem} (seq {}): {why}", head.seq).into(),
            });
        }
        let mut q = tx.sql();
        q.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM platform_audits WHERE seq IS NULL AND rejected_at IS NULL AND id > ")
            .bind_i64(after)
            .push(" ORDER BY id LIMIT ")
            .int(SEAL_BATCH);
        let rows = tx.fetch_all(q, &COLUMN_TYPES).await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok((0, 0, after));
        }
        let read = rows.len() as u64;
        let last = rows
            .last()
            .and_then(|r| r.first())
            .and_then(Value::as_i64)
            .unwrap_or(after);
        let mut seq = head.seq;
        let mut prev = head.hash;
        let mut sealed = Vec::with_capacity(rows.len());
        let mut rejected = Vec::new();
        let mut unknown_keys = Vec::new();
        for row in rows {
            let e = entry_from_row(row)?;
            match e.check_mac(&self.crypto) {
                Signature::Valid => {}
                Signature::Invalid => {
                    rejected.push((e.id, "its MAC is invalid".to_owned()));
                    continue;
                }
                Signature::UnknownKey(kid) => {
                    // Written by a process with a key this one lacks (a key
                    // rotation rolling out), or forged with a made-up key
                    // id: left unsealed (a process that has the key seals
                    // it; verify counts it as unsealed), never blocking the
                    // entries after it.
                    unknown_keys.push((e.id, kid));
                    continue;
                }
            }
            seq += 1;
            let hash = e.compute_hash(seq, &prev);
            sealed.push((e.id, seq, prev, hash.clone()));
            prev = hash;
        }
        if !rejected.is_empty() {
            tracing::warn!(
                ids = ?rejected.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
                reason = %rejected[0].1,
                "audit rows without a valid MAC were not sealed: they were not written by the platform (audit:verify lists them)"
            );
            let mut up = tx.sql();
            up.push("UPDATE platform_audits SET rejected_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(" WHERE id IN (");
            up.join(&rejected, ", ", |q, (id, _)| {
                q.bind_i64(*id);
            });
            up.push(")");
            tx.execute(up).await?;
        }
        if let Some((id, kid)) = unknown_keys.first() {
            tracing::warn!(
                ids = ?unknown_keys.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
                "audit entry {id} is signed with key id {kid}, which is not configured here (add it to PLATFORM_PREVIOUS_KEYS); left unsealed"
            );
        }
        if sealed.is_empty() {
            tx.commit().await?;
            return Ok((read, 0, last));
        }
        let n = sealed.len() as u64;
        let mut up = tx.sql();
        up.push("UPDATE platform_audits SET seq = CASE id");
        for (id, s, _, _) in &sealed {
            up.push(" WHEN ").bind_i64(*id).push(" THEN ").bind_i64(*s);
        }
        up.push(" END, prev_hash = CASE id");
        for (id, _, p, _) in &sealed {
            up.push(" WHEN ")
                .bind_i64(*id)
                .push(" THEN ")
                .bind_str(p.as_str());
        }
        up.push(" END, hash = CASE id");
        for (id, _, _, h) in &sealed {
            up.push(" WHEN ")
                .bind_i64(*id)
                .push(" THEN ")
                .bind_str(h.as_str());
        }
        up.push(" END WHERE id IN (");
        up.join(&sealed, ", ", |q, (id, ..)| {
            q.bind_i64(*id);
        });
        up.push(")");
        tx.execute(up).await?;
        let sig = self
            .crypto
            .sign_with_id(head_message(seq, &prev).as_bytes());
        let mut h = tx.sql();
        h.push("UPDATE platform_audit_chain SET seq = ")
            .bind_i64(seq)
            .push(", head_hash = ")
            .bind_str(prev)
            .push(", signature = ")
            .bind_str(sig)
            .push(", updated_at = ")
            .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
            .push(" WHERE id = 1");
        tx.execute(h).await?;
        tx.commit().await?;
        Ok((read, n, last))
    }

    /// Seals pending entries, then checks the whole chain: every hash, every
    /// link, contiguous sequence numbers, the signed checkpoint it starts
    /// from and the signed head it ends at.
    pub async fn verify(&self) -> Result<VerifyReport> {
        self.verify_in_parts(None).await
    }

    /// [`AuditLog::verify`] with the chain split in `parts` ranges checked
    /// in parallel (default: 4 from 50,000 entries, else 1).
    #[doc(hidden)]
    pub async fn verify_in_parts(&self, parts: Option<i64>) -> Result<VerifyReport> {
        match self.seal().await {
            // A forged head stops sealing; the walk below reports it.
            Err(Error::Backend {
                backend: "audit", ..
            })
            | Ok(_) => {}
            Err(e) => return Err(e),
        }
        let backend = self.db.backend();
        // Start: the latest signed checkpoint, or the genesis.
        let cp = self
            .db
            .fetch_optional(
                Sql::literal(
                    backend,
                    "SELECT seq, hash, pruned, signature FROM platform_audit_checkpoints ORDER BY seq DESC LIMIT 1",
                ),
                &[FieldType::I64, FieldType::Text, FieldType::I64, FieldType::Text],
            )
            .await?;
        let (mut seq, mut prev) = (0_i64, GENESIS.to_owned());
        let mut report = VerifyReport {
            checked: 0,
            unsealed: 0,
            broken: None,
            rejected: self.rejected_ids().await?,
        };
        if let Some(r) = cp {
            let (s, h, pruned, sig) = (
                r[0].as_i64().unwrap_or(0),
                r[1].as_str().unwrap_or_default().to_owned(),
                r[2].as_i64().unwrap_or(0),
                r[3].as_str().unwrap_or_default(),
            );
            let check = self
                .crypto
                .check_signature(checkpoint_message(s, &h, pruned).as_bytes(), sig);
            if let Some(reason) = signature_problem("the pruning checkpoint's signature", &check) {
                report.broken = Some(Broken {
                    id: None,
                    seq: s,
                    reason,
                });
                return Ok(report);
            }
            seq = s;
            prev = h;
        }
        // The chain is checked in parallel over ranges of sequence numbers:
        // each range checks its own links and hashes; the links between
        // ranges are checked after. (At 1,000,000 entries, reading the rows
        // is most of the cost, and several connections read at once.)
        let last = self
            .db
            .fetch_i64(Sql::literal(
                backend,
                "SELECT MAX(seq) FROM platform_audits",
            ))
            .await?
            .unwrap_or(seq)
            .max(seq);
        let mac_from = self.mac_from_seq().await?;
        let parts: i64 = parts
            .unwrap_or(if last - seq > 50_000 { 4 } else { 1 })
            .clamp(1, 64);
        let step = ((last - seq) / parts).max(1);
        let mut tasks = Vec::new();
        for k in 0..parts {
            let from = seq + k * step;
            let to = if k == parts - 1 { last } else { from + step };
            if from >= to {
                continue;
            }
            let log = self.clone();
            tasks.push(tokio::spawn(async move {
                log.verify_range(from, to, mac_from).await
            }));
        }
        for task in tasks {
            let part = task.await.map_err(|e| Error::Backend {
                backend: "audit",
                source: Box::new(e),
            })??;
            if let Some(first_prev) = &part.first_prev
                && *first_prev != prev
            {
                report.broken = Some(Broken {
                    id: part.first_id,
                    seq: part.from + 1,
                    reason: "its link to the previous entry does not match (an entry was replaced or reordered)".into(),
                });
                return Ok(report);
            }
            report.checked += part.checked;
            if let Some(b) = part.broken {
                report.broken = Some(b);
                return Ok(report);
            }
            if let Some(h) = part.last_hash {
                prev = h;
                seq = part.last_seq;
            }
        }
        // The head must be where the chain ends, and signed.
        let head = self
            .db
            .fetch_optional(
                Sql::literal(
                    backend,
                    "SELECT seq, head_hash, signature FROM platform_audit_chain WHERE id = 1",
                ),
                &[FieldType::I64, FieldType::Text, FieldType::Text],
            )
            .await?;
        match head {
            None if seq == 0 => {}
            None => {
                report.broken = Some(Broken {
                    id: None,
                    seq,
                    reason: "the chain head is missing".into(),
                });
            }
            Some(row) => {
                let head = head_from_row(row)?;
                let check = self.crypto.check_signature(
                    head_message(head.seq, &head.hash).as_bytes(),
                    &head.signature,
                );
                if let Some(reason) = signature_problem("the chain head's signature", &check) {
                    report.broken = Some(Broken {
                        id: None,
                        seq: head.seq,
                        reason,
                    });
                } else if head.seq != seq || head.hash != prev {
                    report.broken = Some(Broken {
                        id: None,
                        seq: seq + 1,
                        reason: format!(
                            "the chain ends at entry {seq} but its signed head is at entry {} (entries were deleted from the end)",
                            head.seq
                        ),
                    });
                }
            }
        }
        report.unsealed = self
            .db
            .fetch_i64(Sql::literal(
                backend,
                "SELECT COUNT(*) FROM platform_audits WHERE seq IS NULL AND rejected_at IS NULL",
            ))
            .await?
            .unwrap_or(0)
            .try_into()
            .unwrap_or(0);
        Ok(report)
    }

    /// Checks the entries with `from < seq <= to`: contiguous sequence
    /// numbers, each hash, and each link inside the range (the first
    /// entry's link is returned for the caller to check).
    async fn verify_range(&self, from: i64, to: i64, mac_from: i64) -> Result<RangePart> {
        let mut part = RangePart {
            from,
            first_prev: None,
            first_id: None,
            checked: 0,
            last_seq: from,
            last_hash: None,
            broken: None,
        };
        let mut seq = from;
        let mut prev: Option<String> = None;
        loop {
            let mut q = self.db.sql();
            q.push("SELECT ")
                .push(COLUMNS)
                .push(" FROM platform_audits WHERE seq > ")
                .bind_i64(seq)
                .push(" AND seq <= ")
                .bind_i64(to)
                .push(" ORDER BY seq LIMIT ")
                .int(VERIFY_PAGE);
            let rows = self.db.fetch_all(q, &COLUMN_TYPES).await?;
            let page_len = rows.len();
            for row in rows {
                let e = entry_from_row(row)?;
                let s = e.seq.unwrap_or(0);
                let broken = |reason: String| Broken {
                    id: Some(e.id),
                    seq: s,
                    reason,
                };
                if s != seq + 1 {
                    part.broken = Some(broken(format!(
                        "entries {} to {} are missing (deleted?)",
                        seq + 1,
                        s - 1
                    )));
                    return Ok(part);
                }
                let link = e.prev_hash.clone().unwrap_or_default();
                match &prev {
                    None => {
                        part.first_prev = Some(link.clone());
                        part.first_id = Some(e.id);
                    }
                    Some(p) if *p != link => {
                        part.broken = Some(broken(
                            "its link to the previous entry does not match (an entry was replaced or reordered)".into(),
                        ));
                        return Ok(part);
                    }
                    Some(_) => {}
                }
                if e.hash.as_deref() != Some(e.compute_hash(s, &link).as_str()) {
                    part.broken = Some(broken(
                        "its content does not match its hash (it was altered)".into(),
                    ));
                    return Ok(part);
                }
                if s > mac_from {
                    let check = e.check_mac(&self.crypto);
                    if let Some(problem) = signature_problem("its MAC", &check) {
                        part.broken = Some(broken(if check == Signature::Invalid {
                            format!("{problem}: it was not written by the platform")
                        } else {
                            problem
                        }));
                        return Ok(part);
                    }
                }
                prev = e.hash.clone();
                seq = s;
                part.checked += 1;
                part.last_seq = s;
                part.last_hash = e.hash;
            }
            if page_len < VERIFY_PAGE as usize {
                break;
            }
        }
        if seq < to {
            part.broken = Some(Broken {
                id: None,
                seq: seq + 1,
                reason: format!("entries {} to {to} are missing (deleted?)", seq + 1),
            });
        }
        Ok(part)
    }

    /// The ids of rows the sealer refused (no valid MAC), oldest first.
    async fn rejected_ids(&self) -> Result<Vec<i64>> {
        let mut q = self.db.sql();
        q.push("SELECT id FROM platform_audits WHERE rejected_at IS NOT NULL ORDER BY id LIMIT ")
            .int(MAX_REPORTED);
        Ok(self
            .db
            .fetch_all(q, &[FieldType::I64])
            .await?
            .into_iter()
            .filter_map(|r| r.first().and_then(Value::as_i64))
            .collect())
    }

    /// Deletes sealed entries created before `before`, keeping the rest
    /// verifiable through a signed checkpoint of the last deleted entry.
    /// Returns how many entries were deleted.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        self.seal().await?;
        let mut tx = self.db.begin().await?;
        let _head = self.lock_head(&mut tx).await?;
        let mut q = tx.sql();
        q.push("SELECT MAX(seq) FROM platform_audits WHERE seq IS NOT NULL AND created_at < ")
            .bind(Value::DateTime(before), FieldType::DateTime);
        let Some(last) = tx.fetch_i64(q).await? else {
            tx.rollback().await?;
            return Ok(0);
        };
        let mut h = tx.sql();
        h.push("SELECT hash FROM platform_audits WHERE seq = ")
            .bind_i64(last);
        let hash = tx
            .fetch_optional(h, &[FieldType::Text])
            .await?
            .and_then(|r| r.into_iter().next())
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| corrupt("hash"))?;
        let mut del = tx.sql();
        del.push("DELETE FROM platform_audits WHERE seq <= ")
            .bind_i64(last);
        let deleted = tx.execute(del).await?;
        let pruned = i64::try_from(deleted).unwrap_or(i64::MAX);
        let sig = self
            .crypto
            .sign_with_id(checkpoint_message(last, &hash, pruned).as_bytes());
        let mut cp = tx.sql();
        cp.push("INSERT INTO platform_audit_checkpoints (seq, hash, pruned, created_at, signature) VALUES (")
            .bind_i64(last)
            .push(", ")
            .bind_str(hash)
            .push(", ")
            .bind_i64(pruned)
            .push(", ")
            .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
            .push(", ")
            .bind_str(sig)
            .push(")");
        tx.execute(cp).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// The entries of one record, newest first.
    pub async fn for_record(
        &self,
        resource: &str,
        record_id: &str,
        limit: i64,
    ) -> Result<Vec<Entry>> {
        self.for_record_before(resource, record_id, None, limit)
            .await
    }

    /// The entries of one record older than entry `before`, newest first
    /// (keyset paging). Only the entries since the record's latest
    /// `created` entry count: an id reused by a database for a new record
    /// does not give it the history of the deleted one.
    pub async fn for_record_before(
        &self,
        resource: &str,
        record_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Entry>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM platform_audits WHERE rejected_at IS NULL AND resource = ")
            .bind_str(resource)
            .push(" AND record_id = ")
            .bind_str(record_id);
        push_since_created(&mut q, resource, record_id);
        if let Some(b) = before {
            q.push(" AND id < ").bind_i64(b);
        }
        q.push(" ORDER BY id DESC LIMIT ").int(limit.clamp(1, 1000));
        self.db
            .fetch_all(q, &COLUMN_TYPES)
            .await?
            .into_iter()
            .map(entry_from_row)
            .collect()
    }

    /// Recent entries, newest first, optionally of one resource, before the
    /// entry id `before` (keyset paging).
    pub async fn recent(
        &self,
        resource: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Entry>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM platform_audits WHERE rejected_at IS NULL");
        if let Some(r) = resource {
            q.push(" AND resource = ").bind_str(r);
        }
        if let Some(b) = before {
            q.push(" AND id < ").bind_i64(b);
        }
        q.push(" ORDER BY id DESC LIMIT ").int(limit.clamp(1, 1000));
        self.db
            .fetch_all(q, &COLUMN_TYPES)
            .await?
            .into_iter()
            .map(entry_from_row)
            .collect()
    }

    /// A page of entries, newest first, before entry `before`, at most
    /// `limit` (1 to [`MAX_LIST`]) and at most [`PAGE_BYTE_BUDGET`] bytes
    /// of values, each value cut to [`PREVIEW_CHARS`]. Rows the sealer
    /// refused as forged are left out. A record's listing starts at its
    /// latest `created` entry.
    pub async fn list(
        &self,
        filter: AuditFilter<'_>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<AuditPage> {
        let limit = limit.clamp(1, MAX_LIST);
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(LIST_COLUMNS)
            .push(" FROM platform_audits WHERE rejected_at IS NULL");
        if let Some(r) = filter.resource {
            q.push(" AND resource = ").bind_str(r);
            if let Some(id) = filter.record_id {
                q.push(" AND record_id = ").bind_str(id);
                push_since_created(&mut q, r, id);
            }
        }
        if let Some(b) = before {
            q.push(" AND id < ").bind_i64(b);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .int(i64::try_from(limit).unwrap_or(1) + 1);
        let mut types = COLUMN_TYPES.to_vec();
        types.push(FieldType::Text);
        let rows = self.db.fetch_all(q, &types).await?;
        let more_rows = rows.len() > limit;
        let mut entries = Vec::with_capacity(rows.len().min(limit));
        let mut bytes = 0;
        let mut stopped = false;
        for mut row in rows.into_iter().take(limit) {
            let large = row.pop().is_some_and(|v| v.as_str() == Some("y"));
            let mut e = entry_from_row(row)?;
            if large && let Some(whole) = self.get(e.id).await? {
                e = whole;
            }
            let (e, n) = e.previewed();
            if !entries.is_empty() && bytes + n > PAGE_BYTE_BUDGET {
                stopped = true;
                break;
            }
            bytes += n;
            entries.push(e);
        }
        let has_more = more_rows || stopped;
        Ok(AuditPage {
            next_before: if has_more {
                entries.last().map(|e| e.id)
            } else {
                None
            },
            has_more,
            entries,
        })
    }

    /// One entry, whole (`None` for a row the sealer refused as forged).
    pub async fn get(&self, id: i64) -> Result<Option<Entry>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM platform_audits WHERE rejected_at IS NULL AND id = ")
            .bind_i64(id);
        self.db
            .fetch_optional(q, &COLUMN_TYPES)
            .await?
            .map(entry_from_row)
            .transpose()
    }

    /// Every entry of one record up to and including entry `upto`, oldest
    /// first, from the record's latest `created` entry on (used to rebuild
    /// a record's state at that entry; an entry of an earlier record that
    /// had the same id is not part of it).
    pub async fn history_until(
        &self,
        resource: &str,
        record_id: &str,
        upto: i64,
    ) -> Result<Vec<Entry>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM platform_audits WHERE resource = ")
            .bind_str(resource)
            .push(" AND record_id = ")
            .bind_str(record_id);
        push_since_created(&mut q, resource, record_id);
        q.push(" AND id <= ").bind_i64(upto).push(" ORDER BY id");
        let rows = self.db.fetch_all(q, &COLUMN_TYPES).await?;
        // A record's state is rebuilt from genuine entries only: sealed
        // before MACs existed, or carrying a valid MAC (a row inserted a
        // moment ago around the platform may not have met the sealer yet).
        let mac_from = self.mac_from_seq().await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let e = entry_from_row(row)?;
            let legacy = e.seq.is_some_and(|s| s <= mac_from);
            if legacy || e.check_mac(&self.crypto) == Signature::Valid {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Where entries sealed before MACs existed end (the 0004 migration
    /// recorded it): those are covered by the chain alone.
    async fn mac_from_seq(&self) -> Result<i64> {
        Ok(self
            .db
            .fetch_i64(Sql::literal(
                self.db.backend(),
                "SELECT value FROM platform_meta WHERE name = 'audit_mac_from_seq'",
            ))
            .await?
            .unwrap_or(0))
    }
}

/// ` AND id >= <the record's latest created entry>` (every entry when it
/// has none: records older than their audit trail).
fn push_since_created(q: &mut Sql, resource: &str, record_id: &str) {
    q.push(" AND id >= (SELECT COALESCE(MAX(c.id), 0) FROM platform_audits c WHERE c.resource = ")
        .bind_str(resource)
        .push(" AND c.record_id = ")
        .bind_str(record_id)
        .push(" AND c.event = 'created')");
}

fn head_from_row(row: Vec<Value>) -> Result<Head> {
    Ok(Head {
        seq: row
            .first()
            .and_then(Value::as_i64)
            .ok_or_else(|| corrupt("head seq"))?,
        hash: row
            .get(1)
            .and_then(|v| v.as_str())
            .ok_or_else(|| corrupt("head hash"))?
            .to_owned(),
        signature: row
            .get(2)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned(),
    })
}

/// Masks personal data in audit values for a viewer without `view_pii`.
pub fn mask_values(values: &mut AuditValues, pii_fields: &[&str]) {
    for f in pii_fields {
        if let Some(v) = values.get_mut(*f)
            && !v.is_null()
        {
            *v = serde_json::Value::String(MASKED.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            id: 7,
            seq: None,
            event: "updated".into(),
            resource: "invoice".into(),
            record_id: "3".into(),
            old_values: Some(r#"{"status":"draft"}"#.into()),
            new_values: Some(r#"{"status":"paid"}"#.into()),
            actor_type: "user".into(),
            actor_id: Some(1),
            actor_label: Some("a@example.com".into()),
            ip: Some("127.0.0.1".into()),
            user_agent: None,
            url: None,
            request_id: None,
            tags: None,
            created_at: Utc::now(),
            prev_hash: None,
            hash: None,
            mac: None,
            truncated: Vec::new(),
        }
    }

    #[test]
    fn hash_covers_every_field() {
        let e = entry();
        let h = e.compute_hash(1, GENESIS);
        assert_eq!(h.len(), 64);
        assert_eq!(h, e.compute_hash(1, GENESIS));
        assert_ne!(h, e.compute_hash(2, GENESIS));
        assert_ne!(h, e.compute_hash(1, &"1".repeat(64)));
        let mut f = e.clone();
        f.new_values = Some(r#"{"status":"void"}"#.into());
        assert_ne!(h, f.compute_hash(1, GENESIS));
        let mut g = e.clone();
        g.user_agent = Some(String::new());
        assert_ne!(h, g.compute_hash(1, GENESIS), "None and empty differ");
        let mut i = e;
        i.actor_id = Some(2);
        assert_ne!(h, i.compute_hash(1, GENESIS));
    }

    #[test]
    fn listing_columns_follow_the_columns() {
        let big = LARGE_VALUES.to_string();
        let expected = COLUMNS
            .replace(
                "old_values,",
                &format!("CASE WHEN LENGTH(old_values) > {big} THEN NULL ELSE old_values END,"),
            )
            .replace(
                "new_values,",
                &format!("CASE WHEN LENGTH(new_values) > {big} THEN NULL ELSE new_values END,"),
            );
        let flag = format!(
            ", CASE WHEN LENGTH(old_values) > {big} OR LENGTH(new_values) > {big} THEN 'y' ELSE 'n' END"
        );
        assert_eq!(LIST_COLUMNS, format!("{expected}{flag}"));
    }

    #[test]
    fn previews_cut_long_values() {
        let long = "x".repeat(5 * PREVIEW_CHARS);
        let text =
            serde_json::to_string(&serde_json::json!({ "notes": long, "status": "paid" })).unwrap();
        let mut cut = Vec::new();
        let (out, n) = preview_values(Some(text), &mut cut);
        let v: AuditValues = serde_json::from_str(&out.unwrap()).unwrap();
        assert_eq!(cut, vec!["notes".to_owned()]);
        assert_eq!(
            v["notes"].as_str().unwrap().chars().count(),
            PREVIEW_CHARS + 1
        );
        assert_eq!(v["status"], "paid");
        assert!(n < PREVIEW_CHARS + 100);
    }

    #[test]
    fn masking() {
        let mut v = AuditValues::new();
        v.insert("email".into(), serde_json::json!("a@b.c"));
        v.insert("name".into(), serde_json::json!("Ada"));
        mask_values(&mut v, &["email"]);
        assert_eq!(v["email"], serde_json::json!(MASKED));
        assert_eq!(v["name"], serde_json::json!("Ada"));
    }
}
