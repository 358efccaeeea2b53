-- 0021: the timers' lost-dispatch scan (`findLostDispatches`: jobs waiting
-- for a worker, `due_at` NULL, not updated since a time) had no index that
-- held all three conditions: it read every delayed job not updated since
-- then, or every job waiting for a worker, and kept none of them. With many
-- of both it read hundreds of thousands of rows every pass. This index
-- holds them all, and it covers what ix_jobs_state_due did (the due and
-- expired-lease scans read its first two columns). A rerun after a crash
-- finds the index made or the old one gone: that statement counts as done
-- (adapters/mysql/migrate.ts).
CREATE INDEX ix_jobs_state_due_updated ON jobs (state, due_at, updated_at);
ALTER TABLE jobs DROP INDEX ix_jobs_state_due;
