CREATE TABLE platform_users (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    two_factor_secret TEXT NULL,
    two_factor_confirmed_at DATETIME(6) NULL,
    two_factor_recovery_codes TEXT NULL,
    email_verified_at DATETIME(6) NULL,
    disabled_at DATETIME(6) NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    UNIQUE KEY platform_users_email_unique (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE platform_roles (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(191) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    UNIQUE KEY platform_roles_name_unique (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE platform_permissions (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(191) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    UNIQUE KEY platform_permissions_name_unique (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE platform_role_permissions (
    role_id BIGINT NOT NULL,
    permission_id BIGINT NOT NULL,
    PRIMARY KEY (role_id, permission_id),
    CONSTRAINT platform_role_permissions_role_fk FOREIGN KEY (role_id) REFERENCES platform_roles (id) ON DELETE CASCADE,
    CONSTRAINT platform_role_permissions_permission_fk FOREIGN KEY (permission_id) REFERENCES platform_permissions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE platform_user_roles (
    user_id BIGINT NOT NULL,
    role_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, role_id),
    CONSTRAINT platform_user_roles_user_fk FOREIGN KEY (user_id) REFERENCES platform_users (id) ON DELETE CASCADE,
    CONSTRAINT platform_user_roles_role_fk FOREIGN KEY (role_id) REFERENCES platform_roles (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE platform_user_permissions (
    user_id BIGINT NOT NULL,
    permission_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, permission_id),
    CONSTRAINT platform_user_permissions_user_fk FOREIGN KEY (user_id) REFERENCES platform_users (id) ON DELETE CASCADE,
    CONSTRAINT platform_user_permissions_permission_fk FOREIGN KEY (permission_id) REFERENCES platform_permissions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE platform_api_tokens (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL,
    token_hash CHAR(64) NOT NULL,
    abilities TEXT NOT NULL,
    expires_at DATETIME(6) NULL,
    last_used_at DATETIME(6) NULL,
    revoked_at DATETIME(6) NULL,
    created_at DATETIME(6) NOT NULL,
    UNIQUE KEY platform_api_tokens_hash_unique (token_hash),
    KEY platform_api_tokens_user_idx (user_id),
    CONSTRAINT platform_api_tokens_user_fk FOREIGN KEY (user_id) REFERENCES platform_users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE platform_meta (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO platform_meta (name, value) VALUES ('access_version', 1);

CREATE TABLE platform_audits (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    seq BIGINT NULL,
    event VARCHAR(32) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    record_id VARCHAR(64) NOT NULL,
    old_values LONGTEXT NULL,
    new_values LONGTEXT NULL,
    actor_type VARCHAR(16) NOT NULL,
    actor_id BIGINT NULL,
    actor_label VARCHAR(255) NULL,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(512) NULL,
    url TEXT NULL,
    request_id VARCHAR(64) NULL,
    tags TEXT NULL,
    created_at DATETIME(6) NOT NULL,
    prev_hash CHAR(64) NULL,
    hash CHAR(64) NULL,
    UNIQUE KEY platform_audits_seq_unique (seq),
    KEY platform_audits_record_idx (resource, record_id, id),
    KEY platform_audits_created_idx (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE platform_audit_chain (
    id BIGINT NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL,
    head_hash CHAR(64) NOT NULL,
    signature CHAR(64) NOT NULL,
    updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE platform_audit_checkpoints (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash CHAR(64) NOT NULL,
    pruned BIGINT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    signature CHAR(64) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
