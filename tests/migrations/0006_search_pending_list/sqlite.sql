-- The search index options concern PostgreSQL only.
SELECT 1;
