//! Verifying the chain: every hash, link, MAC and signature, in ranges
//! checked in parallel.

use super::{
    AuditLog, COLUMN_TYPES, COLUMNS, GENESIS, MAX_REPORTED, checkpoint_message, entry_from_row,
    head_from_row, head_message, signature_problem,
};
use crate::crypto::Signature;
use crate::db::Sql;
use crate::error::{Error, Result};
use crate::value::{FieldType, Value};

/// Verification page size.
const VERIFY_PAGE: i64 = 5000;

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

impl AuditLog {
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
            rejected: {
                self.reject_strays().await?;
                self.rejected_ids().await?
            },
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
                "SELECT MAX(seq) FROM platform_audit_seals",
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
                "SELECT COUNT(*) FROM platform_audit_pending JOIN platform_audits ON platform_audits.id = platform_audit_pending.audit_id WHERE platform_audits.rejected_at IS NULL",
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
                .push(" FROM platform_audit_seals JOIN platform_audits ON platform_audits.id = platform_audit_seals.audit_id WHERE seq > ")
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

    /// Marks rejected the rows that are neither sealed nor waiting to be:
    /// the platform writes every entry with its pending row, so these were
    /// inserted around it. (The sealer never sees them; this walk of the
    /// whole table is for verification only.) Runs under the chain head's
    /// lock, so no entry moves from pending to sealed meanwhile.
    async fn reject_strays(&self) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let _head = self.lock_head(&mut tx).await?;
        let q = Sql::literal(
            tx.backend(),
            "SELECT id FROM platform_audits WHERE rejected_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM platform_audit_seals WHERE platform_audit_seals.audit_id = platform_audits.id) \
             AND NOT EXISTS (SELECT 1 FROM platform_audit_pending WHERE platform_audit_pending.audit_id = platform_audits.id) \
             ORDER BY id",
        );
        let ids: Vec<i64> = tx
            .fetch_all(q, &[FieldType::I64])
            .await?
            .into_iter()
            .filter_map(|r| r.first().and_then(Value::as_i64))
            .collect();
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(());
        }
        tracing::warn!(
            ids = ?ids.iter().take(MAX_REPORTED as usize).collect::<Vec<_>>(),
            count = ids.len(),
            "audit rows that were never queued for sealing were found: they were not written by the platform"
        );
        self.reject(&mut tx, &ids).await?;
        tx.commit().await
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
}
