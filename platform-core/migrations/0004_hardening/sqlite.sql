-- platform: foreign_keys=off
-- Integer keys become AUTOINCREMENT, so a deleted row's id is never given
-- to a new row (which would inherit the deleted row's audit history,
-- sessions or tokens). SQLite cannot change a key in place: each table is
-- rebuilt (create, copy, drop, rename, indexes), inside one transaction
-- with foreign keys off and checked before commit (the migration runner
-- does that for scripts marked as above).
-- Audit entries gain a MAC made when they are written (`mac`, unique: a
-- copied row cannot be inserted again) and `rejected_at`, set by the sealer
-- on rows without a valid MAC.

CREATE TABLE platform_users_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    two_factor_secret TEXT NULL,
    two_factor_confirmed_at TEXT NULL,
    two_factor_recovery_codes TEXT NULL,
    email_verified_at TEXT NULL,
    disabled_at TEXT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    two_factor_last_step BIGINT NULL
);
INSERT INTO platform_users_new (id, email, name, password_hash, two_factor_secret, two_factor_confirmed_at, two_factor_recovery_codes, email_verified_at, disabled_at, created_at, updated_at, two_factor_last_step)
    SELECT id, email, name, password_hash, two_factor_secret, two_factor_confirmed_at, two_factor_recovery_codes, email_verified_at, disabled_at, created_at, updated_at, two_factor_last_step FROM platform_users;
DROP TABLE platform_users;
ALTER TABLE platform_users_new RENAME TO platform_users;
CREATE UNIQUE INDEX platform_users_email_unique ON platform_users (email);

CREATE TABLE platform_roles_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(191) NOT NULL,
    created_at TEXT NOT NULL
);
INSERT INTO platform_roles_new (id, name, created_at) SELECT id, name, created_at FROM platform_roles;
DROP TABLE platform_roles;
ALTER TABLE platform_roles_new RENAME TO platform_roles;
CREATE UNIQUE INDEX platform_roles_name_unique ON platform_roles (name);

CREATE TABLE platform_permissions_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(191) NOT NULL,
    created_at TEXT NOT NULL
);
INSERT INTO platform_permissions_new (id, name, created_at) SELECT id, name, created_at FROM platform_permissions;
DROP TABLE platform_permissions;
ALTER TABLE platform_permissions_new RENAME TO platform_permissions;
CREATE UNIQUE INDEX platform_permissions_name_unique ON platform_permissions (name);

CREATE TABLE platform_api_tokens_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES platform_users (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    token_hash CHAR(64) NOT NULL,
    abilities TEXT NOT NULL,
    expires_at TEXT NULL,
    last_used_at TEXT NULL,
    revoked_at TEXT NULL,
    created_at TEXT NOT NULL
);
INSERT INTO platform_api_tokens_new (id, user_id, name, token_hash, abilities, expires_at, last_used_at, revoked_at, created_at)
    SELECT id, user_id, name, token_hash, abilities, expires_at, last_used_at, revoked_at, created_at FROM platform_api_tokens;
DROP TABLE platform_api_tokens;
ALTER TABLE platform_api_tokens_new RENAME TO platform_api_tokens;
CREATE UNIQUE INDEX platform_api_tokens_hash_unique ON platform_api_tokens (token_hash);
CREATE INDEX platform_api_tokens_user_idx ON platform_api_tokens (user_id);

CREATE TABLE platform_audits_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq BIGINT NULL,
    event VARCHAR(32) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    record_id VARCHAR(64) NOT NULL,
    old_values TEXT NULL,
    new_values TEXT NULL,
    actor_type VARCHAR(16) NOT NULL,
    actor_id BIGINT NULL,
    actor_label VARCHAR(255) NULL,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(512) NULL,
    url TEXT NULL,
    request_id VARCHAR(64) NULL,
    tags TEXT NULL,
    created_at TEXT NOT NULL,
    prev_hash CHAR(64) NULL,
    hash CHAR(64) NULL,
    mac VARCHAR(128) NULL,
    rejected_at TEXT NULL
);
INSERT INTO platform_audits_new (id, seq, event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at, prev_hash, hash)
    SELECT id, seq, event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at, prev_hash, hash FROM platform_audits;
DROP TABLE platform_audits;
ALTER TABLE platform_audits_new RENAME TO platform_audits;
CREATE UNIQUE INDEX platform_audits_seq_unique ON platform_audits (seq);
CREATE INDEX platform_audits_unsealed_idx ON platform_audits (id) WHERE seq IS NULL;
CREATE INDEX platform_audits_record_idx ON platform_audits (resource, record_id, id);
CREATE INDEX platform_audits_created_idx ON platform_audits (created_at);
CREATE UNIQUE INDEX platform_audits_mac_unique ON platform_audits (mac);
INSERT INTO platform_meta (name, value) SELECT 'audit_mac_from_seq', COALESCE(MAX(seq), 0) FROM platform_audits;

CREATE TABLE platform_audit_checkpoints_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq BIGINT NOT NULL,
    hash CHAR(64) NOT NULL,
    pruned INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    signature VARCHAR(128) NOT NULL
);
INSERT INTO platform_audit_checkpoints_new (id, seq, hash, pruned, created_at, signature)
    SELECT id, seq, hash, pruned, created_at, signature FROM platform_audit_checkpoints;
DROP TABLE platform_audit_checkpoints;
ALTER TABLE platform_audit_checkpoints_new RENAME TO platform_audit_checkpoints;

CREATE TABLE platform_notifications_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES platform_users (id) ON DELETE CASCADE,
    title VARCHAR(255) NOT NULL,
    body TEXT NOT NULL,
    url VARCHAR(2048) NULL,
    level VARCHAR(16) NOT NULL,
    read_at TEXT NULL,
    created_at TEXT NOT NULL
);
INSERT INTO platform_notifications_new (id, user_id, title, body, url, level, read_at, created_at)
    SELECT id, user_id, title, body, url, level, read_at, created_at FROM platform_notifications;
DROP TABLE platform_notifications;
ALTER TABLE platform_notifications_new RENAME TO platform_notifications;
CREATE INDEX platform_notifications_user_idx ON platform_notifications (user_id, read_at, id);

CREATE TABLE platform_access_log_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    surface VARCHAR(16) NOT NULL,
    method VARCHAR(16) NOT NULL,
    path VARCHAR(2048) NOT NULL,
    status INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    user_id BIGINT NULL,
    token_id BIGINT NULL,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(512) NULL,
    request_id VARCHAR(64) NULL
);
INSERT INTO platform_access_log_new (id, at, surface, method, path, status, duration_ms, user_id, token_id, ip, user_agent, request_id)
    SELECT id, at, surface, method, path, status, duration_ms, user_id, token_id, ip, user_agent, request_id FROM platform_access_log;
DROP TABLE platform_access_log;
ALTER TABLE platform_access_log_new RENAME TO platform_access_log;
CREATE INDEX platform_access_log_at_idx ON platform_access_log (at);
CREATE INDEX platform_access_log_user_idx ON platform_access_log (user_id, id);
