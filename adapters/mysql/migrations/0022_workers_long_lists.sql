-- 0022: a worker's row lists its handlers' types and the queues it serves as
-- JSON. TEXT holds 64 KB: a worker with a few thousand job types failed every
-- presence heartbeat ("Data too long for column 'types'"), so it was never
-- listed as live, and the timers took the jobs it runs for jobs no live
-- worker can run. MEDIUMTEXT holds 16 MB, as SQLite's TEXT holds any length.
ALTER TABLE workers MODIFY queues MEDIUMTEXT NOT NULL, MODIFY types MEDIUMTEXT NOT NULL;
