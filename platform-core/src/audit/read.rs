//! Reading the trail: whole entries, a record's history, and listings
//! bounded in bytes (what the API, the panel and the dashboard show).

use super::{
    AuditLog, AuditValues, COLUMN_TYPES, COLUMNS, ENTRIES, Entry, MASKED, entry_from_row,
    parse_values,
};
use crate::crypto::Signature;
use crate::db::Sql;
use crate::error::Result;
use crate::value::FieldType;

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

impl AuditLog {
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
            .push(" FROM ")
            .push(ENTRIES)
            .push(" WHERE rejected_at IS NULL AND resource = ")
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
            .push(" FROM ")
            .push(ENTRIES)
            .push(" WHERE rejected_at IS NULL");
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
            .push(" FROM ")
            .push(ENTRIES)
            .push(" WHERE rejected_at IS NULL");
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
            .push(" FROM ")
            .push(ENTRIES)
            .push(" WHERE rejected_at IS NULL AND id = ")
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
            .push(" FROM ")
            .push(ENTRIES)
            .push(" WHERE resource = ")
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
    pub(super) async fn mac_from_seq(&self) -> Result<i64> {
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
