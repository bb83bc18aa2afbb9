-- Create the `customers` table of resource `customer` (mysql).
-- Written by `make:migration`; edit freely before it is applied.
CREATE TABLE `customers` (
    `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `name` VARCHAR(120) NOT NULL,
    `email` VARCHAR(255) NOT NULL,
    `country` VARCHAR(2) NOT NULL,
    `created_at` DATETIME(6) NOT NULL,
    FULLTEXT KEY `customers_search_ft` (`name`, `email`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE INDEX `customers_name_idx` ON `customers` (`name`);
CREATE UNIQUE INDEX `customers_email_unique` ON `customers` (`email`);
CREATE INDEX `customers_country_idx` ON `customers` (`country`);
