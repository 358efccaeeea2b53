-- 0012: API keys (engine/auth.ts) and the audit log. A key is stored as the
-- hex SHA-256 of the whole key (the key itself is shown once, when made), its
-- scopes as a comma list (`submit,read`). A revoked key keeps its row
-- (`revoked_at` set): its id stays taken and its audit entries keep meaning.
-- The audit log records what operators did (cancel, redrive, delete, key
-- changes) and with which key; it is kept (nothing prunes it) and read per
-- tenant, newest first, through its index.

CREATE TABLE IF NOT EXISTS api_keys (
  id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  tenant VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name VARCHAR(100) NOT NULL,
  scopes VARCHAR(100) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT NULL,
  created_by CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NULL,
  PRIMARY KEY (id),
  KEY ix_api_keys_tenant (tenant, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS audit_log (
  id BIGINT NOT NULL AUTO_INCREMENT,
  at BIGINT NOT NULL,
  key_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NULL,
  tenant VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  action VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  target VARCHAR(200) NOT NULL,
  PRIMARY KEY (id),
  KEY ix_audit_log_tenant_at (tenant, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
