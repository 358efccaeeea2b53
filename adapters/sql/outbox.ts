/**
 * The outbox's rows, for both stores. A transaction writes its messages as
 * few rows as it can: one row holds up to `MESSAGES_PER_ROW` messages (a
 * submit of a thousand jobs, or a worker's batch of claims, is one or a few
 * rows instead of one per message), so each message costs the database a
 * line of text, not a row inserted and deleted with its index entries.
 *
 * A row with `message_count` set holds that many messages in `payload`, four
 * lines each: topic, key, headers (JSON, or the index of an earlier message
 * in the row with the same headers), value (JSON). JSON text never holds
 * a raw line break, and topics and keys are checked for one, so the lines
 * split back exactly. A row written before message batching (migration 0007)
 * has `message_count` NULL and is one message, in its own columns.
 *
 * Each message keeps a unique, stable id (the `ats-outbox-id` header that
 * consumers dedupe by): its row's id times `MESSAGE_ID_FACTOR` plus its place
 * in the row; a one-message row from before keeps its row id (to meet a
 * batched message's id, a one-message row would need an id a thousand times
 * that of a batched row written before it).
 *
 * No downgrade past migration 0007: a relay of an older version takes a
 * batched row for one message. On Kafka it fails on the row's topic
 * (`BATCH_TOPIC`) and publishing stops until a newer relay runs; on the
 * in-process log it would publish the row's text and delete it. Upgrade
 * relays first.
 */
import { OUTBOX_ROW_MAX_MESSAGES, type OutboxMessage, type OutboxRow } from '../../engine/ports.js';
import { chunkRows } from './batches.js';
import type { Dialect } from './dialect.js';
import { StoredOutboxRow, parseHeaders, rowToOutbox, toJson, toNum, type Row } from './rows.js';
import type { Outcome } from './program.js';
import { deleteOutbox, marks, tuples, type Sql } from './statements.js';

/**
 * The `topic` column of a row of many messages: no Kafka topic may have this
 * name, so a relay from before migration 0007, which would take the row for
 * one message, fails to publish it (and leaves it for a newer relay) instead
 * of publishing the row's text and deleting it.
 */
export const BATCH_TOPIC = '*';

/** At most this many messages in one outbox row (the port's promise to the relay). */
export const MESSAGES_PER_ROW = OUTBOX_ROW_MAX_MESSAGES;
/** A batched message's id: row id × this + its index in the row (MESSAGES_PER_ROW must stay below it). */
export const MESSAGE_ID_FACTOR = 1000;

const OUTBOX_COLUMNS = 'topic, msg_key, payload, headers, created_at, message_count';

/** Header objects' JSON text: the engine builds a handful of distinct ones, a fresh object per message. */
const headerText = (h: Readonly<Record<string, string>>): string => JSON.stringify(h);

function line(text: string, what: string): string {
  if (text.includes('\n')) throw new Error(`an outbox message's ${what} holds a line break: ${JSON.stringify(text.slice(0, 80))}`);
  return text;
}

/**
 * Messages as one row's payload: four lines each (see the module comment).
 * Headers repeat (a handful of distinct sets): a message whose headers equal
 * an earlier one's in the row writes that message's index instead of the
 * JSON (which always starts with `{`).
 */
export function encodeMessages(messages: readonly { topic: string; key: string; headers: string; value: string }[]): string {
  const parts: string[] = [];
  const firstWith = new Map<string, number>();
  messages.forEach((m, i) => {
    const earlier = firstWith.get(m.headers);
    if (earlier === undefined) firstWith.set(m.headers, i);
    parts.push(line(m.topic, 'topic'), line(m.key, 'key'), earlier === undefined ? m.headers : String(earlier), m.value);
  });
  return parts.join('\n');
}

/**
 * The INSERTs for a transaction's messages, in order, at `createdAt`: rows of
 * up to `MESSAGES_PER_ROW` messages (and the byte limit of one statement).
 */
export function insertOutboxSteps(messages: readonly { message: OutboxMessage; at: number }[]): Sql[] {
  if (messages.length === 0) return [];
  const encoded = messages.map(({ message: m, at }) => [m.topic, m.key, headerText(m.headers ?? {}), toJson(m.payload), at]);
  // A row's time is its first message's.
  const rows = chunkRows(encoded, MESSAGES_PER_ROW).map((chunk) => {
    const at = chunk[0]![4];
    const payload = encodeMessages(chunk.map(([t, k, headers, value]) => ({ topic: t as string, key: k as string, headers: headers as string, value: value as string })));
    return [BATCH_TOPIC, '', payload, '{}', at, chunk.length];
  });
  return chunkRows(rows, MESSAGES_PER_ROW).map((part) => ({
    sql: `INSERT INTO outbox (${OUTBOX_COLUMNS}) VALUES ${tuples(part.length, 6)}`,
    params: part.flat(),
  }));
}

/**
 * The ids and sizes of up to `limit` outbox rows, oldest first (the primary
 * key: rows are deleted once published, so every row left waits), read
 * without a lock: `rowsToTake` picks from them and `lockOutboxRows` claims
 * those. Params: limit
 */
export const PEEK_OUTBOX_ROWS = 'SELECT id, message_count FROM outbox ORDER BY id LIMIT ?';

/**
 * The rows to claim, of those `PEEK_OUTBOX_ROWS` read: oldest first, whole
 * rows, until they hold at least `limit` messages. Fewer than `limit`
 * messages picked means no row was left (the peek read at most `limit` rows
 * of at least one message).
 */
export function rowsToTake(peeked: readonly Row[], limit: number): number[] {
  const ids: number[] = [];
  let messages = 0;
  for (const r of peeked) {
    if (messages >= limit) break;
    ids.push(toNum(r.id));
    messages += r.message_count == null ? 1 : toNum(r.message_count);
  }
  return ids;
}

/**
 * Claim the picked rows with their messages, in id order. On MySQL the rows
 * stay locked until the relay commits, and a row another relay holds is
 * skipped instead of waited for (Graphile Worker's and River's claim; the
 * price is that rows may be published out of id order across relays); only
 * the rows returned are published and deleted. Locking only the rows picked
 * keeps the others free for a second relay. SQLite's store holds a lock of
 * its own. Params: the ids.
 */
export function lockOutboxRows(d: Dialect, ids: readonly number[]): Sql {
  return {
    sql: `SELECT id, topic, msg_key, payload, headers, created_at, published_at, message_count FROM outbox WHERE id IN (${marks(ids.length)}) ORDER BY id ${d.forUpdateSkipLocked}`,
    params: [...ids],
  };
}

/** The ids of rows as read by `lockOutboxRows`: what the relay deletes once their messages are acked. */
export const rowIds = (rows: readonly Row[]): number[] => rows.map((r) => toNum(r.id));

/**
 * The relay step after the peek, with either store's statement runner,
 * inside its transaction or lock: claim the `picked` rows, `publish` their
 * messages, and delete the rows once that resolved (the last statement, sent
 * with the COMMIT where the store can). Returns how many messages went out.
 */
export async function publishPicked(
  d: Dialect, picked: readonly number[], run: (s: Sql) => Outcome | Promise<Outcome>,
  publish: (messages: OutboxRow[]) => Promise<void>,
): Promise<number> {
  const rows = (await run(lockOutboxRows(d, picked))).rows;
  if (rows.length === 0) return 0;
  const messages = rowsToMessages(rows);
  await publish(messages);
  await run({ ...deleteOutbox(d, rowIds(rows)), final: true });
  return messages.length;
}

/** The messages of rows read by `lockOutboxRows`, in order. */
export function rowsToMessages(rows: readonly Row[]): OutboxRow[] {
  const out: OutboxRow[] = [];
  for (const r of rows) {
    if (r.message_count == null) {
      out.push(rowToOutbox(r));
      continue;
    }
    const id = toNum(r.id);
    const createdAt = toNum(r.created_at);
    const lines = String(r.payload).split('\n');
    const count = toNum(r.message_count);
    if (lines.length !== count * 4) throw new Error(`outbox row ${id} holds ${lines.length} lines for ${count} messages`);
    const headersOf: Record<string, string>[] = [];
    for (let i = 0, l = 0; i < count; i++, l += 4) {
      const h = lines[l + 2]!;
      const headers = h.startsWith('{') ? parseHeaders(h) : headersOf[Number(h)];
      if (headers === undefined) throw new Error(`outbox row ${id}: message ${i} refers to the headers of message ${h}, which it does not hold`);
      headersOf.push(headers);
      out.push(new StoredOutboxRow(id * MESSAGE_ID_FACTOR + i, lines[l]!, lines[l + 1]!, lines[l + 3]!, headers, createdAt, null));
    }
  }
  return out;
}
