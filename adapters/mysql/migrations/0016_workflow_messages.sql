-- 0016: messages between workflow instances (`sendToWorkflow`,
-- engine/workflows.ts). The sender's step inserts the message with its own
-- state, in one transaction, and an outbox row on `ats.workflows` tells the
-- driver; the target's step deletes it, in the target's transaction, so a
-- message is taken once however often the driver hears of it. `message_id`
-- is `<sender id>:<sender seq>:<n>`; `id` orders one target's messages as
-- they were sent (ix_workflow_messages_target). Messages the log lost are
-- found by age (ix_workflow_messages_created) by the driver's sweep.
--
-- The console's live counts read one definition version's active instances
-- of a tenant (ix_workflows_tenant_name_version_status); `status` changes once
-- per instance, so the index costs one change when it ends.
--
-- The table is made only if missing and a rerun finds the index made
-- (adapters/mysql/migrate.ts), so each statement may run again after a crash.

CREATE TABLE IF NOT EXISTS workflow_messages (
  id BIGINT NOT NULL AUTO_INCREMENT,
  message_id VARCHAR(100) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  target_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  tenant VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  sender_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  event LONGTEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_workflow_messages_message_id (message_id),
  KEY ix_workflow_messages_target (target_id, id),
  KEY ix_workflow_messages_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE INDEX ix_workflows_tenant_name_version_status ON workflows (tenant, name, definition_version, status);
