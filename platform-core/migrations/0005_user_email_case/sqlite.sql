-- Users' e-mail addresses are unique whatever their case: existing rows are
-- normalised (trimmed, lower-cased) and a unique index on the lower-cased
-- address keeps it so, also for rows written behind the platform's back.
--
-- Addresses that differ only in case are two accounts that would become one:
-- the migration refuses to run, naming them, rather than merge them silently
-- (merge or rename them, then start again). SQLite has no procedural code: a
-- temporary trigger raises the error with the list.
CREATE TEMP TABLE IF NOT EXISTS platform_email_case_check (message TEXT NULL);
DROP TRIGGER IF EXISTS temp.platform_email_case_check_raise;
CREATE TEMP TRIGGER platform_email_case_check_raise
BEFORE INSERT ON platform_email_case_check
WHEN NEW.message IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, NEW.message);
END;
INSERT INTO platform_email_case_check (message)
SELECT CASE WHEN COUNT(*) = 0 THEN NULL ELSE
    'platform_users has ' || COUNT(*) || ' e-mail addresses that differ only in case from another account''s: '
    || (SELECT group_concat(email, ', ') FROM (
            SELECT u.email AS email FROM platform_users u
            WHERE lower(trim(u.email)) IN (
                SELECT lower(trim(email)) FROM platform_users GROUP BY lower(trim(email)) HAVING COUNT(*) > 1)
            ORDER BY lower(trim(u.email)), u.id LIMIT 20))
    || '. Addresses are now unique whatever their case: merge or rename these accounts, then start again.'
END
FROM platform_users
WHERE lower(trim(email)) IN (
    SELECT lower(trim(email)) FROM platform_users GROUP BY lower(trim(email)) HAVING COUNT(*) > 1);
DROP TRIGGER temp.platform_email_case_check_raise;
DROP TABLE temp.platform_email_case_check;

UPDATE platform_users SET email = lower(trim(email)) WHERE email <> lower(trim(email));
CREATE UNIQUE INDEX platform_users_email_lower_unique ON platform_users (lower(email));
