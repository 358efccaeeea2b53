-- 0023: the queues jobs have named (see adapters/mysql/migrations/0023_queues.sql).
CREATE TABLE IF NOT EXISTS queues (
  name TEXT NOT NULL PRIMARY KEY,
  created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT OR IGNORE INTO queues (name, created_at) SELECT queue, MIN(created_at) FROM jobs GROUP BY queue;
