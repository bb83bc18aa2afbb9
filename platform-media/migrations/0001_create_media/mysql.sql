CREATE TABLE platform_media (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    resource VARCHAR(100) NOT NULL,
    record_id VARCHAR(191) NOT NULL,
    collection VARCHAR(100) NOT NULL,
    file_name VARCHAR(255) NOT NULL,
    mime VARCHAR(100) NOT NULL,
    size BIGINT NOT NULL,
    disk VARCHAR(64) NOT NULL,
    path VARCHAR(1024) NOT NULL,
    position BIGINT NOT NULL,
    conversions MEDIUMTEXT NOT NULL,
    custom_properties MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    KEY platform_media_record_idx (resource, record_id, collection, position)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
