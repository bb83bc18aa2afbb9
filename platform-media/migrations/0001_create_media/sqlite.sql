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
    conversions TEXT NOT NULL,
    custom_properties TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX platform_media_record_idx ON platform_media (resource, record_id, collection, position);
