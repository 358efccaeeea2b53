-- 0003: maintained job counts (see adapters/mysql/migrations/0003_job_counts.sql for why).
-- The migration runs in one transaction holding the write lock: the backfill is exact.

CREATE TABLE IF NOT EXISTS job_counts (
  queue TEXT NOT NULL,
  type TEXT NOT NULL,
  state TEXT NOT NULL,
  shard INTEGER NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (queue, type, state, shard)
) STRICT, WITHOUT ROWID;

REPLACE INTO job_counts (queue, type, state, shard, n)
  SELECT queue, type, state, 0, COUNT(*) FROM jobs GROUP BY queue, type, state;
