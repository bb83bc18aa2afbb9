//! The sealer: the hash chain in commit order, its signed head, and
//! pruning behind a signed checkpoint.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::{COLUMN_TYPES, COLUMNS, GENESIS, corrupt, entry_from_row};
use crate::crypto::{Crypto, Signature};
use crate::db::dialect::{self, JsonColumn};
use crate::db::{Db, Sql, Tx};
use crate::error::{Error, Result};
use crate::value::{FieldType, Value};

/// The most rejected row ids a report lists.
pub const MAX_REPORTED: i64 = 100;

/// Why a signature or MAC did not check, for reports and errors.
pub(super) fn signature_problem(what: &str, check: &Signature) -> Option<String> {
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
pub(super) struct Head {
    pub(super) seq: i64,
    pub(super) hash: String,
    pub(super) signature: String,
}

pub(super) fn head_message(seq: i64, hash: &str) -> String {
    format!("audit-head:{seq}:{hash}")
}

pub(super) fn checkpoint_message(seq: i64, hash: &str, pruned: i64) -> String {
    format!("audit-checkpoint:{seq}:{hash}:{pruned}")
}

/// Sealing batch size.
const SEAL_BATCH: i64 = 500;

/// How long the sealer waits after a wake-up, gathering entries into one
/// batch. Each batch is a transaction of its own (lock the head, read,
/// update, move the head, commit): at 100 ms rather than 20 ms, creates
/// over HTTP did 2,545 against 2,417 requests/s (wrk as in
/// `benches/http_create.sh`, PostgreSQL), and entries are still sealed
/// within about 0.1 s.
const GATHER: Duration = Duration::from_millis(100);

/// The audit trail of one database.
#[derive(Debug, Clone)]
pub struct AuditLog {
    pub(super) db: Db,
    pub(super) crypto: Arc<Crypto>,
    pub(super) wake: Arc<Notify>,
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

    /// Runs the sealer until `stop` fires (then seals once more): after each [`AuditLog::notify`] (after
    /// 100 ms, to gather a batch) and at least every `interval`.
    pub async fn run_sealer(self, interval: Duration, mut stop: crate::capability::Stop) {
        loop {
            tokio::select! {
                () = self.wake.notified() => tokio::time::sleep(GATHER).await,
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

    pub(super) async fn lock_head(&self, tx: &mut Tx) -> Result<Head> {
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

    pub(super) async fn latest_checkpoint_in(&self, tx: &mut Tx) -> Result<Option<(i64, String)>> {
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
    pub(super) async fn seal_batch(&self, after: i64) -> Result<(u64, u64, i64)> {
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
            // The batch of queued ids first, then each entry by its key:
            // joined directly, PostgreSQL chose a merge join that walked
            // the audit table's key from its start (100 ms a batch at
            // 230,000 entries, against 1 ms).
            .push(" FROM (SELECT audit_id FROM platform_audit_pending WHERE audit_id > ")
            .bind_i64(after)
            .push(" ORDER BY audit_id LIMIT ")
            .int(SEAL_BATCH)
            .push(") AS p JOIN platform_audits ON platform_audits.id = p.audit_id LEFT JOIN platform_audit_seals ON platform_audit_seals.audit_id = platform_audits.id ORDER BY p.audit_id");
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
        // Pending rows to drop without sealing: rejected entries, and any
        // entry that is somehow sealed already.
        let mut done = Vec::new();
        let mut unknown_keys = Vec::new();
        for row in rows {
            let e = entry_from_row(row)?;
            if e.seq.is_some() {
                done.push(e.id);
                continue;
            }
            match e.check_mac(&self.crypto) {
                Signature::Valid => {}
                Signature::Invalid => {
                    rejected.push(e.id);
                    done.push(e.id);
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
                ids = ?rejected,
                "audit rows without a valid MAC were not sealed: they were not written by the platform (audit:verify lists them)"
            );
            self.reject(&mut tx, &rejected).await?;
        }
        if let Some((id, kid)) = unknown_keys.first() {
            tracing::warn!(
                ids = ?unknown_keys.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
                "audit entry {id} is signed with key id {kid}, which is not configured here (add it to PLATFORM_PREVIOUS_KEYS); left unsealed"
            );
        }
        if sealed.is_empty() {
            dequeue(&mut tx, &done).await?;
            tx.commit().await?;
            return Ok((read, 0, last));
        }
        let n = sealed.len() as u64;
        let rows: Vec<serde_json::Value> = sealed
            .iter()
            .map(|(id, s, p, h)| serde_json::json!({ "seq": s, "audit_id": id, "prev_hash": p, "hash": h }))
            .collect();
        let ins = dialect::insert_from_json(
            tx.backend(),
            "platform_audit_seals",
            &[
                ("seq", JsonColumn::Int),
                ("audit_id", JsonColumn::Int),
                ("prev_hash", JsonColumn::Text),
                ("hash", JsonColumn::Text),
            ],
            serde_json::Value::Array(rows).to_string(),
        );
        tx.execute(ins).await?;
        done.extend(sealed.iter().map(|(id, ..)| *id));
        dequeue(&mut tx, &done).await?;
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

    /// Marks `ids` rejected (no valid MAC: not written by the platform).
    pub(super) async fn reject(&self, tx: &mut Tx, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(500) {
            let mut up = tx.sql();
            up.push("UPDATE platform_audits SET rejected_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(" WHERE id");
            up.in_list(chunk, |q, id| {
                q.bind_i64(*id);
            });
            tx.execute(up).await?;
        }
        Ok(())
    }

    /// Deletes sealed entries created before `before`, keeping the rest
    /// verifiable through a signed checkpoint of the last deleted entry.
    /// Returns how many entries were deleted.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        self.seal().await?;
        let mut tx = self.db.begin().await?;
        let _head = self.lock_head(&mut tx).await?;
        let mut q = tx.sql();
        q.push("SELECT MAX(platform_audit_seals.seq) FROM platform_audit_seals JOIN platform_audits ON platform_audits.id = platform_audit_seals.audit_id WHERE platform_audits.created_at < ")
            .bind(Value::DateTime(before), FieldType::DateTime);
        let Some(last) = tx.fetch_i64(q).await? else {
            tx.rollback().await?;
            return Ok(0);
        };
        let mut h = tx.sql();
        h.push("SELECT hash FROM platform_audit_seals WHERE seq = ")
            .bind_i64(last);
        let hash = tx
            .fetch_optional(h, &[FieldType::Text])
            .await?
            .and_then(|r| r.into_iter().next())
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| corrupt("hash"))?;
        // Entries are sealed in commit order, so the entry at `last` need
        // not have the largest id of those up to it: bound the walk by the
        // largest of them.
        let mut m = tx.sql();
        m.push("SELECT MAX(audit_id) FROM platform_audit_seals WHERE seq <= ")
            .bind_i64(last);
        let max_id = tx.fetch_i64(m).await?.ok_or_else(|| corrupt("audit id"))?;
        let mut del = tx.sql();
        del.push("DELETE FROM platform_audits WHERE id <= ")
            .bind_i64(max_id)
            .push(" AND id IN (SELECT audit_id FROM platform_audit_seals WHERE seq <= ")
            .bind_i64(last)
            .push(")");
        let deleted = tx.execute(del).await?;
        let mut del = tx.sql();
        del.push("DELETE FROM platform_audit_seals WHERE seq <= ")
            .bind_i64(last);
        tx.execute(del).await?;
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

pub(super) fn head_from_row(row: Vec<Value>) -> Result<Head> {
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

/// Removes `ids` from the queue of entries to seal, by key. (A delete of
/// "the seals past the old head" in one statement of fixed text read the
/// whole queue once it was large: 15 ms a batch with 200,000 entries
/// queued by an import.)
async fn dequeue(tx: &mut Tx, ids: &[i64]) -> Result<()> {
    for chunk in ids.chunks(SEAL_BATCH as usize) {
        let mut del = tx.sql();
        del.push("DELETE FROM platform_audit_pending WHERE audit_id");
        del.in_list(chunk, |q, id| {
            q.bind_i64(*id);
        });
        tx.execute(del).await?;
    }
    Ok(())
}
