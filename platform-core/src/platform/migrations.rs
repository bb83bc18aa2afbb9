//! The framework's own tables.

use crate::db::{Migration, MigrationSet};

/// The framework's own tables.
pub const FRAMEWORK_MIGRATIONS: MigrationSet = MigrationSet {
    name: "platform",
    migrations: &[
        Migration {
            version: 1,
            name: "access and audit",
            sqlite: include_str!("../../migrations/0001_access_and_audit/sqlite.sql"),
            postgres: include_str!("../../migrations/0001_access_and_audit/postgres.sql"),
            mysql: include_str!("../../migrations/0001_access_and_audit/mysql.sql"),
        },
        Migration {
            version: 2,
            name: "auth",
            sqlite: include_str!("../../migrations/0002_auth/sqlite.sql"),
            postgres: include_str!("../../migrations/0002_auth/postgres.sql"),
            mysql: include_str!("../../migrations/0002_auth/mysql.sql"),
        },
        Migration {
            version: 3,
            name: "access log",
            sqlite: include_str!("../../migrations/0003_access_log/sqlite.sql"),
            postgres: include_str!("../../migrations/0003_access_log/postgres.sql"),
            mysql: include_str!("../../migrations/0003_access_log/mysql.sql"),
        },
        Migration {
            version: 4,
            name: "hardening",
            sqlite: include_str!("../../migrations/0004_hardening/sqlite.sql"),
            postgres: include_str!("../../migrations/0004_hardening/postgres.sql"),
            mysql: include_str!("../../migrations/0004_hardening/mysql.sql"),
        },
        Migration {
            version: 5,
            name: "user e-mail case",
            sqlite: include_str!("../../migrations/0005_user_email_case/sqlite.sql"),
            postgres: include_str!("../../migrations/0005_user_email_case/postgres.sql"),
            mysql: include_str!("../../migrations/0005_user_email_case/mysql.sql"),
        },
        Migration {
            version: 6,
            name: "password change required",
            sqlite: include_str!("../../migrations/0006_password_change_required/sqlite.sql"),
            postgres: include_str!("../../migrations/0006_password_change_required/postgres.sql"),
            mysql: include_str!("../../migrations/0006_password_change_required/mysql.sql"),
        },
        Migration {
            version: 7,
            name: "outbox and cache",
            sqlite: include_str!("../../migrations/0007_outbox_and_cache/sqlite.sql"),
            postgres: include_str!("../../migrations/0007_outbox_and_cache/postgres.sql"),
            mysql: include_str!("../../migrations/0007_outbox_and_cache/mysql.sql"),
        },
        Migration {
            version: 8,
            name: "audit unsealed index",
            sqlite: include_str!("../../migrations/0008_audit_unsealed_index/sqlite.sql"),
            postgres: include_str!("../../migrations/0008_audit_unsealed_index/postgres.sql"),
            mysql: include_str!("../../migrations/0008_audit_unsealed_index/mysql.sql"),
        },
        Migration {
            version: 9,
            name: "outbox keeps undelivered events only",
            sqlite: include_str!("../../migrations/0009_outbox_delivered_removed/all.sql"),
            postgres: include_str!("../../migrations/0009_outbox_delivered_removed/all.sql"),
            mysql: include_str!("../../migrations/0009_outbox_delivered_removed/all.sql"),
        },
        Migration {
            version: 10,
            name: "audit chain in its own table",
            sqlite: include_str!("../../migrations/0010_audit_seals/sqlite.sql"),
            postgres: include_str!("../../migrations/0010_audit_seals/postgres.sql"),
            mysql: include_str!("../../migrations/0010_audit_seals/mysql.sql"),
        },
    ],
    backends: &[],
};
