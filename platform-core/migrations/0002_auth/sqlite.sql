ALTER TABLE platform_users ADD COLUMN two_factor_last_step BIGINT NULL;

CREATE TABLE platform_sessions (
    id CHAR(64) NOT NULL PRIMARY KEY,
    user_id BIGINT NULL REFERENCES platform_users (id) ON DELETE CASCADE,
    csrf_token VARCHAR(64) NOT NULL,
    data TEXT NOT NULL,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(512) NULL,
    two_factor_passed BOOLEAN NOT NULL DEFAULT FALSE,
    password_confirmed_at TEXT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX platform_sessions_user_idx ON platform_sessions (user_id);
CREATE INDEX platform_sessions_expires_idx ON platform_sessions (expires_at);

CREATE TABLE platform_password_resets (
    token_hash CHAR(64) NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES platform_users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT NULL
);
CREATE INDEX platform_password_resets_user_idx ON platform_password_resets (user_id);

CREATE TABLE platform_notifications (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES platform_users (id) ON DELETE CASCADE,
    title VARCHAR(255) NOT NULL,
    body TEXT NOT NULL,
    url VARCHAR(2048) NULL,
    level VARCHAR(16) NOT NULL,
    read_at TEXT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX platform_notifications_user_idx ON platform_notifications (user_id, read_at, id);

CREATE TABLE platform_user_preferences (
    user_id BIGINT NOT NULL REFERENCES platform_users (id) ON DELETE CASCADE,
    name VARCHAR(191) NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);
