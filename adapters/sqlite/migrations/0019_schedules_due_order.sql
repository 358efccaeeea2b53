-- 0019: the timers read due schedules in pages, in (next_at, tenant, name)
-- order after the last row of the page before (engine/schedules.ts,
-- `ScheduleRunner.runOnce`), so a pass reads on past schedules it holds back
-- after a failure. This index gives that order without a sort, and each page
-- starts where the one before ended; it covers what ix_schedules_next did.
CREATE INDEX IF NOT EXISTS ix_schedules_due ON schedules (next_at, tenant, name);
DROP INDEX IF EXISTS ix_schedules_next;
