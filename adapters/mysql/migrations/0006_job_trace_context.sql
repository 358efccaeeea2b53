-- 0006: the trace context a job was submitted under (its W3C traceparent and
-- tracestate, as JSON), so every dispatch of the job, retries included,
-- continues the submit's trace. NULL for jobs submitted while tracing was off.
-- Adding a nullable last column is an instant change on MySQL 8 and MariaDB.
-- A rerun after a crash before the ledger row finds the column there: that
-- statement counts as done (migrate.ts).
ALTER TABLE jobs ADD COLUMN trace_context VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NULL;
