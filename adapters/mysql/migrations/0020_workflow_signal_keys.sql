-- 0020: the Idempotency-Key a signal was sent with (engine/workflows.ts),
-- on the workflow event that recorded it. A signal sent again with the same
-- key finds that event (in the instance's locked step) and is not applied
-- twice; the unique index makes a key once per instance. NULL for every
-- other event. It goes with the instance's history when retention deletes it.
ALTER TABLE workflow_events ADD COLUMN signal_key VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL;

CREATE UNIQUE INDEX uq_workflow_events_signal_key ON workflow_events (workflow_id, signal_key);
