-- 0001: jobs, their event log and the outbox (MySQL 8.0 and MariaDB 10.11).
-- JSON is stored as LONGTEXT: MySQL returns JSON columns as objects, MariaDB as strings.
-- Ids and states are ASCII with binary collation: they compare and sort as in SQLite.
-- Text is utf8mb4_bin so idempotency keys, types and queues are case-sensitive, as in SQLite.
-- Times are epoch milliseconds (BIGINT).

CREATE TABLE IF NOT EXISTS jobs (
  id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  type VARCHAR(255) NOT NULL,
  queue VARCHAR(255) NOT NULL,
  state VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  version INT NOT NULL,
  attempt INT NOT NULL,
  due_at BIGINT NULL,
  lease_until BIGINT NULL,
  priority INT NOT NULL,
  timeout_ms INT NOT NULL,
  idempotency_key VARCHAR(255) NULL,
  request_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  payload LONGTEXT NOT NULL,
  snapshot LONGTEXT NOT NULL,
  result LONGTEXT NULL,
  -- LONGTEXT, not TEXT: a failure message over 64 KiB must not make the FAILED transition fail.
  last_error LONGTEXT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_jobs_queue_key (queue, idempotency_key),
  KEY ix_jobs_state_due (state, due_at),
  KEY ix_jobs_state_lease (state, lease_until),
  KEY ix_jobs_state_updated (state, updated_at),
  KEY ix_jobs_type_id (type, id),
  KEY ix_jobs_queue_id (queue, id),
  KEY ix_jobs_state_id (state, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS job_events (
  id BIGINT NOT NULL AUTO_INCREMENT,
  job_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq INT NOT NULL,
  type VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  from_state VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NULL,
  to_state VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  at BIGINT NOT NULL,
  data LONGTEXT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_job_events_job_seq (job_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS outbox (
  id BIGINT NOT NULL AUTO_INCREMENT,
  topic VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  msg_key VARCHAR(255) NOT NULL,
  payload LONGTEXT NOT NULL,
  headers TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  published_at BIGINT NULL,
  PRIMARY KEY (id),
  KEY ix_outbox_unpublished (published_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
