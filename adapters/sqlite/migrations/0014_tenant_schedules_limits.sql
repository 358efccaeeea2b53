-- 0014: schedules and limits belong to a tenant (see adapters/mysql/migrations/0014_tenant_schedules_limits.sql).
-- SQLite cannot change a primary key in place: the two schedule tables are
-- made again keyed by (tenant, name), their rows copied as the default
-- tenant's. Limits need nothing here: a TEXT key holds `<tenant>/<key>`.

CREATE TABLE schedules_0014 (
  tenant TEXT NOT NULL DEFAULT 'default',
  name TEXT NOT NULL,
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
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, name)
) STRICT;

INSERT INTO schedules_0014 (tenant, name, cron, timezone, overlap, catch_up, paused, job, next_at, last_tick_at, last_job_id,
  submitted, skipped, missed, version, created_at, updated_at)
SELECT 'default', name, cron, timezone, overlap, catch_up, paused, job, next_at, last_tick_at, last_job_id,
  submitted, skipped, missed, version, created_at, updated_at FROM schedules;

DROP TABLE schedules;
ALTER TABLE schedules_0014 RENAME TO schedules;
CREATE INDEX ix_schedules_next ON schedules (next_at);

CREATE TABLE schedule_ticks_0014 (
  tenant TEXT NOT NULL DEFAULT 'default',
  schedule_name TEXT NOT NULL,
  tick_at INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  job_id TEXT,
  at INTEGER NOT NULL,
  PRIMARY KEY (tenant, schedule_name, tick_at)
) STRICT, WITHOUT ROWID;

INSERT INTO schedule_ticks_0014 (tenant, schedule_name, tick_at, outcome, job_id, at)
SELECT 'default', schedule_name, tick_at, outcome, job_id, at FROM schedule_ticks;

DROP TABLE schedule_ticks;
ALTER TABLE schedule_ticks_0014 RENAME TO schedule_ticks;
