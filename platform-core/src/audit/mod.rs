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
use crate::db::dialect::{self, JsonColumn};
use crate::db::{Db, Sql, Tx};
use crate::error::{Error, Result};
use crate::value::{FieldType, Value};

mod read;
mod verify;

pub use read::{AuditFilter, AuditPage, MAX_LIST, PAGE_BYTE_BUDGET, PREVIEW_CHARS, mask_values};
pub use verify::{Broken, VerifyReport};

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

    /// The old and new values as `ctx` may see them, the one rule the
    /// panel's activity log and the API's audit listing both apply:
    /// hidden fields of `meta` left out, its personal-data fields masked
    /// without `view_pii`. (Encrypted fields are never in the trail in
    /// clear; see [`REDACTED`].)
    pub fn values_for(
        &self,
        meta: &crate::resource::ResourceMeta,
        ctx: &Context,
    ) -> (AuditValues, AuditValues) {
        let see_pii = ctx.can(crate::permission::VIEW_PII);
        let clean = |mut values: AuditValues| {
            for f in meta.field_list() {
                if f.is_hidden() {
                    values.remove(f.name());
                } else if f.is_pii()
                    && !see_pii
                    && let Some(v) = values.get_mut(f.name())
                    && !v.is_null()
                {
                    *v = serde_json::Value::String(MASKED.to_owned());
                }
            }
            values
        };
        (clean(self.old()), clean(self.new_values_map()))
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
            // The time first, then randomness: unique, and rising, so the
            // unique index on `mac` grows at its end (one hot page per
            // commit instead of a random one).
            let mut random = [0u8; 8];
            random_bytes(&mut random);
            let micros = u64::try_from(now.timestamp_micros()).unwrap_or(0);
            let nonce = format!("{micros:016x}{}", hex(&random));
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

    /// Runs the sealer until `stop` fires (then seals once more): after each [`AuditLog::notify`] (with a
    /// short pause to gather a batch) and at least every `interval`.
    pub async fn run_sealer(self, interval: Duration, mut stop: crate::capability::Stop) {
        loop {
            tokio::select! {
                () = self.wake.notified() => tokio::time::sleep(Duration::from_millis(20)).await,
                () = tokio::time::sleep(interval) => {}
                () = stop.stopped() => {}
            }
            if let Err(e) = self.seal().await {
                tracing::warn!(error = %e, "audit sealing failed; will retry");
            }
            if stop.is_stopping() {
                return;
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
            dialect::push_for_update(&mut q);
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
        dialect::push_insert_ignore_into(&mut ins);
        ins.push("platform_audit_chain (id, seq, head_hash, signature, updated_at) VALUES (1, ")
            .bind_i64(seq)
            .push(", ")
            .bind_str(hash)
            .push(", ")
            .bind_str(sig)
            .push(", ")
            .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
            .push(")");
        dialect::push_ignore_conflicts(&mut ins, &["id"]);
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
        let rows: Vec<serde_json::Value> = sealed
            .iter()
            .map(|(id, s, p, h)| serde_json::json!({ "id": id, "seq": s, "prev_hash": p, "hash": h }))
            .collect();
        let up = dialect::update_from_json(
            tx.backend(),
            "platform_audits",
            "id",
            &[
                ("seq", JsonColumn::Int),
                ("prev_hash", JsonColumn::Text),
                ("hash", JsonColumn::Text),
            ],
            serde_json::Value::Array(rows).to_string(),
        );
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
}
