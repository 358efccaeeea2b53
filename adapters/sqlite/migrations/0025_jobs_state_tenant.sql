-- 0025: a tenant's page of jobs by state (no type or queue) was read through
-- (state, id), which holds every tenant's jobs: a tenant with few jobs of a
-- state walked every other tenant's. (state, tenant, id) reads just its own,
-- in id order. (state, id) stays: the advisor's count of the jobs waiting
-- ahead of one needs its range on the id, and a process of the build before
-- names it.
CREATE INDEX IF NOT EXISTS ix_jobs_state_tenant_id ON jobs (state, tenant, id);
