-- 0025: a tenant's page of jobs by state (`GET /v1/jobs?state=dead`, no type
-- or queue) was read through (state, id), which holds every tenant's jobs:
-- a tenant with few dead jobs made the database walk every other tenant's
-- dead jobs to fill its page. (state, tenant, id) reads just the tenant's, in
-- id order. It takes the place of (state, id), so a state change still
-- touches as many index entries; the advisor's count of waiting jobs
-- (`countWaitingAhead`, every tenant's) reads its first column as before. A
-- rerun after a crash finds the index made or the old one gone: that
-- statement counts as done (adapters/mysql/migrate.ts).
CREATE INDEX ix_jobs_state_tenant_id ON jobs (state, tenant, id);
ALTER TABLE jobs DROP INDEX ix_jobs_state_id;
