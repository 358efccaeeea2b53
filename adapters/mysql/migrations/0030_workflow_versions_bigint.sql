-- 0030: a workflow's definition version is any positive safe integer
-- (machines/workflow.ts `defineWorkflow`), as SQLite's INTEGER keeps it: a
-- version past 2147483647 (one made of a date and time, say) did not fit
-- INT, so every start of it failed ("Out of range value") on MariaDB alone,
-- and a migration to it failed at each step. BIGINT holds every safe integer.
-- Changing a column's type again is harmless: a rerun completes.
ALTER TABLE workflows MODIFY definition_version BIGINT NOT NULL;
