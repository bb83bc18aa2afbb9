CREATE TABLE platform_users (
    id INTEGER PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    two_factor_secret TEXT NULL,
    two_factor_confirmed_at TEXT NULL,
    two_factor_recovery_codes TEXT NULL,
    email_verified_at TEXT NULL,
    disabled_at TEXT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX platform_users_email_unique ON platform_users (email);

CREATE TABLE platform_roles (
    id INTEGER PRIMARY KEY,
    name VARCHAR(191) NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX platform_roles_name_unique ON platform_roles (name);

CREATE TABLE platform_permissions (
    id INTEGER PRIMARY KEY,
    name VARCHAR(191) NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX platform_permissions_name_unique ON platform_permissions (name);

CREATE TABLE platform_role_permissions (
    role_id BIGINT NOT NULL REFERENCES platform_roles (id) ON DELETE CASCADE,
    permission_id BIGINT NOT NULL REFERENCES platform_permissions (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission_id)
);

CREATE TABLE platform_user_roles (
    user_id BIGINT NOT NULL REFERENCES platform_users (id) ON DELETE CASCADE,
    role_id BIGINT NOT NULL REFERENCES platform_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE platform_user_permissions (
    user_id BIGINT NOT NULL REFERENCES platform_users (id) ON DELETE CASCADE,
    permission_id BIGINT NOT NULL REFERENCES platform_permissions (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, permission_id)
);

CREATE TABLE platform_api_tokens (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES platform_users (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    token_hash CHAR(64) NOT NULL,
    abilities TEXT NOT NULL,
    expires_at TEXT NULL,
    last_used_at TEXT NULL,
    revoked_at TEXT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX platform_api_tokens_hash_unique ON platform_api_tokens (token_hash);
CREATE INDEX platform_api_tokens_user_idx ON platform_api_tokens (user_id);

CREATE TABLE platform_meta (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO platform_meta (name, value) VALUES ('access_version', 1);

CREATE TABLE platform_audits (
    id INTEGER PRIMARY KEY,
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
    hash CHAR(64) NULL
);
CREATE UNIQUE INDEX platform_audits_seq_unique ON platform_audits (seq);
CREATE INDEX platform_audits_unsealed_idx ON platform_audits (id) WHERE seq IS NULL;
CREATE INDEX platform_audits_record_idx ON platform_audits (resource, record_id, id);
CREATE INDEX platform_audits_created_idx ON platform_audits (created_at);

CREATE TABLE platform_audit_chain (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL,
    head_hash CHAR(64) NOT NULL,
    signature CHAR(64) NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE platform_audit_checkpoints (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash CHAR(64) NOT NULL,
    pruned INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    signature CHAR(64) NOT NULL
);
