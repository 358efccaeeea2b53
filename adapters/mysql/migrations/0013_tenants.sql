-- 0013: jobs belong to a tenant (engine/auth.ts): the tenant of the key that
-- submitted them. Rows made before tenants existed are the default tenant's
-- (the column's default, which stays: a process of the version before, during
-- a rolling upgrade, inserts without it). Events belong to their job and are
-- read with it; job_events needs no column.
--
-- An idempotency key is a tenant's own: the unique key becomes (tenant, queue,
-- key), added before the old one goes (every row unique on (queue, key) is on
-- the new key too, so it never fails). A tenant's list of jobs, newest first,
-- reads (tenant, id), or with a queue or type (tenant, queue, id) or (tenant,
-- type, id), which replace (queue, id) and (type, id): every API list names a
-- tenant (adapters/sql/statements.ts `listJobs`). The counters behind
-- /v1/stats are kept per tenant.
--
-- Each statement may run again after a crash (MySQL DDL is not rolled back):
-- an ADD COLUMN or DROP INDEX done counts as done (adapters/mysql/migrate.ts),
-- and the primary key is set again. MySQL 8 has no CREATE INDEX IF NOT
-- EXISTS: each new index is dropped first (nothing to drop the first time,
-- which counts as done), so a rerun makes it again instead of failing.

ALTER TABLE jobs ADD COLUMN tenant VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'default';
ALTER TABLE jobs DROP INDEX uq_jobs_tenant_queue_key;
CREATE UNIQUE INDEX uq_jobs_tenant_queue_key ON jobs (tenant, queue, idempotency_key);
ALTER TABLE jobs DROP INDEX uq_jobs_queue_key;
ALTER TABLE jobs DROP INDEX ix_jobs_tenant_id;
CREATE INDEX ix_jobs_tenant_id ON jobs (tenant, id);
ALTER TABLE jobs DROP INDEX ix_jobs_tenant_queue_id;
CREATE INDEX ix_jobs_tenant_queue_id ON jobs (tenant, queue, id);
ALTER TABLE jobs DROP INDEX ix_jobs_tenant_type_id;
CREATE INDEX ix_jobs_tenant_type_id ON jobs (tenant, type, id);
ALTER TABLE jobs DROP INDEX ix_jobs_queue_id;
ALTER TABLE jobs DROP INDEX ix_jobs_type_id;

ALTER TABLE job_counts ADD COLUMN tenant VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'default';
ALTER TABLE job_counts DROP PRIMARY KEY, ADD PRIMARY KEY (tenant, queue, type, state, shard);
