-- 0028: each event row names its job's tenant, and (tenant, id) holds a
-- tenant's events in id order, for a tenant's per-edge figures (see
-- adapters/mysql/migrations/0028_job_events_tenant.sql). Rows made before
-- take their job's tenant.
ALTER TABLE job_events ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
UPDATE job_events SET tenant = (SELECT j.tenant FROM jobs j WHERE j.id = job_events.job_id)
  WHERE job_id IN (SELECT id FROM jobs WHERE tenant <> 'default');
CREATE INDEX IF NOT EXISTS ix_job_events_tenant_id ON job_events (tenant, id);
