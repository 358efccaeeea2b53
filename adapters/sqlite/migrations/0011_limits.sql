-- 0011: concurrency and rate limits (see adapters/mysql/migrations/0011_limits.sql).

ALTER TABLE jobs ADD COLUMN concurrency_key TEXT NULL;

CREATE TABLE IF NOT EXISTS limits (
  limit_key TEXT NOT NULL PRIMARY KEY,
  concurrency INTEGER NULL,
  rate_max INTEGER NULL,
  rate_interval_ms INTEGER NULL,
  tat INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS limit_running (
  limit_key TEXT NOT NULL,
  job_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  PRIMARY KEY (limit_key, job_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX limit_running_job ON limit_running (job_id);
