-- 0012: API keys and the audit log (see adapters/mysql/migrations/0012_api_keys.sql).

CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT NOT NULL PRIMARY KEY,
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  scopes TEXT NOT NULL,
  hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER NULL,
  created_by TEXT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_api_keys_tenant ON api_keys (tenant, created_at);

CREATE TABLE IF NOT EXISTS audit_log (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  key_id TEXT NULL,
  tenant TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS ix_audit_log_tenant_at ON audit_log (tenant, at);
