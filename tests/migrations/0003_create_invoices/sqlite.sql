-- Create the `invoices` table of resource `invoice` (sqlite).
-- Written by `make:migration`; edit freely before it is applied.
CREATE TABLE "invoices" (
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
CREATE INDEX "invoices_customer_id_idx" ON "invoices" ("customer_id", "id");
CREATE UNIQUE INDEX "invoices_number_unique" ON "invoices" ("number");
CREATE INDEX "invoices_status_idx" ON "invoices" ("status", "id");
CREATE INDEX "invoices_amount_cents_idx" ON "invoices" ("amount_cents", "id");
CREATE INDEX "invoices_issued_on_idx" ON "invoices" ("issued_on", "id");
CREATE INDEX "invoices_deleted_at_idx" ON "invoices" ("deleted_at", "id");
CREATE VIRTUAL TABLE "invoices_search" USING fts5("number", "notes", content='invoices', content_rowid='id', tokenize='trigram');
CREATE TRIGGER "invoices_search_ai" AFTER INSERT ON "invoices" BEGIN INSERT INTO "invoices_search" (rowid, "number", "notes") VALUES (new."id", new."number", new."notes"); END;
CREATE TRIGGER "invoices_search_ad" AFTER DELETE ON "invoices" BEGIN INSERT INTO "invoices_search" ("invoices_search", rowid, "number", "notes") VALUES ('delete', old."id", old."number", old."notes"); END;
CREATE TRIGGER "invoices_search_au" AFTER UPDATE OF "number", "notes" ON "invoices" BEGIN INSERT INTO "invoices_search" ("invoices_search", rowid, "number", "notes") VALUES ('delete', old."id", old."number", old."notes"); INSERT INTO "invoices_search" (rowid, "number", "notes") VALUES (new."id", new."number", new."notes"); END;
