-- 0029: a timer id is compared byte for byte, as SQLite compares it. The
-- ids come from the user's machine (a delayed raise's own `id`, a state's
-- name in an `after`'s `xstate.after.<delay>.<state id>`), and utf8mb4_bin,
-- like every _bin collation of MySQL 8 and MariaDB, pads with spaces: `tick`
-- and `tick ` were one key, so a step holding both timers failed on the
-- primary key ("Duplicate entry") where SQLite kept two. VARBINARY does not
-- pad, on either server, and orders as SQLite's BINARY does (UTF-8 bytes);
-- 2048 bytes hold the 512 characters an id may have (MAX_TIMER_ID_CHARS).
-- Changing a column's type again is harmless: a rerun completes.
ALTER TABLE workflow_timers MODIFY timer_id VARBINARY(2048) NOT NULL;
