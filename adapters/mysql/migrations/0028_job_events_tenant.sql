-- 0028: each event row names its job's tenant, and (tenant, id) holds a
-- tenant's events in id order. The per-edge figures of a tenant
-- (`GET /v1/stats/edges`, adapters/sql/edges.ts) read its newest events
-- through it: before, they read the newest events of every tenant and kept
-- the tenant's, so a busier tenant's events pushed a tenant's out of the
-- read (no index of jobs reaches a tenant's jobs changed lately without its
-- whole history). Per event inserted: the tenant's bytes in the row and one
-- entry (tenant, id) in the new index, at the end of the tenant's range (ids
-- grow); a heartbeat that replaces its event changes neither. Rows made
-- before take their job's tenant; the default stays for a process of the
-- build before, during a rolling upgrade, which inserts without it (its
-- events of another tenant then count as the default tenant's).
--
-- A rerun after a crash (MySQL DDL is not rolled back) finds the column or
-- the index made: that statement counts as done (adapters/mysql/migrate.ts);
-- the UPDATE sets what it set again.
ALTER TABLE job_events ADD COLUMN tenant VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'default';
UPDATE job_events e JOIN jobs j ON j.id = e.job_id SET e.tenant = j.tenant WHERE j.tenant <> 'default';
CREATE INDEX ix_job_events_tenant_id ON job_events (tenant, id);
