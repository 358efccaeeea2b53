-- 0007: an outbox row may hold many messages (all those one transaction writes, up to 500 a
-- row): message_count says how many, and payload holds them four lines each (topic, key,
-- headers, value; adapters/sql/outbox.ts). NULL for a row of one message in its own columns,
-- as every row was before. Such a row's topic is '*', a name Kafka refuses, so a relay of an older
-- version fails on it (and leaves it for a newer one) rather than publish it as one message.
-- A nullable last column; a rerun after a crash before the ledger
-- row finds the column there, and that statement counts as done (migrate.ts).
ALTER TABLE outbox ADD COLUMN message_count INT NULL;
