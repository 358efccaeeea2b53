-- 0009: the latest progress of a running attempt (see adapters/mysql/migrations/0009_job_progress.sql).

CREATE TABLE IF NOT EXISTS job_progress (
  job_id TEXT NOT NULL PRIMARY KEY,
  type TEXT NOT NULL,
  queue TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  value TEXT NOT NULL,
  at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS ix_job_progress_at ON job_progress (at, job_id);
