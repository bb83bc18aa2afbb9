//! Audit entries: what is written (in the transaction of the change, with
//! a MAC), what is read back, and the canonical content the chain hashes.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use super::{AuditValues, MASKED};
use crate::context::Context;
use crate::crypto::{Crypto, Signature, hex, random_bytes};
use crate::db::{Sql, Tx, dialect};
use crate::error::{Error, Result};
use crate::value::{FieldType, Value};

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
    /// In a listing ([`AuditLog::list`](super::AuditLog::list)): the fields whose old or new value
    /// was cut to [`PREVIEW_CHARS`](super::PREVIEW_CHARS) (the whole entry is one
    /// [`AuditLog::get`](super::AuditLog::get) away). Empty for whole entries.
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
    /// clear; see [`REDACTED`](super::REDACTED).)
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
    pub(super) fn canonical(&self, seq: i64, prev_hash: &str) -> Vec<u8> {
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
    pub(super) fn put_content(&self, out: &mut Vec<u8>) {
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
    pub(super) fn mac_message(&self, nonce: &str) -> Vec<u8> {
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
pub(super) fn put(out: &mut Vec<u8>, name: &str, v: Option<&str>) {
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

pub(super) fn parse_values(s: Option<&str>) -> AuditValues {
    s.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// Where entries are read from: the audit rows with their place in the
/// chain (none until sealed). [`COLUMNS`] are unambiguous across both.
pub(super) const ENTRIES: &str = "platform_audits LEFT JOIN platform_audit_seals ON platform_audit_seals.audit_id = platform_audits.id";

pub(super) const COLUMNS: &str = "id, seq, event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at, prev_hash, hash, mac";
pub(super) const COLUMN_TYPES: [FieldType; 19] = [
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

pub(super) fn entry_from_row(row: Vec<Value>) -> Result<Entry> {
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

pub(super) fn corrupt(what: &str) -> Error {
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
/// [`AuditLog::verify`](super::AuditLog::verify) can tell entries the platform wrote from rows
/// inserted around it.
pub async fn insert_entries(tx: &mut Tx, ctx: &Context, entries: &[NewEntry]) -> Result<()> {
    let crypto = tx.crypto().cloned().ok_or_else(no_key)?;
    insert_entries_with(tx, &crypto, ctx, entries).await
}

/// [`insert_entries`] with an explicit key.
async fn insert_entries_with(
    tx: &mut Tx,
    crypto: &Crypto,
    ctx: &Context,
    entries: &[NewEntry],
) -> Result<()> {
    let rows = signed_rows(crypto, ctx, entries);
    let chained = dialect::chains_inserts(tx.backend());
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut q = tx.sql();
        // Each entry's id also goes into `platform_audit_pending`, where the
        // sealer finds it: in the same statement where the back end can
        // chain inserts, elsewhere in a second one.
        if chained {
            q.push("WITH a AS (");
        }
        push_insert(&mut q, chunk);
        if chained {
            q.push(" RETURNING id) INSERT INTO platform_audit_pending (audit_id) SELECT id FROM a");
            tx.execute(q).await?;
            continue;
        }
        tx.execute(q).await?;
        // The MAC is unique (and indexed): it names the rows just written.
        let mut p = tx.sql();
        p.push("INSERT INTO platform_audit_pending (audit_id) SELECT id FROM platform_audits WHERE mac IN (");
        p.join(chunk, ", ", |q, e| {
            q.bind(text(&e.mac), FieldType::Text);
        });
        p.push(")");
        tx.execute(p).await?;
    }
    Ok(())
}

/// Appends to a `WITH` list (after at least one query of it) the insert of
/// `entries` (at most [`INSERT_CHUNK`]) and of their ids into the sealer's
/// queue, as [`insert_entries`] writes them, for a statement that writes
/// the change itself too (PostgreSQL, which chains inserts). `ctx`
/// attributes them and `crypto` makes their MACs.
pub(crate) fn push_chained_insert(
    q: &mut Sql,
    crypto: Option<&Arc<Crypto>>,
    ctx: &Context,
    entries: &[NewEntry],
) -> Result<()> {
    debug_assert!(entries.len() <= INSERT_CHUNK);
    let crypto = crypto.ok_or_else(no_key)?;
    q.push(", audit_rows AS (");
    push_insert(q, &signed_rows(crypto, ctx, entries));
    q.push(" RETURNING id), audit_queued AS (INSERT INTO platform_audit_pending (audit_id) SELECT id FROM audit_rows)");
    Ok(())
}

/// Audit entries written where no key authenticates them.
fn no_key() -> Error {
    Error::Configuration(
        "audit entries are written in a transaction of the platform's database".into(),
    )
}

fn text(s: &Option<String>) -> Value {
    s.clone().map_or(Value::Null, Value::Text)
}

/// `entries` attributed to `ctx`, each with its MAC made with `crypto`.
fn signed_rows(crypto: &Crypto, ctx: &Context, entries: &[NewEntry]) -> Vec<Entry> {
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
    entries
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
        .collect()
}

/// Appends `INSERT INTO platform_audits (…) VALUES …` of `rows`.
fn push_insert(q: &mut Sql, rows: &[Entry]) {
    q.push(
        "INSERT INTO platform_audits (event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at, mac) VALUES ",
    );
    q.join(rows, ", ", |q, e| {
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
}
