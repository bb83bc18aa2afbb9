CREATE TABLE platform_outbox (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id VARCHAR(36) NOT NULL,
    event VARCHAR(40) NOT NULL,
    resource VARCHAR(100) NOT NULL,
    record_id VARCHAR(255) NOT NULL,
    changes LONGTEXT NOT NULL,
    actor TEXT NOT NULL,
    request_id VARCHAR(64) NULL,
    tags TEXT NOT NULL,
    listeners TEXT NOT NULL,
    delivered TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NULL,
    created_at DATETIME(6) NOT NULL,
    next_attempt_at DATETIME(6) NOT NULL,
    claimed_until DATETIME(6) NULL,
    dispatched_at DATETIME(6) NULL,
    failed_at DATETIME(6) NULL,
    UNIQUE KEY platform_outbox_event_id_uq (event_id),
    KEY platform_outbox_pending_idx (dispatched_at, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE platform_cache (
    cache_key VARCHAR(250) NOT NULL PRIMARY KEY,
    value LONGTEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    KEY platform_cache_expires_idx (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
