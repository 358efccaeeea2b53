-- 0002: the relay now deletes outbox rows once the log acknowledged them.
-- Rows published before that (published_at set) have no further use.
DELETE FROM outbox WHERE published_at IS NOT NULL;
