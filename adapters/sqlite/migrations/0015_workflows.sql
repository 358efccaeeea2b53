-- 0015: durable workflows (see adapters/mysql/migrations/0015_workflows.sql):
-- a job's `parent`, the instances, their history and their pending timers.

ALTER TABLE jobs ADD COLUMN parent TEXT NULL;

CREATE TABLE IF NOT EXISTS workflows (
  id TEXT NOT NULL PRIMARY KEY,
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  definition_version INTEGER NOT NULL,
  status TEXT NOT NULL,
  input TEXT NOT NULL,
  state TEXT NOT NULL,
  version INTEGER NOT NULL,
  idempotency_key TEXT NULL,
  request_hash TEXT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (tenant, name, idempotency_key)
) STRICT;

CREATE INDEX IF NOT EXISTS ix_workflows_tenant_id ON workflows (tenant, id);
CREATE INDEX IF NOT EXISTS ix_workflows_tenant_name_id ON workflows (tenant, name, id);
CREATE INDEX IF NOT EXISTS ix_workflows_tenant_status_id ON workflows (tenant, status, id);
CREATE INDEX IF NOT EXISTS ix_workflows_status_updated ON workflows (status, updated_at);

-- `id`: the global position the stream follows; AUTOINCREMENT, as job_events: never reused after deletes.
CREATE TABLE IF NOT EXISTS workflow_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  workflow_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  at INTEGER NOT NULL,
  data TEXT NOT NULL,
  status TEXT NOT NULL,
  state_value TEXT NOT NULL,
  UNIQUE (workflow_id, seq)
) STRICT;

CREATE TABLE IF NOT EXISTS workflow_timers (
  workflow_id TEXT NOT NULL,
  timer_id TEXT NOT NULL,
  due_at INTEGER NOT NULL,
  PRIMARY KEY (workflow_id, timer_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS ix_workflow_timers_due ON workflow_timers (due_at);
