-- 0027: one index fewer on jobs, rewritten at each transition. Retention's
-- scan of a terminal state by last change reads (state, due_at, updated_at)
-- with due_at NULL, which a terminal job always has (machines/lifecycle.ts
-- `project`): the same range, in the same order, as (state, updated_at) gave.
-- The UPDATE makes sure of it for any row that says otherwise (none written
-- by this project; a range of the index, cheap), so retention never misses
-- one. A rerun after a crash finds the index gone: that counts as done
-- (adapters/mysql/migrate.ts).
UPDATE jobs SET due_at = NULL WHERE state IN ('done', 'dead', 'cancelled') AND due_at IS NOT NULL;
ALTER TABLE jobs DROP INDEX ix_jobs_state_updated;
