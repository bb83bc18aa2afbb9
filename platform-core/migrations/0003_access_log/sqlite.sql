CREATE TABLE platform_access_log (
    id INTEGER PRIMARY KEY,
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
CREATE INDEX platform_access_log_at_idx ON platform_access_log (at);
CREATE INDEX platform_access_log_user_idx ON platform_access_log (user_id, id);
