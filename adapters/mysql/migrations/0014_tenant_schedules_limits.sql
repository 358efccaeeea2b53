-- 0014: schedules and limits belong to a tenant (engine/auth.ts), like jobs
-- (0013). A schedule is named within its tenant: its key becomes (tenant,
-- name), and its ticks carry the tenant. Rows made before tenants existed are
-- the default tenant's (the column's default, which stays: a process of the
-- version before, during a rolling upgrade, inserts without it).
--
-- Limits keep one key column: a limit of a tenant other than the default one
-- is stored under `<tenant>/<key>` (engine/limits.ts `storedLimitKey`), the
-- default tenant's under its bare key. So the rows so far are the default
-- tenant's as they are, and a claim reads limit rows by key as before. The
-- key columns widen to hold the prefix (63 + 1 + 200 characters).
--
-- Each statement may run again after a crash (MySQL DDL is not rolled back):
-- an ADD COLUMN done counts as done (adapters/mysql/migrate.ts), and the
-- others set what they set again.

ALTER TABLE schedules ADD COLUMN tenant VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'default';
ALTER TABLE schedules DROP PRIMARY KEY, ADD PRIMARY KEY (tenant, name);

ALTER TABLE schedule_ticks ADD COLUMN tenant VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'default';
ALTER TABLE schedule_ticks DROP PRIMARY KEY, ADD PRIMARY KEY (tenant, schedule_name, tick_at);

ALTER TABLE limits MODIFY limit_key VARCHAR(264) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE limit_running MODIFY limit_key VARCHAR(264) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
