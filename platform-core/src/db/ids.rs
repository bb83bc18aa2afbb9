//! Keys drawn ahead from PostgreSQL sequences.
//!
//! A create on PostgreSQL writes its row, its audit entry and its outbox
//! events in one statement that commits on its own. The audit entry's MAC
//! covers the record's id, so the id must be known before that statement
//! runs: it comes from a block of [`BLOCK`] values drawn from the column's
//! sequence in one query, handed out in order. Ids stay unique across
//! processes (each block is the sequence's own); what changes is that a
//! process that stops leaves the rest of its block unused (a gap, as a
//! rolled-back insert leaves one), and that ids from two processes
//! interleave by block rather than by the moment each row was written.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::{Backend, Db};
use crate::error::Result;
use crate::value::{FieldType, Value};

/// How many ids one query draws.
const BLOCK: i64 = 32;

/// The drawn, unused ids of each table (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct IdBlocks {
    tables: Mutex<HashMap<String, Drawn>>,
}

#[derive(Debug)]
enum Drawn {
    Ids(VecDeque<i64>),
    /// The column has no sequence (a key the host assigns): nothing to draw.
    NoSequence,
}

impl Db {
    /// The next id of `table`'s generated key `column`, from a block drawn
    /// ahead from its sequence; `None` where nothing can be drawn ahead (not
    /// PostgreSQL, or the column has no sequence), and the database
    /// generates the id as the row is inserted.
    pub(crate) async fn next_id(&self, table: &str, column: &str) -> Result<Option<i64>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        if let Some(drawn) = self.ids.take(table) {
            return Ok(drawn);
        }
        let mut q = self.sql();
        // `pg_get_serial_sequence` reads its first argument as SQL (a
        // quoted identifier), its second as a plain column name; a column
        // without a sequence gives NULL, and so does `nextval(NULL)`.
        q.push("SELECT nextval(pg_get_serial_sequence(")
            .bind_str(format!("\"{table}\""))
            .push(", ")
            .bind_str(column)
            .push(")) FROM generate_series(1, ")
            .int(BLOCK)
            .push(")");
        let ids: VecDeque<i64> = self
            .fetch_all(q, &[FieldType::I64])
            .await?
            .iter()
            .filter_map(|r| r.first().and_then(Value::as_i64))
            .collect();
        Ok(self.ids.add(table, ids))
    }

    /// Drops the ids drawn for `table` that are still unused (a row written
    /// around the platform took one of them): the next create draws anew.
    pub(crate) fn forget_ids(&self, table: &str) {
        if let Ok(mut t) = self.ids.tables.lock() {
            t.remove(table);
        }
    }
}

impl IdBlocks {
    /// The next drawn id of `table`: `Some(None)` when it has no sequence,
    /// `None` when a block must be drawn.
    fn take(&self, table: &str) -> Option<Option<i64>> {
        let mut t = self.tables.lock().ok()?;
        match t.get_mut(table)? {
            Drawn::NoSequence => Some(None),
            Drawn::Ids(ids) => ids.pop_front().map(Some),
        }
    }

    /// Keeps a newly drawn block (after any block another task drew meanwhile)
    /// and hands out its first id; an empty block marks the table as having
    /// no sequence.
    fn add(&self, table: &str, mut ids: VecDeque<i64>) -> Option<i64> {
        let first = ids.pop_front();
        let Ok(mut t) = self.tables.lock() else {
            return first;
        };
        match (first, t.get_mut(table)) {
            (None, _) => {
                t.insert(table.to_owned(), Drawn::NoSequence);
            }
            (Some(_), Some(Drawn::Ids(kept))) => kept.extend(ids),
            (Some(_), _) => {
                t.insert(table.to_owned(), Drawn::Ids(ids));
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_ids_are_handed_out_in_order_and_once() {
        let blocks = IdBlocks::default();
        assert_eq!(blocks.take("t"), None, "nothing drawn yet");
        assert_eq!(blocks.add("t", VecDeque::from([1, 2, 3])), Some(1));
        // A second block drawn meanwhile is kept after the first.
        assert_eq!(blocks.add("t", VecDeque::from([33, 34])), Some(33));
        let mut out = Vec::new();
        while let Some(Some(id)) = blocks.take("t") {
            out.push(id);
        }
        assert_eq!(out, [2, 3, 34]);
        assert_eq!(blocks.add("u", VecDeque::new()), None);
        assert_eq!(
            blocks.take("u"),
            Some(None),
            "no sequence: never drawn again"
        );
    }
}
