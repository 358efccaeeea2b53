-- 0001: jobs, their event log and the outbox (SQLite 3.37+, STRICT tables).
-- JSON is stored as TEXT, as on MySQL. Times are epoch milliseconds.
-- Same tables, columns and indexes as adapters/mysql/migrations/0001_init.sql.

CREATE TABLE IF NOT EXISTS jobs (
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
  UNIQUE (queue, idempotency_key)
) STRICT;

CREATE INDEX IF NOT EXISTS ix_jobs_state_due ON jobs (state, due_at);
CREATE INDEX IF NOT EXISTS ix_jobs_state_lease ON jobs (state, lease_until);
CREATE INDEX IF NOT EXISTS ix_jobs_state_updated ON jobs (state, updated_at);
CREATE INDEX IF NOT EXISTS ix_jobs_type_id ON jobs (type, id);
CREATE INDEX IF NOT EXISTS ix_jobs_queue_id ON jobs (queue, id);
CREATE INDEX IF NOT EXISTS ix_jobs_state_id ON jobs (state, id);

-- AUTOINCREMENT: ids are never reused, even after deletes (the outbox id is the messages' dedupe key).
CREATE TABLE IF NOT EXISTS job_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  from_state TEXT NULL,
  to_state TEXT NOT NULL,
  at INTEGER NOT NULL,
  data TEXT NOT NULL,
  UNIQUE (job_id, seq)
) STRICT;

CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  topic TEXT NOT NULL,
  msg_key TEXT NOT NULL,
  payload TEXT NOT NULL,
  headers TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  published_at INTEGER NULL
) STRICT;

CREATE INDEX IF NOT EXISTS ix_outbox_unpublished ON outbox (published_at, id);
