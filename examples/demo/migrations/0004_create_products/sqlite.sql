-- Create the `products` table of resource `product` (sqlite).
-- Written by `make:migration`; edit freely before it is applied.
CREATE TABLE "products" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "name" VARCHAR(120) NOT NULL,
    "sku" VARCHAR(40) NOT NULL,
    "price_cents" BIGINT NOT NULL,
    "description" TEXT NULL
);
CREATE INDEX "products_name_idx" ON "products" ("name", "id");
CREATE UNIQUE INDEX "products_sku_unique" ON "products" ("sku");
CREATE INDEX "products_price_cents_idx" ON "products" ("price_cents", "id");
CREATE VIRTUAL TABLE "products_search" USING fts5("name", "sku", content='products', content_rowid='id', tokenize='trigram');
CREATE TRIGGER "products_search_ai" AFTER INSERT ON "products" BEGIN INSERT INTO "products_search" (rowid, "name", "sku") VALUES (new."id", new."name", new."sku"); END;
CREATE TRIGGER "products_search_ad" AFTER DELETE ON "products" BEGIN INSERT INTO "products_search" ("products_search", rowid, "name", "sku") VALUES ('delete', old."id", old."name", old."sku"); END;
CREATE TRIGGER "products_search_au" AFTER UPDATE OF "name", "sku" ON "products" BEGIN INSERT INTO "products_search" ("products_search", rowid, "name", "sku") VALUES ('delete', old."id", old."name", old."sku"); INSERT INTO "products_search" (rowid, "name", "sku") VALUES (new."id", new."name", new."sku"); END;
