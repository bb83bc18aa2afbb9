//! Transactions: [`Db::begin`] and [`Tx`], which commits, rolls back (also
//! when dropped), and runs its after-commit work.

use std::sync::Arc;

use super::{Backend, Db, Exec, Pool, Row, Sql, bind_mysql};
use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::value::FieldType;

impl Db {
    /// Begins a transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a transaction that reads before it writes
    /// cannot fail half-way with "database is locked".
    pub async fn begin(&self) -> Result<Tx> {
        let inner = match &self.pool {
            Pool::Sqlite(p) => TxInner::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => TxInner::Postgres(p.begin().await?),
            Pool::MySql(p) => TxInner::MySql(p.begin().await?),
        };
        Ok(Tx {
            inner: Some(inner),
            backend: self.backend,
            audit_key: self.audit_key.clone(),
            outbox: self.outbox.clone(),
            events: Vec::new(),
            on_commit: Vec::new(),
        })
    }
}

macro_rules! dispatch_tx {
    ($inner:expr, $c:ident => $body:expr) => {
        match $inner {
            TxInner::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            TxInner::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
            TxInner::MySql(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

enum TxInner {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
}

/// An open transaction. Dropped without [`Tx::commit`] or [`Tx::rollback`]
/// (an early return, a panic, a cancelled request), it is rolled back at
/// once on a background task, so no locks linger on a pooled connection.
pub struct Tx {
    inner: Option<TxInner>,
    backend: Backend,
    audit_key: Option<Arc<Crypto>>,
    outbox: Option<crate::outbox::Outbox>,
    /// Outbox events recorded in this transaction, dispatched after commit.
    events: Vec<crate::outbox::Event>,
    /// What to run once this transaction has committed.
    on_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        // sqlx only queues the ROLLBACK of a dropped transaction until the
        // connection is next used; an idle pooled connection would keep its
        // row locks until then.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = match inner {
                    TxInner::Sqlite(t) => t.rollback().await,
                    TxInner::Postgres(t) => t.rollback().await,
                    TxInner::MySql(t) => t.rollback().await,
                };
            });
        }
    }
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Tx {
    /// The back end.
    pub fn backend(&self) -> Backend {
        self.backend
    }
    /// The key that authenticates audit entries written in this
    /// transaction (`None` on a pool the platform did not set one on).
    pub fn crypto(&self) -> Option<&Arc<Crypto>> {
        self.audit_key.as_ref()
    }
    /// A new statement builder.
    pub fn sql(&self) -> Sql {
        Sql::new(self.backend)
    }
    /// Runs a statement, returning the rows affected.
    pub async fn execute(&mut self, sql: Sql) -> Result<u64> {
        dispatch_tx!(self.inner_mut()?, c => c.exec_sql(sql).await)
    }
    /// Runs an `INSERT`, returning the id the database generated
    /// (`RETURNING` on SQLite and PostgreSQL, `LAST_INSERT_ID()` on MySQL).
    /// On SQLite and PostgreSQL the statement must end with `RETURNING <pk>`.
    pub async fn insert_returning_id(&mut self, sql: Sql) -> Result<i64> {
        match self.inner_mut()? {
            TxInner::MySql(t) => {
                let q = bind_mysql(
                    sqlx::query(sqlx::AssertSqlSafe(sql.text().to_owned())),
                    sql.args,
                );
                let r = q.execute(&mut **t).await?;
                i64::try_from(r.last_insert_id()).map_err(|e| Error::Backend {
                    backend: "mysql",
                    source: Box::new(e),
                })
            }
            TxInner::Sqlite(t) => {
                let rows = (&mut **t).fetch_sql(sql, &[FieldType::I64]).await?;
                first_i64(rows)
            }
            TxInner::Postgres(t) => {
                let rows = (&mut **t).fetch_sql(sql, &[FieldType::I64]).await?;
                first_i64(rows)
            }
        }
    }
    /// Runs a query and decodes every row.
    pub async fn fetch_all(&mut self, sql: Sql, types: &[FieldType]) -> Result<Vec<Row>> {
        dispatch_tx!(self.inner_mut()?, c => c.fetch_sql(sql, types).await)
    }
    /// Runs a query and decodes the first row.
    pub async fn fetch_optional(&mut self, sql: Sql, types: &[FieldType]) -> Result<Option<Row>> {
        Ok(self.fetch_all(sql, types).await?.into_iter().next())
    }
    /// Runs a query returning one integer.
    pub async fn fetch_i64(&mut self, sql: Sql) -> Result<Option<i64>> {
        Ok(self
            .fetch_optional(sql, &[FieldType::I64])
            .await?
            .and_then(|r| r.into_iter().next())
            .and_then(|v| v.as_i64()))
    }
    fn inner_mut(&mut self) -> Result<&mut TxInner> {
        self.inner.as_mut().ok_or_else(|| Error::Backend {
            backend: "database",
            source: "transaction already finished".into(),
        })
    }
    /// Commits.
    pub async fn commit(mut self) -> Result<()> {
        match self.inner.take().ok_or_else(|| Error::Backend {
            backend: "database",
            source: "transaction already finished".into(),
        })? {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
            TxInner::MySql(t) => t.commit().await?,
        }
        if let Some(outbox) = &self.outbox {
            outbox.committed(std::mem::take(&mut self.events));
        }
        for f in std::mem::take(&mut self.on_commit) {
            f();
        }
        Ok(())
    }

    /// Runs `f` once this transaction has committed (never when it rolls
    /// back): tell other nodes about a change only once they can see it.
    pub fn on_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.on_commit.push(Box::new(f));
    }

    /// Keeps `events` (recorded in this transaction) for the dispatcher,
    /// which gets them when the transaction commits.
    pub(crate) fn defer_events(&mut self, events: Vec<crate::outbox::Event>) {
        self.events.extend(events);
    }
    /// Commits when `result` is `Ok`, rolls back when it is `Err`, and
    /// returns `result` (or the commit's error).
    pub async fn finish<T>(self, result: Result<T>) -> Result<T> {
        match result {
            Ok(v) => {
                self.commit().await?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.rollback().await;
                Err(e)
            }
        }
    }
    /// Rolls back.
    pub async fn rollback(mut self) -> Result<()> {
        let Some(inner) = self.inner.take() else {
            return Ok(());
        };
        match inner {
            TxInner::Sqlite(t) => t.rollback().await?,
            TxInner::Postgres(t) => t.rollback().await?,
            TxInner::MySql(t) => t.rollback().await?,
        }
        Ok(())
    }
}

fn first_i64(rows: Vec<Row>) -> Result<i64> {
    rows.into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .and_then(|v| v.as_i64())
        .ok_or_else(|| Error::Backend {
            backend: "database",
            source: "INSERT returned no id".into(),
        })
}
