-- Create the `invoices` table of resource `invoice` (mysql).
-- Written by `make:migration`; edit freely before it is applied.
CREATE TABLE `invoices` (
    `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `customer_id` BIGINT NOT NULL,
    `number` VARCHAR(20) NOT NULL,
    `status` VARCHAR(255) NOT NULL,
    `amount_cents` BIGINT NOT NULL,
    `issued_on` DATE NOT NULL,
    `notes` LONGTEXT NULL,
    `iban` LONGTEXT NULL,
    `created_at` DATETIME(6) NOT NULL,
    `updated_at` DATETIME(6) NOT NULL,
    `deleted_at` DATETIME(6) NULL,
    CONSTRAINT `invoices_customer_id_fk` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`),
    FULLTEXT KEY `invoices_search_ft` (`number`, `notes`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE INDEX `invoices_customer_id_idx` ON `invoices` (`customer_id`);
CREATE UNIQUE INDEX `invoices_number_unique` ON `invoices` (`number`);
CREATE INDEX `invoices_status_idx` ON `invoices` (`status`);
CREATE INDEX `invoices_amount_cents_idx` ON `invoices` (`amount_cents`);
CREATE INDEX `invoices_issued_on_idx` ON `invoices` (`issued_on`);
CREATE INDEX `invoices_deleted_at_idx` ON `invoices` (`deleted_at`);
