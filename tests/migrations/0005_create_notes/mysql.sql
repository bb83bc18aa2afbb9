-- Create the `notes` table of resource `note` (mysql).
-- Written by `make:migration`; edit freely before it is applied.
CREATE TABLE `notes` (
    `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `owner_id` BIGINT NOT NULL,
    `body` VARCHAR(255) NOT NULL,
    FULLTEXT KEY `notes_search_ft` (`body`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE INDEX `notes_owner_id_idx` ON `notes` (`owner_id`);
CREATE INDEX `notes_body_idx` ON `notes` (`body`);
