-- 0011: concurrency and rate limits (engine/limits.ts). A job may carry a
-- concurrency key (no index: only claims of keyed jobs look at it). A limit on
-- a key caps the attempts running with it at once and spaces its starts
-- (`tat`: when the next start is allowed). `limit_running` holds the attempts
-- a limit admitted; a claim of the key first deletes those no longer running
-- (or whose lease is over), so it counts only live ones.

ALTER TABLE jobs ADD COLUMN concurrency_key VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL;

CREATE TABLE IF NOT EXISTS limits (
  limit_key VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  concurrency INT NULL,
  rate_max INT NULL,
  rate_interval_ms INT NULL,
  tat BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (limit_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS limit_running (
  limit_key VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  job_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  attempt INT NOT NULL,
  PRIMARY KEY (limit_key, job_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX limit_running_job ON limit_running (job_id);
