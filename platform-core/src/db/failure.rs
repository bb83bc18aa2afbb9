//! What a sqlx error means to the platform.

use crate::error::Error;

/// Maps a sqlx error to the platform's meaning: a server that cannot be
/// reached is [`Error::Unavailable`], a unique or foreign-key violation is
/// [`Error::Conflict`] naming the constraint, anything else is
/// [`Error::Backend`].
pub(crate) fn map_sqlx_error(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Error::Unavailable {
            backend: "database",
            source: Box::new(e),
        },
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // SQLSTATE class 08 (connection exception) and 57P (operator
            // intervention: shutdown) on PostgreSQL; SQLITE_BUSY (5) after the
            // busy timeout; MySQL 1053 (server shutdown), 2006, 2013.
            let unavailable = code.starts_with("08")
                || code.starts_with("57P")
                || code == "5"
                || code == "1053"
                || code == "2006"
                || code == "2013";
            if unavailable {
                return Error::Unavailable {
                    backend: "database",
                    source: db.into_error(),
                };
            }
            if db.is_unique_violation() || db.is_foreign_key_violation() {
                let message = db.message().to_owned();
                let constraint = db
                    .constraint()
                    .map(str::to_owned)
                    .or_else(|| constraint_from_message(&message))
                    .unwrap_or_default();
                let what = if db.is_unique_violation() {
                    "has already been taken"
                } else {
                    "refers to a record that does not exist or is still referenced"
                };
                return Error::Conflict {
                    field: constraint,
                    message: what.to_owned(),
                };
            }
            Error::Backend {
                backend: "database",
                source: db.into_error(),
            }
        }
        other => Error::Backend {
            backend: "database",
            source: Box::new(other),
        },
    }
}

/// Whether `e` is a deadlock or a serialization failure (PostgreSQL
/// `40P01`, `40001`; MySQL 1213): the database rolled the transaction back
/// so that a concurrent one could go on; nothing of it was written, and
/// running it again can succeed.
pub(crate) fn is_deadlock(e: &Error) -> bool {
    let Error::Backend { source, .. } = e else {
        return false;
    };
    if let Some(pg) = source.downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return matches!(pg.code(), "40P01" | "40001");
    }
    if let Some(my) = source.downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return my.number() == 1213;
    }
    false
}

/// Pulls the constraint or column out of SQLite's and MySQL's messages
/// ("UNIQUE constraint failed: invoices.number", "... for key 'invoices_number_unique'").
pub(super) fn constraint_from_message(m: &str) -> Option<String> {
    if let Some(rest) = m.strip_prefix("UNIQUE constraint failed: ") {
        let first = rest.split(',').next()?.trim();
        return Some(first.replace('.', "_") + "_unique");
    }
    if let Some(i) = m.find("for key '") {
        let rest = &m[i + 9..];
        let key = rest.split('\'').next()?;
        return Some(key.rsplit('.').next().unwrap_or(key).to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_from_messages() {
        assert_eq!(
            constraint_from_message("UNIQUE constraint failed: invoices.number").as_deref(),
            Some("invoices_number_unique")
        );
        assert_eq!(
            constraint_from_message(
                "Duplicate entry 'X' for key 'invoices.invoices_number_unique'"
            )
            .as_deref(),
            Some("invoices_number_unique")
        );
    }
}
