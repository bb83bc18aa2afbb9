-- Audit entries gain a MAC made when they are written (`mac`, unique: a
-- copied row cannot be inserted again) and `rejected_at`, set by the sealer
-- on rows without a valid MAC. Entries sealed before this migration are
-- covered by the chain alone (`audit_mac_from_seq`).
ALTER TABLE platform_audits ADD COLUMN mac VARCHAR(128) NULL, ADD COLUMN rejected_at DATETIME(6) NULL;
CREATE UNIQUE INDEX platform_audits_mac_unique ON platform_audits (mac);
INSERT INTO platform_meta (name, value) SELECT 'audit_mac_from_seq', COALESCE(MAX(seq), 0) FROM platform_audits;
ALTER TABLE platform_audit_checkpoints MODIFY signature VARCHAR(128) NOT NULL;
ALTER TABLE platform_audit_chain MODIFY signature VARCHAR(128) NOT NULL;
