-- 0026: retention's purge of the audit log (`purgeAudit`, once a minute) read
-- the entries in id order, testing each one's time: while none had expired,
-- it walked the whole log to delete nothing (300,000 entries: 145 ms, each
-- pass). Through (at) it reads just the expired entries, at most a batch. One
-- more index entry per audit entry written (operator actions: rare). A rerun
-- after a crash finds the index made: that counts as done (adapters/mysql/migrate.ts).
CREATE INDEX ix_audit_log_at ON audit_log (at);
