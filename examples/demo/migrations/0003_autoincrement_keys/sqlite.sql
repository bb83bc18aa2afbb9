-- platform: foreign_keys=off
-- Integer keys become AUTOINCREMENT on SQLite, so a deleted record's id is
-- never given to a new record (which would otherwise inherit the deleted
-- record's audit history). SQLite cannot change a key in place: each table
-- is rebuilt (create, copy, drop, rename, then its indexes and search
-- triggers), in one transaction with foreign keys checked before commit.
-- The search indexes keep their rows: the ids do not change.
CREATE TABLE "customers_new" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "name" VARCHAR(120) NOT NULL,
    "email" VARCHAR(255) NOT NULL,
    "country" VARCHAR(2) NOT NULL,
    "created_at" TEXT NOT NULL
);
INSERT INTO "customers_new" ("id", "name", "email", "country", "created_at")
    SELECT "id", "name", "email", "country", "created_at" FROM "customers";
DROP TABLE "customers";
ALTER TABLE "customers_new" RENAME TO "customers";
CREATE INDEX "customers_name_idx" ON "customers" ("name", "id");
CREATE UNIQUE INDEX "customers_email_unique" ON "customers" ("email");
CREATE INDEX "customers_country_idx" ON "customers" ("country", "id");
CREATE TRIGGER "customers_search_ai" AFTER INSERT ON "customers" BEGIN INSERT INTO "customers_search" (rowid, "name", "email") VALUES (new."id", new."name", new."email"); END;
CREATE TRIGGER "customers_search_ad" AFTER DELETE ON "customers" BEGIN INSERT INTO "customers_search" ("customers_search", rowid, "name", "email") VALUES ('delete', old."id", old."name", old."email"); END;
CREATE TRIGGER "customers_search_au" AFTER UPDATE OF "name", "email" ON "customers" BEGIN INSERT INTO "customers_search" ("customers_search", rowid, "name", "email") VALUES ('delete', old."id", old."name", old."email"); INSERT INTO "customers_search" (rowid, "name", "email") VALUES (new."id", new."name", new."email"); END;

CREATE TABLE "invoices_new" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "customer_id" BIGINT NOT NULL REFERENCES "customers" ("id"),
    "number" VARCHAR(20) NOT NULL,
    "status" VARCHAR(255) NOT NULL,
    "amount_cents" BIGINT NOT NULL,
    "issued_on" TEXT NOT NULL,
    "notes" TEXT NULL,
    "iban" TEXT NULL,
    "created_at" TEXT NOT NULL,
    "updated_at" TEXT NOT NULL,
    "deleted_at" TEXT NULL
);
INSERT INTO "invoices_new" ("id", "customer_id", "number", "status", "amount_cents", "issued_on", "notes", "iban", "created_at", "updated_at", "deleted_at")
    SELECT "id", "customer_id", "number", "status", "amount_cents", "issued_on", "notes", "iban", "created_at", "updated_at", "deleted_at" FROM "invoices";
DROP TABLE "invoices";
ALTER TABLE "invoices_new" RENAME TO "invoices";
CREATE INDEX "invoices_customer_id_idx" ON "invoices" ("customer_id", "id");
CREATE UNIQUE INDEX "invoices_number_unique" ON "invoices" ("number");
CREATE INDEX "invoices_status_idx" ON "invoices" ("status", "id");
CREATE INDEX "invoices_amount_cents_idx" ON "invoices" ("amount_cents", "id");
CREATE INDEX "invoices_issued_on_idx" ON "invoices" ("issued_on", "id");
CREATE INDEX "invoices_deleted_at_idx" ON "invoices" ("deleted_at", "id");
CREATE TRIGGER "invoices_search_ai" AFTER INSERT ON "invoices" BEGIN INSERT INTO "invoices_search" (rowid, "number", "notes") VALUES (new."id", new."number", new."notes"); END;
CREATE TRIGGER "invoices_search_ad" AFTER DELETE ON "invoices" BEGIN INSERT INTO "invoices_search" ("invoices_search", rowid, "number", "notes") VALUES ('delete', old."id", old."number", old."notes"); END;
CREATE TRIGGER "invoices_search_au" AFTER UPDATE OF "number", "notes" ON "invoices" BEGIN INSERT INTO "invoices_search" ("invoices_search", rowid, "number", "notes") VALUES ('delete', old."id", old."number", old."notes"); INSERT INTO "invoices_search" (rowid, "number", "notes") VALUES (new."id", new."number", new."notes"); END;
