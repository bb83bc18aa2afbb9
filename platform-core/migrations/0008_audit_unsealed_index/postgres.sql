-- The sealer looks for entries that are neither sealed nor rejected. Rows
-- rejected for a missing or invalid MAC (written around the platform) stay
-- unsealed for ever: kept in the old partial index, every sealing pass
-- walked past all of them.
DROP INDEX platform_audits_unsealed_idx;
CREATE INDEX platform_audits_unsealed_idx ON platform_audits (id) WHERE seq IS NULL AND rejected_at IS NULL;
