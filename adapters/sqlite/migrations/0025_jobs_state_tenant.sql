-- 0025: a tenant's page of jobs by state (no type or queue) was read through
-- (state, id), which holds every tenant's jobs: a tenant with few jobs of a
-- state walked every other tenant's. (state, tenant, id) reads just its own,
-- in id order, and takes the place of (state, id): a state change touches as
-- many index entries. The advisor's count of waiting jobs reads its first
-- column as before.
CREATE INDEX IF NOT EXISTS ix_jobs_state_tenant_id ON jobs (state, tenant, id);
DROP INDEX IF EXISTS ix_jobs_state_id;
