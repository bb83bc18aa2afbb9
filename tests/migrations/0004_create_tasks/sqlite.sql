-- Create the `tasks` table of resource `task` (sqlite).
-- Written by `make:migration`; edit freely before it is applied.
CREATE TABLE "tasks" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "title" VARCHAR(255) NOT NULL,
    "due_on" TEXT NULL,
    "done" BOOLEAN NOT NULL
);
CREATE INDEX "tasks_title_idx" ON "tasks" ("title", "id");
CREATE INDEX "tasks_due_on_idx" ON "tasks" ("due_on", "id");
CREATE INDEX "tasks_done_idx" ON "tasks" ("done", "id");
