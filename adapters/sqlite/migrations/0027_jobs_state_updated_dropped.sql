-- 0027: one index fewer on jobs, rewritten at each transition. Retention's
-- scan of a terminal state by last change reads (state, due_at, updated_at)
-- with due_at NULL, which a terminal job always has: the same range, in the
-- same order, as (state, updated_at) gave. The UPDATE makes sure of it for any
-- row that says otherwise, so retention never misses one.
UPDATE jobs SET due_at = NULL WHERE state IN ('done', 'dead', 'cancelled') AND due_at IS NOT NULL;
DROP INDEX IF EXISTS ix_jobs_state_updated;
