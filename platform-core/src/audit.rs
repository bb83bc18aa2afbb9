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
use crate::crypto::{Crypto, hex};
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
        let mut put = |name: &str, v: Option<&str>| {
            out.extend_from_slice(name.as_bytes());
            match v {
                None => out.extend_from_slice(b"=N\n"),
                Some(s) => {
                    out.extend_from_slice(format!("=S{}:", s.len()).as_bytes());
                    out.extend_from_slice(s.as_bytes());
                    out.push(b'\n');
                }
            }
        };
        put("v", Some("1"));
        put("id", Some(&self.id.to_string()));
        put("seq", Some(&seq.to_string()));
        put("event", Some(&self.event));
        put("resource", Some(&self.resource));
        put("record_id", Some(&self.record_id));
        put("old", self.old_values.as_deref());
        put("new", self.new_values.as_deref());
        put("actor_type", Some(&self.actor_type));
        put("actor_id", self.actor_id.map(|i| i.to_string()).as_deref());
        put("actor_label", self.actor_label.as_deref());
        put("ip", self.ip.as_deref());
        put("user_agent", self.user_agent.as_deref());
        put("url", self.url.as_deref());
        put("request_id", self.request_id.as_deref());
        put("tags", self.tags.as_deref());
        put(
            "created_at",
            Some(&self.created_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        );
        put("prev", Some(prev_hash));
        out
    }

    /// The hash of this entry at `seq` after `prev_hash`.
    pub fn compute_hash(&self, seq: i64, prev_hash: &str) -> String {
        hex(&Sha256::digest(self.canonical(seq, prev_hash)))
    }
}

fn parse_values(s: Option<&str>) -> AuditValues {
    s.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

const COLUMNS: &str = "id, seq, event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at, prev_hash, hash";
const COLUMN_TYPES: [FieldType; 18] = [
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
    })
}

fn corrupt(what: &str) -> Error {
    Error::Backend {
        backend: "audit",
        source: format!("audit row without {what}").into(),
    }
}

/// How many rows one multi-row `INSERT` carries (15 parameters each; well
/// under every back end's parameter limit).
const INSERT_CHUNK: usize = 200;

/// Inserts entries in the caller's transaction, attributed to `ctx`.
pub async fn insert_entries(tx: &mut Tx, ctx: &Context, entries: &[NewEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let now = Value::DateTime(Utc::now());
    let actor = ctx.actor();
    let tags = if ctx.tags().is_empty() {
        Value::Null
    } else {
        Value::Text(serde_json::to_string(ctx.tags()).unwrap_or_default())
    };
    let opt = |s: Option<&str>| s.map_or(Value::Null, |s| Value::Text(s.to_owned()));
    let json = |m: &Option<AuditValues>| {
        m.as_ref().map_or(Value::Null, |m| {
            Value::Text(serde_json::to_string(m).unwrap_or_default())
        })
    };
    for chunk in entries.chunks(INSERT_CHUNK) {
        let mut q = tx.sql();
        q.push(
            "INSERT INTO platform_audits (event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at) VALUES ",
        );
        q.join(chunk, ", ", |q, e| {
            q.push("(")
                .bind_str(&e.event)
                .push(", ")
                .bind_str(&e.resource)
                .push(", ")
                .bind_str(&e.record_id)
                .push(", ")
                .bind(json(&e.old), FieldType::Text)
                .push(", ")
                .bind(json(&e.new), FieldType::Text)
                .push(", ")
                .bind_str(actor.kind())
                .push(", ")
                .bind(
                    actor.user_id().map_or(Value::Null, Value::Int),
                    FieldType::I64,
                )
                .push(", ")
                .bind(
                    actor.label().map_or(Value::Null, Value::Text),
                    FieldType::Text,
                )
                .push(", ")
                .bind(
                    opt(ctx.ip().map(|i| i.to_string()).as_deref()),
                    FieldType::Text,
                )
                .push(", ")
                .bind(opt(ctx.user_agent()), FieldType::Text)
                .push(", ")
                .bind(opt(ctx.url()), FieldType::Text)
                .push(", ")
                .bind(opt(ctx.request_id()), FieldType::Text)
                .push(", ")
                .bind(tags.clone(), FieldType::Text)
                .push(", ")
                .bind(now.clone(), FieldType::DateTime)
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
}

impl VerifyReport {
    /// Whether the chain is intact.
    pub fn is_ok(&self) -> bool {
        self.broken.is_none()
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

    /// Seals every committed unsealed entry; returns how many.
    pub async fn seal(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self.seal_batch().await?;
            total += n;
            if n < SEAL_BATCH as u64 {
                return Ok(total);
            }
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
        let sig = self.crypto.sign(head_message(seq, &hash).as_bytes());
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

    async fn seal_batch(&self) -> Result<u64> {
        let mut tx = self.db.begin().await?;
        let head = self.lock_head(&mut tx).await?;
        if !self.crypto.verify(
            head_message(head.seq, &head.hash).as_bytes(),
            &head.signature,
        ) {
            tx.rollback().await?;
            return Err(Error::Backend {
                backend: "audit",
                source: format!(
                    "the audit chain head (seq {}) has an invalid signature: it was altered outside the platform; run audit:verify",
                    head.seq
                )
                .into(),
            });
        }
        let mut q = tx.sql();
        q.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM platform_audits WHERE seq IS NULL ORDER BY id LIMIT ")
            .int(SEAL_BATCH);
        let rows = tx.fetch_all(q, &COLUMN_TYPES).await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let mut seq = head.seq;
        let mut prev = head.hash;
        let mut sealed = Vec::with_capacity(rows.len());
        for row in rows {
            let e = entry_from_row(row)?;
            seq += 1;
            let hash = e.compute_hash(seq, &prev);
            sealed.push((e.id, seq, prev, hash.clone()));
            prev = hash;
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
        let sig = self.crypto.sign(head_message(seq, &prev).as_bytes());
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
        Ok(n)
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
        };
        if let Some(r) = cp {
            let (s, h, pruned, sig) = (
                r[0].as_i64().unwrap_or(0),
                r[1].as_str().unwrap_or_default().to_owned(),
                r[2].as_i64().unwrap_or(0),
                r[3].as_str().unwrap_or_default(),
            );
            if !self
                .crypto
                .verify(checkpoint_message(s, &h, pruned).as_bytes(), sig)
            {
                report.broken = Some(Broken {
                    id: None,
                    seq: s,
                    reason: "the pruning checkpoint's signature is invalid".into(),
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
            tasks.push(tokio::spawn(
                async move { log.verify_range(from, to).await },
            ));
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
                if !self.crypto.verify(
                    head_message(head.seq, &head.hash).as_bytes(),
                    &head.signature,
                ) {
                    report.broken = Some(Broken {
                        id: None,
                        seq: head.seq,
                        reason: "the chain head's signature is invalid".into(),
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
                "SELECT COUNT(*) FROM platform_audits WHERE seq IS NULL",
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
    async fn verify_range(&self, from: i64, to: i64) -> Result<RangePart> {
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
            .sign(checkpoint_message(last, &hash, pruned).as_bytes());
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
    /// (keyset paging).
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
            .push(" FROM platform_audits WHERE resource = ")
            .bind_str(resource)
            .push(" AND record_id = ")
            .bind_str(record_id);
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
            .push(" FROM platform_audits WHERE 1 = 1");
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

    /// One entry.
    pub async fn get(&self, id: i64) -> Result<Option<Entry>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM platform_audits WHERE id = ")
            .bind_i64(id);
        self.db
            .fetch_optional(q, &COLUMN_TYPES)
            .await?
            .map(entry_from_row)
            .transpose()
    }

    /// Every entry of one record up to and including entry `upto`, oldest
    /// first (used to rebuild a record's state at that entry).
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
            .bind_str(record_id)
            .push(" AND id <= ")
            .bind_i64(upto)
            .push(" ORDER BY id");
        self.db
            .fetch_all(q, &COLUMN_TYPES)
            .await?
            .into_iter()
            .map(entry_from_row)
            .collect()
    }
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
    fn masking() {
        let mut v = AuditValues::new();
        v.insert("email".into(), serde_json::json!("a@b.c"));
        v.insert("name".into(), serde_json::json!("Ada"));
        mask_values(&mut v, &["email"]);
        assert_eq!(v["email"], serde_json::json!(MASKED));
        assert_eq!(v["name"], serde_json::json!("Ada"));
    }
}
