-- Create the `tasks` table of resource `task` (mysql).
-- Written by `make:migration`; edit freely before it is applied.
CREATE TABLE `tasks` (
    `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `title` VARCHAR(255) NOT NULL,
    `due_on` DATE NULL,
    `done` BOOLEAN NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE INDEX `tasks_title_idx` ON `tasks` (`title`);
CREATE INDEX `tasks_due_on_idx` ON `tasks` (`due_on`);
CREATE INDEX `tasks_done_idx` ON `tasks` (`done`);
