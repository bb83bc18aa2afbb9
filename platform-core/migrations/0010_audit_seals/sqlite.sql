-- platform: foreign_keys=off
-- The hash chain moves to a table of its own. Sealing used to update every
-- audit row (seq, prev_hash, hash): a new version of the whole row and an
-- entry in each of its indexes, on top of the insert. Now the write
-- inserts the entry and its id into `platform_audit_pending` (same
-- transaction), and the sealer inserts one narrow row per entry into
-- `platform_audit_seals` and deletes its pending row. Audit rows are never
-- updated again (except `rejected_at` on forged rows).
CREATE TABLE platform_audit_seals (
    seq INTEGER NOT NULL PRIMARY KEY,
    audit_id BIGINT NOT NULL,
    prev_hash CHAR(64) NOT NULL,
    hash CHAR(64) NOT NULL
);
CREATE UNIQUE INDEX platform_audit_seals_audit_unique ON platform_audit_seals (audit_id);
INSERT INTO platform_audit_seals (seq, audit_id, prev_hash, hash)
    SELECT seq, id, prev_hash, hash FROM platform_audits WHERE seq IS NOT NULL;
CREATE TABLE platform_audit_pending (
    audit_id INTEGER NOT NULL PRIMARY KEY
);
INSERT INTO platform_audit_pending (audit_id)
    SELECT id FROM platform_audits WHERE seq IS NULL AND rejected_at IS NULL;
-- Rebuilt rather than altered: SQLite's DROP COLUMN re-checks every
-- trigger and view in the schema, and fails on any that is out of date.
CREATE TABLE platform_audits_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    mac VARCHAR(128) NULL,
    rejected_at TEXT NULL
);
INSERT INTO platform_audits_new (id, event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at, mac, rejected_at)
    SELECT id, event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at, mac, rejected_at FROM platform_audits;
-- Ids are never given twice, even those of rows deleted from the end.
DELETE FROM sqlite_sequence WHERE name = 'platform_audits_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'platform_audits_new', seq FROM sqlite_sequence WHERE name = 'platform_audits';
DROP TABLE platform_audits;
ALTER TABLE platform_audits_new RENAME TO platform_audits;
CREATE INDEX platform_audits_record_idx ON platform_audits (resource, record_id, id);
CREATE INDEX platform_audits_created_idx ON platform_audits (created_at);
CREATE UNIQUE INDEX platform_audits_mac_unique ON platform_audits (mac);
