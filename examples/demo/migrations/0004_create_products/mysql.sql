-- Create the `products` table of resource `product` (mysql).
-- Written by `make:migration`; edit freely before it is applied.
CREATE TABLE `products` (
    `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `name` VARCHAR(120) NOT NULL,
    `sku` VARCHAR(40) NOT NULL,
    `price_cents` BIGINT NOT NULL,
    `description` LONGTEXT NULL,
    FULLTEXT KEY `products_search_ft` (`name`, `sku`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE INDEX `products_name_idx` ON `products` (`name`);
CREATE UNIQUE INDEX `products_sku_unique` ON `products` (`sku`);
CREATE INDEX `products_price_cents_idx` ON `products` (`price_cents`);
