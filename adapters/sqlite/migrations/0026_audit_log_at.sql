-- 0026: retention's purge of the audit log read the entries in id order,
-- testing each one's time: while none had expired, it walked the whole log to
-- delete nothing. Through (at) it reads just the expired entries, at most a batch.
CREATE INDEX IF NOT EXISTS ix_audit_log_at ON audit_log (at);
