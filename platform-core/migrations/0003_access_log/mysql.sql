CREATE TABLE platform_access_log (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at DATETIME(6) NOT NULL,
    surface VARCHAR(16) NOT NULL,
    method VARCHAR(16) NOT NULL,
    path VARCHAR(2048) NOT NULL,
    status INT NOT NULL,
    duration_ms DOUBLE NOT NULL,
    user_id BIGINT NULL,
    token_id BIGINT NULL,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(512) NULL,
    request_id VARCHAR(64) NULL,
    KEY platform_access_log_at_idx (at),
    KEY platform_access_log_user_idx (user_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
