-- 0023: the queues jobs have named (see adapters/mysql/migrations/0023_queues.sql).
CREATE TABLE IF NOT EXISTS queues (
  name TEXT NOT NULL PRIMARY KEY,
  created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT OR IGNORE INTO queues (name, created_at) SELECT DISTINCT queue, 0 FROM job_counts;
INSERT OR IGNORE INTO queues (name, created_at)
  SELECT DISTINCT json_extract(job, '$.queue'), 0 FROM schedules WHERE json_extract(job, '$.queue') IS NOT NULL;
INSERT OR IGNORE INTO queues (name, created_at) SELECT DISTINCT firing_queue, 0 FROM schedules WHERE firing_queue IS NOT NULL;
