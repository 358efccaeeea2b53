-- 0008: cron schedules and the ticks they fired (see adapters/mysql/migrations/0008_schedules.sql).

CREATE TABLE IF NOT EXISTS schedules (
  name TEXT NOT NULL PRIMARY KEY,
  cron TEXT NOT NULL,
  timezone TEXT NOT NULL,
  overlap TEXT NOT NULL,
  catch_up TEXT NOT NULL,
  paused INTEGER NOT NULL,
  job TEXT NOT NULL,
  next_at INTEGER,
  last_tick_at INTEGER,
  last_job_id TEXT,
  submitted INTEGER NOT NULL,
  skipped INTEGER NOT NULL,
  missed INTEGER NOT NULL,
  version INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS ix_schedules_next ON schedules (next_at);

CREATE TABLE IF NOT EXISTS schedule_ticks (
  schedule_name TEXT NOT NULL,
  tick_at INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  job_id TEXT,
  at INTEGER NOT NULL,
  PRIMARY KEY (schedule_name, tick_at)
) STRICT, WITHOUT ROWID;
