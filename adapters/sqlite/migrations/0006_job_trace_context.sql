-- 0006: the trace context a job was submitted under (its W3C traceparent and
-- tracestate, as JSON), so every dispatch of the job, retries included,
-- continues the submit's trace. NULL for jobs submitted while tracing was off.
ALTER TABLE jobs ADD COLUMN trace_context TEXT NULL;
