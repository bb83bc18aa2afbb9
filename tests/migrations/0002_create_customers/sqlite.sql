-- Create the `customers` table of resource `customer` (sqlite).
-- Written by `make:migration`; edit freely before it is applied.
CREATE TABLE "customers" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "name" VARCHAR(120) NOT NULL,
    "email" VARCHAR(255) NOT NULL,
    "country" VARCHAR(2) NOT NULL,
    "created_at" TEXT NOT NULL
);
CREATE INDEX "customers_name_idx" ON "customers" ("name", "id");
CREATE UNIQUE INDEX "customers_email_unique" ON "customers" ("email");
CREATE INDEX "customers_country_idx" ON "customers" ("country", "id");
CREATE VIRTUAL TABLE "customers_search" USING fts5("name", "email", content='customers', content_rowid='id', tokenize='trigram');
CREATE TRIGGER "customers_search_ai" AFTER INSERT ON "customers" BEGIN INSERT INTO "customers_search" (rowid, "name", "email") VALUES (new."id", new."name", new."email"); END;
CREATE TRIGGER "customers_search_ad" AFTER DELETE ON "customers" BEGIN INSERT INTO "customers_search" ("customers_search", rowid, "name", "email") VALUES ('delete', old."id", old."name", old."email"); END;
CREATE TRIGGER "customers_search_au" AFTER UPDATE OF "name", "email" ON "customers" BEGIN INSERT INTO "customers_search" ("customers_search", rowid, "name", "email") VALUES ('delete', old."id", old."name", old."email"); INSERT INTO "customers_search" (rowid, "name", "email") VALUES (new."id", new."name", new."email"); END;
