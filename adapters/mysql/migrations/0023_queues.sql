-- 0023: the queues jobs have named (engine/queue-registry.ts). Each queue
-- costs its three lane topics on the brokers, and a consumer of each in
-- every worker serving every queue, for good: a job may name a queue not
-- listed here only while fewer than ATS_MAX_QUEUES are. A row is never
-- deleted (its topics are not either). The queues of the jobs stored when
-- this runs are listed, whatever their number.
CREATE TABLE IF NOT EXISTS queues (
  name VARCHAR(255) NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO queues (name, created_at) SELECT queue, MIN(created_at) FROM jobs GROUP BY queue;
