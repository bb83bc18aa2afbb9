//! The audit trail: who changed what, when and from where, tamper-evident.
//!
//! ## Writing
//! The write path inserts audit entries in the same transaction as the
//! change ([`insert_entries`]); a rolled-back change leaves no entry.
//! Inserting takes no lock beyond the row itself, so audited writes to
//! different records (and resources) never wait on each other.
//!
//! ## Sealing: the hash chain in commit order
//! Entries are inserted unsealed, each with a row in
//! `platform_audit_pending` written in the same transaction. A sealer
//! ([`AuditLog::seal`]) takes the chain head under a lock (`FOR UPDATE` on
//! PostgreSQL and MySQL, the write lock on SQLite), reads the committed
//! pending entries in id order, gives each the next sequence number, the
//! previous entry's hash and the SHA-256 of its own canonical content, and
//! moves the head, which it signs with the application key. The chain is a
//! table of its own (`platform_audit_seals`: sequence number, entry id,
//! previous hash, hash): sealing inserts one narrow row per entry and
//! deletes its pending row, and never rewrites the entry. Because only
//! committed entries are visible to it, entries are chained in the order
//! they committed; an entry whose transaction commits late is simply sealed
//! in a later batch. One sealer runs at a time across every process (the
//! lock), so many writers in many processes still form one valid chain.
//! The platform runs the sealer in the background after each write;
//! `audit:verify` seals before checking.
//!
//! ## Verifying and pruning
//! [`AuditLog::verify`] walks the chain in sequence order, recomputes each
//! hash, checks each link and the signed head, and names the first broken
//! entry. [`AuditLog::prune`] deletes a prefix of the chain and stores a
//! signed checkpoint of the last deleted entry, from which the remainder
//! still verifies.

use std::collections::BTreeMap;

mod entry;
mod read;
mod seal;
mod verify;

pub(crate) use entry::push_chained_insert;
use entry::{COLUMN_TYPES, COLUMNS, ENTRIES, corrupt, entry_from_row, parse_values};
pub use entry::{Entry, NewEntry, insert_entries};
pub use seal::{AuditLog, MAX_REPORTED};
use seal::{checkpoint_message, head_from_row, head_message, signature_problem};

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

#[cfg(test)]
mod tests {
    use chrono::Utc;

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
