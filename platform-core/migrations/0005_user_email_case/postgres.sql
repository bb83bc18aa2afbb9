-- Users' e-mail addresses are unique whatever their case: existing rows are
-- normalised (trimmed, lower-cased) and a unique index on the lower-cased
-- address keeps it so, also for rows written behind the platform's back.
--
-- Addresses that differ only in case are two accounts that would become one:
-- the migration refuses to run, naming them, rather than merge them silently
-- (merge or rename them, then start again). The script runs as one
-- transaction, so a refusal changes nothing.
DO $$
DECLARE
    n BIGINT;
    dups TEXT;
BEGIN
    SELECT COUNT(*) INTO n FROM platform_users
    WHERE lower(btrim(email)) IN (
        SELECT lower(btrim(email)) FROM platform_users GROUP BY lower(btrim(email)) HAVING COUNT(*) > 1);
    IF n > 0 THEN
        SELECT string_agg(email, ', ') INTO dups FROM (
            SELECT u.email FROM platform_users u
            WHERE lower(btrim(u.email)) IN (
                SELECT lower(btrim(email)) FROM platform_users GROUP BY lower(btrim(email)) HAVING COUNT(*) > 1)
            ORDER BY lower(btrim(u.email)), u.id LIMIT 20) d;
        RAISE EXCEPTION 'platform_users has % e-mail addresses that differ only in case from another account''s: %. Addresses are now unique whatever their case: merge or rename these accounts, then start again.', n, dups;
    END IF;
END
$$;

UPDATE platform_users SET email = lower(btrim(email)) WHERE email <> lower(btrim(email));
CREATE UNIQUE INDEX platform_users_email_lower_unique ON platform_users (lower(email));
