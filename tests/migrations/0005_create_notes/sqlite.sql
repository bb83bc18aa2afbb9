-- Create the `notes` table of resource `note` (sqlite).
-- Written by `make:migration`; edit freely before it is applied.
CREATE TABLE "notes" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "owner_id" BIGINT NOT NULL,
    "body" VARCHAR(255) NOT NULL
);
CREATE INDEX "notes_owner_id_idx" ON "notes" ("owner_id", "id");
CREATE INDEX "notes_body_idx" ON "notes" ("body", "id");
CREATE VIRTUAL TABLE "notes_search" USING fts5("body", content='notes', content_rowid='id', tokenize='trigram');
CREATE TRIGGER "notes_search_ai" AFTER INSERT ON "notes" BEGIN INSERT INTO "notes_search" (rowid, "body") VALUES (new."id", new."body"); END;
CREATE TRIGGER "notes_search_ad" AFTER DELETE ON "notes" BEGIN INSERT INTO "notes_search" ("notes_search", rowid, "body") VALUES ('delete', old."id", old."body"); END;
CREATE TRIGGER "notes_search_au" AFTER UPDATE OF "body" ON "notes" BEGIN INSERT INTO "notes_search" ("notes_search", rowid, "body") VALUES ('delete', old."id", old."body"); INSERT INTO "notes_search" (rowid, "body") VALUES (new."id", new."body"); END;
