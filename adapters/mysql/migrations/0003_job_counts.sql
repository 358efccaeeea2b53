-- 0003: maintained job counts, so /v1/stats costs the same with a year of history as with none.
-- One row per (queue, type, state, shard); a job's count is the SUM over shards. Every insert,
-- transition and delete adds its net delta in the same transaction as the job rows it changes.
-- The shard spreads concurrent writers of one (queue, type, state) over several rows, so they do
-- not queue behind one row lock; a shard's n may go below zero (only the sum means anything).
-- Same columns and collations as jobs: queues and types compare exactly as there.

CREATE TABLE IF NOT EXISTS job_counts (
  queue VARCHAR(255) NOT NULL,
  type VARCHAR(255) NOT NULL,
  state VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  shard TINYINT UNSIGNED NOT NULL,
  n BIGINT NOT NULL,
  PRIMARY KEY (queue, type, state, shard)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Backfill from the jobs already stored. REPLACE, not INSERT: DDL commits on its own, so a
-- migration that died after this statement runs it again, and a recount must overwrite, not add.
REPLACE INTO job_counts (queue, type, state, shard, n)
  SELECT queue, type, state, 0, COUNT(*) FROM jobs GROUP BY queue, type, state;
