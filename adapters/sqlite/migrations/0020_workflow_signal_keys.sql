-- 0020: the Idempotency-Key a signal was sent with (engine/workflows.ts),
-- on the workflow event that recorded it. A signal sent again with the same
-- key finds that event (in the instance's step) and is not applied twice;
-- the unique index makes a key once per instance. NULL for every other event.
ALTER TABLE workflow_events ADD COLUMN signal_key TEXT;

CREATE UNIQUE INDEX IF NOT EXISTS uq_workflow_events_signal_key ON workflow_events (workflow_id, signal_key);
