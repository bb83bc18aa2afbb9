-- Delivered events are deleted once delivered (the outbox is a queue; the
-- audit trail keeps the history). Rows marked delivered by earlier versions
-- go now.
DELETE FROM platform_outbox WHERE dispatched_at IS NOT NULL;
