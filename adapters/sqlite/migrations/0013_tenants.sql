-- 0013: jobs belong to a tenant (see adapters/mysql/migrations/0013_tenants.sql).
-- SQLite cannot drop the UNIQUE (queue, idempotency_key) of 0001 nor change a
-- primary key: `jobs` and `job_counts` are made again, their rows copied as
-- the default tenant's, and the indexes of jobs with them (the lists' type
-- and queue indexes now start with the tenant). The migration runs in one
-- transaction (migrate.ts).

CREATE TABLE jobs_0013 (
  id TEXT NOT NULL PRIMARY KEY,
  type TEXT NOT NULL,
  queue TEXT NOT NULL,
  state TEXT NOT NULL,
  version INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  due_at INTEGER NULL,
  lease_until INTEGER NULL,
  priority INTEGER NOT NULL,
  timeout_ms INTEGER NOT NULL,
  idempotency_key TEXT NULL,
  request_hash TEXT NULL,
  payload TEXT NOT NULL,
  snapshot TEXT NOT NULL,
  result TEXT NULL,
  last_error TEXT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  trace_context TEXT NULL,
  concurrency_key TEXT NULL,
  tenant TEXT NOT NULL DEFAULT 'default',
  UNIQUE (tenant, queue, idempotency_key)
) STRICT;

INSERT INTO jobs_0013 (id, type, queue, state, version, attempt, due_at, lease_until, priority, timeout_ms, idempotency_key,
  request_hash, payload, snapshot, result, last_error, created_at, updated_at, trace_context, concurrency_key, tenant)
SELECT id, type, queue, state, version, attempt, due_at, lease_until, priority, timeout_ms, idempotency_key,
  request_hash, payload, snapshot, result, last_error, created_at, updated_at, trace_context, concurrency_key, 'default' FROM jobs;

DROP TABLE jobs;
ALTER TABLE jobs_0013 RENAME TO jobs;
CREATE INDEX ix_jobs_state_due ON jobs (state, due_at);
CREATE INDEX ix_jobs_state_updated ON jobs (state, updated_at);
CREATE INDEX ix_jobs_state_id ON jobs (state, id);
CREATE INDEX ix_jobs_tenant_id ON jobs (tenant, id);
CREATE INDEX ix_jobs_tenant_queue_id ON jobs (tenant, queue, id);
CREATE INDEX ix_jobs_tenant_type_id ON jobs (tenant, type, id);

CREATE TABLE job_counts_0013 (
  tenant TEXT NOT NULL DEFAULT 'default',
  queue TEXT NOT NULL,
  type TEXT NOT NULL,
  state TEXT NOT NULL,
  shard INTEGER NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (tenant, queue, type, state, shard)
) STRICT, WITHOUT ROWID;

INSERT INTO job_counts_0013 (tenant, queue, type, state, shard, n)
SELECT 'default', queue, type, state, shard, n FROM job_counts;

DROP TABLE job_counts;
ALTER TABLE job_counts_0013 RENAME TO job_counts;
