ALTER TABLE platform_users ADD COLUMN two_factor_last_step BIGINT NULL;

CREATE TABLE platform_sessions (
    id CHAR(64) NOT NULL PRIMARY KEY,
    user_id BIGINT NULL,
    csrf_token VARCHAR(64) NOT NULL,
    data MEDIUMTEXT NOT NULL,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(512) NULL,
    two_factor_passed BOOLEAN NOT NULL DEFAULT FALSE,
    password_confirmed_at DATETIME(6) NULL,
    created_at DATETIME(6) NOT NULL,
    last_seen_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    KEY platform_sessions_user_idx (user_id),
    KEY platform_sessions_expires_idx (expires_at),
    CONSTRAINT platform_sessions_user_fk FOREIGN KEY (user_id) REFERENCES platform_users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE platform_password_resets (
    token_hash CHAR(64) NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    used_at DATETIME(6) NULL,
    KEY platform_password_resets_user_idx (user_id),
    CONSTRAINT platform_password_resets_user_fk FOREIGN KEY (user_id) REFERENCES platform_users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE platform_notifications (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    title VARCHAR(255) NOT NULL,
    body TEXT NOT NULL,
    url VARCHAR(2048) NULL,
    level VARCHAR(16) NOT NULL,
    read_at DATETIME(6) NULL,
    created_at DATETIME(6) NOT NULL,
    KEY platform_notifications_user_idx (user_id, read_at, id),
    CONSTRAINT platform_notifications_user_fk FOREIGN KEY (user_id) REFERENCES platform_users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE platform_user_preferences (
    user_id BIGINT NOT NULL,
    name VARCHAR(191) NOT NULL,
    value TEXT NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (user_id, name),
    CONSTRAINT platform_user_preferences_user_fk FOREIGN KEY (user_id) REFERENCES platform_users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
