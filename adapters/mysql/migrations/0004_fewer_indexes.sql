-- 0004: two secondary indexes fewer to maintain on every write.
-- A running job's due_at is now its lease end (the expired-lease scan uses
-- ix_jobs_state_due), so ix_jobs_state_lease goes; the relay claims the
-- outbox by primary key and deletes what it sent, so ix_outbox_unpublished
-- has no reader. The UPDATE is idempotent; a DROP of an index already gone
-- (a rerun after a crash before the ledger row) counts as done (migrate.ts).
UPDATE jobs SET due_at = lease_until WHERE state = 'running';
ALTER TABLE jobs DROP INDEX ix_jobs_state_lease;
ALTER TABLE outbox DROP INDEX ix_outbox_unpublished;
