CREATE TABLE platform_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id VARCHAR(36) NOT NULL UNIQUE,
    event VARCHAR(40) NOT NULL,
    resource VARCHAR(100) NOT NULL,
    record_id VARCHAR(255) NOT NULL,
    changes TEXT NOT NULL,
    actor TEXT NOT NULL,
    request_id VARCHAR(64) NULL,
    tags TEXT NOT NULL,
    listeners TEXT NOT NULL,
    delivered TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NULL,
    created_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    claimed_until TEXT NULL,
    dispatched_at TEXT NULL,
    failed_at TEXT NULL
);
CREATE INDEX platform_outbox_pending_idx ON platform_outbox (dispatched_at, next_attempt_at);
CREATE TABLE platform_cache (
    cache_key VARCHAR(250) NOT NULL PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX platform_cache_expires_idx ON platform_cache (expires_at);
