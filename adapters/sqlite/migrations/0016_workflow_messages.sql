-- 0016: messages between workflow instances (`sendToWorkflow`,
-- engine/workflows.ts): inserted by the sender's step, deleted by the
-- target's, so each is taken once. `message_id` is
-- `<sender id>:<sender seq>:<n>`; `id` orders one target's messages as they
-- were sent; the driver's sweep finds those the log lost by age. The
-- console's live counts read one definition version's active instances.
CREATE TABLE IF NOT EXISTS workflow_messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL UNIQUE,
  target_id TEXT NOT NULL,
  tenant TEXT NOT NULL,
  sender_id TEXT NOT NULL,
  event TEXT NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS ix_workflow_messages_target ON workflow_messages (target_id, id);
CREATE INDEX IF NOT EXISTS ix_workflow_messages_created ON workflow_messages (created_at);

CREATE INDEX IF NOT EXISTS ix_workflows_tenant_name_version_status ON workflows (tenant, name, definition_version, status);
