-- Users' e-mail addresses are unique whatever their case. On MySQL/MariaDB
-- the unique index on `email` already compares with the table's collation,
-- utf8mb4_unicode_ci, which ignores case: two addresses that differ only in
-- case could never both be stored, so there is nothing to refuse. Existing
-- rows are normalised (trimmed, lower-cased) like every address the platform
-- writes; BINARY makes the comparison see case.
UPDATE platform_users SET email = LOWER(TRIM(email)) WHERE BINARY email <> BINARY LOWER(TRIM(email));
