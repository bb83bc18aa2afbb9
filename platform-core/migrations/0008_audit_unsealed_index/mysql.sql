-- The sealer looks for entries that are neither sealed nor rejected
-- (`seq IS NULL AND rejected_at IS NULL AND id > ? ORDER BY id`); without
-- this index it walked every unsealed row, rejected ones included, through
-- the unique index on `seq`.
CREATE INDEX platform_audits_unsealed_idx ON platform_audits (seq, rejected_at, id);
