-- 0015: durable workflows (engine/workflows.ts). A job a workflow started
-- names it and the invocation it runs (`parent`, JSON, NULL for a job
-- submitted on its own: no index, the job's end carries it to the workflow).
-- An instance keeps the user's machine state as JSON (`state`, with `status`
-- beside it for the lists), a gap-free history (`workflow_events`, seq 1 is
-- the start, `version` the last seq, `id` the global position the stream
-- follows) and its pending delayed events
-- (`workflow_timers`, one row per timer of `state.timers`, read by due time
-- by the timers role).
--
-- A start's idempotency key is the tenant's own, per workflow name. A
-- tenant's list, newest first, reads (tenant, id), or with a name (tenant,
-- name, id), or with a status (tenant, status, id): `status` changes once,
-- when the instance ends, so that index costs one change per instance.
-- Retention reads ended instances of one status by age (status, updated_at),
-- as it reads jobs (engine/retention.ts).
--
-- Each statement may run again after a crash (MySQL DDL is not rolled back):
-- the ADD COLUMN done counts as done (adapters/mysql/migrate.ts), the tables
-- are made only if missing.

ALTER TABLE jobs ADD COLUMN parent TEXT NULL;

CREATE TABLE IF NOT EXISTS workflows (
  id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  tenant VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name VARCHAR(100) NOT NULL,
  definition_version INT NOT NULL,
  status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  input LONGTEXT NOT NULL,
  state LONGTEXT NOT NULL,
  version INT NOT NULL,
  idempotency_key VARCHAR(255) NULL,
  request_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_workflows_tenant_name_key (tenant, name, idempotency_key),
  KEY ix_workflows_tenant_id (tenant, id),
  KEY ix_workflows_tenant_name_id (tenant, name, id),
  KEY ix_workflows_tenant_status_id (tenant, status, id),
  KEY ix_workflows_status_updated (status, updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- An event's `id` is its global position, as `job_events.id` is a job
-- event's: the WebSocket stream follows the table by it (server/stream),
-- and reads an instance's history by (workflow_id, seq). `state_value` is the
-- machine's state value after the event (JSON), for the stream's messages.
CREATE TABLE IF NOT EXISTS workflow_events (
  id BIGINT NOT NULL AUTO_INCREMENT,
  workflow_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq INT NOT NULL,
  type VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  at BIGINT NOT NULL,
  data LONGTEXT NOT NULL,
  status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  state_value LONGTEXT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_workflow_events_workflow_seq (workflow_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A timer id is XState's send id (`xstate.after.<delay>.<state node id>`): as long as the state's path.
CREATE TABLE IF NOT EXISTS workflow_timers (
  workflow_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  timer_id VARCHAR(512) NOT NULL,
  due_at BIGINT NOT NULL,
  PRIMARY KEY (workflow_id, timer_id),
  KEY ix_workflow_timers_due (due_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
