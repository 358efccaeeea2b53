-- 0025: a tenant's page of jobs by state (`GET /v1/jobs?state=dead`, no type
-- or queue) was read through (state, id), which holds every tenant's jobs:
-- a tenant with few dead jobs made the database walk every other tenant's
-- dead jobs to fill its page. (state, tenant, id) reads just the tenant's, in
-- id order. (state, id) stays: the advisor's count of the jobs waiting ahead
-- of one (`countWaitingAhead`, every tenant's, created before it) needs its
-- range on the id, and a process of the build before names it. A rerun after
-- a crash finds the index made: that counts as done (adapters/mysql/migrate.ts).
CREATE INDEX ix_jobs_state_tenant_id ON jobs (state, tenant, id);
