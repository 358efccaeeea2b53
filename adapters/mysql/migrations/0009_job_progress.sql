-- 0009: the latest progress of a running attempt (ctx.progress), one row a
-- job: replaced at each report, deleted with the job. `at` orders the
-- stream's progress tail.

CREATE TABLE IF NOT EXISTS job_progress (
  job_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  type VARCHAR(255) NOT NULL,
  queue VARCHAR(255) NOT NULL,
  attempt INT NOT NULL,
  value TEXT NOT NULL,
  at BIGINT NOT NULL,
  PRIMARY KEY (job_id),
  KEY ix_job_progress_at (at, job_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
