-- AUTOINCREMENT keys concern SQLite only: PostgreSQL identities and MySQL
-- AUTO_INCREMENT never reuse an id.
SELECT 1;
