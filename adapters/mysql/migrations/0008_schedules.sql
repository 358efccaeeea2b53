-- 0008: cron schedules (engine/schedules.ts) and the ticks they fired.
-- A schedule's job template is JSON text, as payloads are. `next_at` is NULL
-- while paused (or when the expression fires no more): the due query reads
-- only rows with a next tick, through its index.

CREATE TABLE IF NOT EXISTS schedules (
  name VARCHAR(100) NOT NULL,
  cron VARCHAR(200) NOT NULL,
  timezone VARCHAR(64) NOT NULL,
  overlap VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  catch_up VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  paused TINYINT NOT NULL,
  job LONGTEXT NOT NULL,
  next_at BIGINT NULL,
  last_tick_at BIGINT NULL,
  last_job_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NULL,
  submitted BIGINT NOT NULL,
  skipped BIGINT NOT NULL,
  missed BIGINT NOT NULL,
  version INT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (name),
  KEY ix_schedules_next (next_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS schedule_ticks (
  schedule_name VARCHAR(100) NOT NULL,
  tick_at BIGINT NOT NULL,
  outcome VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  job_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NULL,
  at BIGINT NOT NULL,
  PRIMARY KEY (schedule_name, tick_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
