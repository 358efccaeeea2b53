-- 0023: the queues jobs have named (engine/queue-registry.ts). Each queue
-- costs its three lane topics on the brokers, and a consumer of each in
-- every worker serving every queue, for good: a job may name a queue not
-- listed here only while fewer than ATS_MAX_QUEUES are. A row is never
-- deleted (its topics are not either). This lists, whatever their number,
-- the queues of the jobs stored when it runs (from the job counts: no scan
-- of the jobs) and of the schedules, whose ticks would name them; created_at
-- 0 marks them.
CREATE TABLE IF NOT EXISTS queues (
  name VARCHAR(255) NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO queues (name, created_at) SELECT DISTINCT queue, 0 FROM job_counts;
INSERT IGNORE INTO queues (name, created_at)
  SELECT DISTINCT JSON_UNQUOTE(JSON_EXTRACT(job, '$.queue')), 0 FROM schedules WHERE JSON_EXTRACT(job, '$.queue') IS NOT NULL;
INSERT IGNORE INTO queues (name, created_at) SELECT DISTINCT firing_queue, 0 FROM schedules WHERE firing_queue IS NOT NULL;
