-- 0017: the driver's minute sweep reads every active instance in id order
-- (engine/workflows.ts, `sweep`), so an instance stepped while the sweep runs
-- keeps its place instead of moving past the sweep's end.
CREATE INDEX ix_workflows_status_id ON workflows (status, id);
