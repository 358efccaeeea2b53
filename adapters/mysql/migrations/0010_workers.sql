-- 0010: worker presence (engine/worker-presence.ts): a row a worker process,
-- replaced at each heartbeat, deleted on a graceful stop or an hour after its
-- last heartbeat. Types and queues are JSON arrays.

CREATE TABLE IF NOT EXISTS workers (
  id VARCHAR(255) NOT NULL,
  host VARCHAR(255) NOT NULL,
  pid INT NOT NULL,
  queues TEXT NOT NULL,
  types TEXT NOT NULL,
  concurrency INT NOT NULL,
  started_at BIGINT NOT NULL,
  last_seen_at BIGINT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
