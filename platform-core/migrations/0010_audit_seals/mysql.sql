-- The hash chain moves to a table of its own. Sealing used to update every
-- audit row (seq, prev_hash, hash): a new version of the whole row and an
-- entry in each of its indexes, on top of the insert. Now the write
-- inserts the entry and its id into `platform_audit_pending` (same
-- transaction), and the sealer inserts one narrow row per entry into
-- `platform_audit_seals` and deletes its pending row. Audit rows are never
-- updated again (except `rejected_at` on forged rows).
CREATE TABLE platform_audit_seals (
    seq BIGINT NOT NULL PRIMARY KEY,
    audit_id BIGINT NOT NULL,
    prev_hash CHAR(64) NOT NULL,
    hash CHAR(64) NOT NULL,
    UNIQUE KEY platform_audit_seals_audit_unique (audit_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO platform_audit_seals (seq, audit_id, prev_hash, hash)
    SELECT seq, id, prev_hash, hash FROM platform_audits WHERE seq IS NOT NULL;
CREATE TABLE platform_audit_pending (
    audit_id BIGINT NOT NULL PRIMARY KEY
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO platform_audit_pending (audit_id)
    SELECT id FROM platform_audits WHERE seq IS NULL AND rejected_at IS NULL;
ALTER TABLE platform_audits DROP INDEX platform_audits_seq_unique, DROP INDEX platform_audits_unsealed_idx,
    DROP COLUMN seq, DROP COLUMN prev_hash, DROP COLUMN hash;
