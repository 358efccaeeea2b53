/**
 * The WorkflowStore port (engine/ports.ts) for both SQL stores: its two
 * writes as SQL programs (see program.ts), which the stores run in their
 * transactions with their retries, as they run `insert` and `update` of
 * jobs, and its reads over a "run this SELECT" function.
 *
 * A step of an instance commits with everything it does to jobs: the
 * instance row (compare-and-set on its version), its event, its timer rows,
 * the CANCEL transitions of the children it left and the child jobs it
 * starts (with their events, outbox rows and counts, by the jobs' own
 * programs, writes.ts). Locks are taken in one order: the instance row
 * first, then the rows of the jobs it cancels, then (inserting children and
 * the cancels' counts) the counter rows. A job's own transitions never lock
 * an instance: its end reaches the instance as a message (`ats.workflows`).
 */
import { AtsError } from '../../engine/errors.js';
import {
  signalKeyOf, type DueWorkflowTimer, type InsertResult, type TransitionWrite, type WorkflowDecide, type WorkflowEventRecord, type WorkflowEventType,
  type WorkflowFilter, type WorkflowHistoryStep, type WorkflowMessageRecord, type WorkflowRecord, type WorkflowStepRead, type WorkflowStore, type WorkflowStreamEventRecord,
  type WorkflowDeleteResult, type WorkflowWrite,
} from '../../engine/ports.js';
import { WORKFLOW_STATUSES, type WorkflowStatus } from '../../machines/workflow.js';
import type { JobState } from '../../machines/job.machine.js';
import { chunkRows, slices } from './batches.js';
import { readPage } from './pages.js';
import { insertOutboxSteps } from './outbox.js';
import type { Dialect } from './dialect.js';
import type { Program } from './program.js';
import type { Query } from './reads.js';
import { toJson, toNum, type Row } from './rows.js';
import { marks, tuples, type Sql } from './statements.js';
import { insertProgram, updateProgram, VersionConflict } from './writes.js';

const DUPLICATE: InsertResult = Object.freeze({ ok: false, reason: 'duplicate-key' });
const OK: InsertResult = Object.freeze({ ok: true });

// ---------------------------------------------------------------- rows

/** Columns of `workflows`, in the order `workflowValues` gives them. `status` is `state.status`, kept beside it for the lists. */
const WORKFLOW_COLUMNS = [
  'id', 'tenant', 'name', 'definition_version', 'status', 'input', 'state', 'version', 'idempotency_key', 'request_hash', 'created_at', 'updated_at',
] as const;
const SELECT_WORKFLOWS = `SELECT ${WORKFLOW_COLUMNS.join(', ')} FROM workflows`;

function workflowValues(w: WorkflowRecord): unknown[] {
  return [
    w.id, w.tenant, w.name, w.definitionVersion, w.state.status, toJson(w.input), JSON.stringify(w.state), w.version,
    w.idempotencyKey, w.requestHash, w.createdAt, w.updatedAt,
  ];
}

function rowToWorkflow(r: Row): WorkflowRecord {
  return {
    id: String(r.id),
    tenant: String(r.tenant),
    name: String(r.name),
    definitionVersion: toNum(r.definition_version),
    input: JSON.parse(String(r.input)),
    state: JSON.parse(String(r.state)),
    version: toNum(r.version),
    idempotencyKey: (r.idempotency_key as string | null) ?? null,
    requestHash: (r.request_hash as string | null) ?? null,
    createdAt: toNum(r.created_at),
    updatedAt: toNum(r.updated_at),
  };
}

function rowToWorkflowEvent(r: Row): WorkflowEventRecord {
  return {
    workflowId: String(r.workflow_id),
    seq: toNum(r.seq),
    type: r.type as WorkflowEventType,
    at: toNum(r.at),
    data: JSON.parse(String(r.data)),
    status: r.status as WorkflowStatus,
    value: JSON.parse(String(r.state_value)),
  };
}

/** A row of `SELECT_WORKFLOW_EVENT_STEPS`: a step without its data, but a MIGRATE's. */
function rowToWorkflowStep(r: Row): WorkflowHistoryStep {
  return {
    seq: toNum(r.seq),
    type: r.type as WorkflowEventType,
    status: r.status as WorkflowStatus,
    data: r.data === null || r.data === undefined ? null : JSON.parse(String(r.data)),
    value: JSON.parse(String(r.state_value)),
  };
}

/** A row of `SELECT_WORKFLOW_EVENTS_AFTER`: the event, its position, its instance's name and tenant, the state value after it. */
function rowToWorkflowStreamEvent(r: Row): WorkflowStreamEventRecord {
  const e = rowToWorkflowEvent(r);
  return { ...e, id: toNum(r.id), name: String(r.workflow_name), tenant: String(r.workflow_tenant), value: e.value };
}

// ---------------------------------------------------------------- statements

/**
 * Insert one instance; with `skipDuplicate`, an instance whose (tenant, name,
 * idempotency_key) is taken is skipped (the caller asks who holds the key).
 * Params: the `WORKFLOW_COLUMNS` values (`workflowValues`).
 */
function insertWorkflow(d: Dialect, w: WorkflowRecord): Sql {
  const sql = `INSERT INTO workflows (${WORKFLOW_COLUMNS.join(', ')}) VALUES (${marks(WORKFLOW_COLUMNS.length)})`;
  return { sql: w.idempotencyKey === null ? sql : `${sql} ${d.skipDuplicate}`, params: workflowValues(w) };
}

/**
 * The instance holding a start's idempotency key (unique key `tenant, name, idempotency_key`).
 * Params: tenant, name, idempotency_key
 */
const SELECT_WORKFLOW_BY_KEY = `${SELECT_WORKFLOWS} WHERE tenant = ? AND name = ? AND idempotency_key = ?`;

/** One instance by id. Params: id */
const SELECT_WORKFLOW = `${SELECT_WORKFLOWS} WHERE id = ?`;

/**
 * Compare-and-set an instance to its next version; matches no row when it is
 * not at `expected_version` any more. Tenant, name, definition version,
 * input, key and created_at never change.
 * Params: status, state, version, updated_at, definition_version (a migration moves it), id, expected_version
 */
const UPDATE_WORKFLOW_CAS = 'UPDATE workflows SET status = ?, state = ?, version = ?, updated_at = ?, definition_version = ? WHERE id = ? AND version = ?';

/**
 * Append an instance's event (`seq` unique per instance; `id`, its global
 * position, is allocated). `state_value` is the machine's state value after it (JSON).
 * Params: workflow_id, seq, type, at, data, status, state_value, signal_key
 */
const INSERT_WORKFLOW_EVENT = 'INSERT INTO workflow_events (workflow_id, seq, type, at, data, status, state_value, signal_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)';

/** The columns `rowToWorkflowEvent` reads. */
const EVENT_COLUMNS = 'workflow_id, seq, type, at, data, status, state_value';

/** The instance's event recorded by a signal with an Idempotency-Key (uq_workflow_events_signal_key). Params: workflow_id, signal_key */
const SELECT_SIGNALLED = `SELECT ${EVENT_COLUMNS} FROM workflow_events WHERE workflow_id = ? AND signal_key = ?`;

/** An instance's events in seq order, from `after_seq + 1`, with the state value after each. Params: workflow_id, after_seq */
const SELECT_WORKFLOW_EVENTS = `SELECT ${EVENT_COLUMNS} FROM workflow_events WHERE workflow_id = ? AND seq > ? ORDER BY seq`;

/** The bytes of an instance's events after a seq, as a history page counts them (`getWorkflowEvents` reads them). Params: workflow_id, after_seq */
const SELECT_WORKFLOW_EVENT_SIZES =
  'SELECT seq, COALESCE(OCTET_LENGTH(data), 0) + COALESCE(OCTET_LENGTH(state_value), 0) AS bytes FROM workflow_events WHERE workflow_id = ? AND seq > ? ORDER BY seq';

/**
 * An instance's steps after a seq, without their data (a signal's may be a
 * megabyte): seq, type, status and the state value after each, and the data
 * of a MIGRATE only (the version before it). Params: workflow_id, after_seq
 */
const SELECT_WORKFLOW_EVENT_STEPS =
  "SELECT seq, type, status, state_value, CASE WHEN type = 'MIGRATE' THEN data END AS data FROM workflow_events WHERE workflow_id = ? AND seq > ? ORDER BY seq";

/**
 * The state values of one definition version's active instances (of a
 * tenant): each instance's last event's `state_value`, not its whole state,
 * through the index of (tenant, name, definition_version, status).
 * Params: tenant, name, definition_version, limit
 */
const selectActiveValues = (d: Dialect): string => `SELECT e.state_value FROM workflows w ${d.useIndex('ix_workflows_tenant_name_version_status')}
  JOIN workflow_events e ON e.workflow_id = w.id AND e.seq = w.version
  WHERE w.tenant = ? AND w.name = ? AND w.definition_version = ? AND w.status = 'active' LIMIT ?`;

/**
 * Every instance's events after a global position, in id order, with the
 * name and tenant of their instance (the WebSocket stream's tail and replay:
 * the PK range scan plus one PK lookup per row). Only committed rows are
 * seen, so the ids returned may have gaps (engine/event-tail.ts handles them).
 * Params: after_id, through_id (the highest id to read), limit
 */
const SELECT_WORKFLOW_EVENTS_AFTER = `SELECT e.id, e.workflow_id, e.seq, e.type, e.at, e.data, e.status, e.state_value,
    w.name AS workflow_name, w.tenant AS workflow_tenant
  FROM workflow_events e JOIN workflows w ON w.id = e.workflow_id
  WHERE e.id > ? AND e.id <= ? ORDER BY e.id LIMIT ?`;

/**
 * The bytes of every instance's events after a global position, in id order
 * (the rows `SELECT_WORKFLOW_EVENTS_AFTER` would read, without reading their
 * data): the stream reads first these, then only the rows that fit its bytes.
 * Params: after_id, limit
 */
const SELECT_WORKFLOW_EVENT_SIZES_AFTER =
  'SELECT id, COALESCE(OCTET_LENGTH(data), 0) + COALESCE(OCTET_LENGTH(state_value), 0) AS bytes FROM workflow_events WHERE id > ? ORDER BY id LIMIT ?';

/** The newest workflow event id (NULL for an empty table): one index read. */
const SELECT_LAST_WORKFLOW_EVENT_ID = 'SELECT MAX(id) AS id FROM workflow_events';

/** Drop an instance's timer rows (before writing those of its new state). Params: workflow_id */
const DELETE_WORKFLOW_TIMERS = 'DELETE FROM workflow_timers WHERE workflow_id = ?';

/**
 * Timers of every instance due by now, soonest first, after a (due_at, workflow_id, timer_id)
 * position (index `due_at`). Params: now, after_due_at, after_due_at, after_workflow_id,
 * after_workflow_id, after_timer_id, limit
 */
const SELECT_DUE_WORKFLOW_TIMERS = `SELECT workflow_id, timer_id, due_at FROM workflow_timers
  WHERE due_at <= ? AND (due_at > ? OR (due_at = ? AND (workflow_id > ? OR (workflow_id = ? AND timer_id > ?))))
  ORDER BY due_at, workflow_id, timer_id LIMIT ?`;

/**
 * Active instances in id order after an id (the driver's sweep for children's ends a log lost):
 * the (status, id) index. Params: after_id, limit.
 */
const SELECT_ACTIVE_WORKFLOW_IDS = `SELECT id FROM workflows WHERE status = 'active' AND id > ? ORDER BY id LIMIT ?`;

/** Columns of `workflow_messages` a message is written with, in the order `insertMessages` gives them. */
const MESSAGE_COLUMNS = ['message_id', 'target_id', 'tenant', 'sender_id', 'event', 'created_at'] as const;

/** A message by id, locked (after its target instance). Params: message_id */
const SELECT_MESSAGE = `SELECT ${MESSAGE_COLUMNS.join(', ')} FROM workflow_messages WHERE message_id = ?`;

/** Delete a message its target took. Params: message_id */
const DELETE_MESSAGE = 'DELETE FROM workflow_messages WHERE message_id = ?';

/** The messages waiting for one instance, in the order they were sent (ix_workflow_messages_target). Params: target_id, limit */
const SELECT_PENDING_MESSAGES = 'SELECT message_id FROM workflow_messages WHERE target_id = ? ORDER BY id LIMIT ?';

/**
 * Instances with a message waiting since a time (ix_workflow_messages_created), in id order after a target.
 * Params: created_before, after_target, limit
 */
const SELECT_STALE_MESSAGE_TARGETS = 'SELECT DISTINCT target_id FROM workflow_messages WHERE created_at <= ? AND target_id > ? ORDER BY target_id LIMIT ?';

function rowToMessage(r: Row): WorkflowMessageRecord {
  return {
    messageId: String(r.message_id), targetId: String(r.target_id), tenant: String(r.tenant), senderId: String(r.sender_id),
    event: JSON.parse(String(r.event)) as WorkflowMessageRecord['event'], createdAt: toNum(r.created_at),
  };
}

/** A step's messages: multi-row INSERTs. */
function insertMessages(rows: readonly WorkflowMessageRecord[]): Sql[] {
  return chunkRows(rows.map((m) => [m.messageId, m.targetId, m.tenant, m.senderId, JSON.stringify(m.event), m.createdAt])).map((part) => ({
    sql: `INSERT INTO workflow_messages (${MESSAGE_COLUMNS.join(', ')}) VALUES ${tuples(part.length, MESSAGE_COLUMNS.length)}`,
    params: part.flat(),
  }));
}

/**
 * An instance's timer rows: one per timer of its state, due at its time
 * rounded up to the millisecond (a delay the machine computed may hold a
 * fraction; the column holds whole milliseconds, and the timer must not fire
 * before its time). Params: per timer, workflow_id, timer_id, due_at.
 */
function insertTimers(w: WorkflowRecord): Sql[] {
  return chunkRows(w.state.timers.map((t) => [w.id, t.id, Math.ceil(t.dueAt)])).map((rows) => ({
    sql: `INSERT INTO workflow_timers (workflow_id, timer_id, due_at) VALUES ${tuples(rows.length, 3)}`,
    params: rows.flat(),
  }));
}

/**
 * The index a tenant's page is read through, newest first with no sort: its
 * name's `(tenant, name, id)` (a status filtered on the way), its status's
 * `(tenant, status, id)`, else `(tenant, id)`. Named, as for jobs
 * (statements.ts `listJobs`): MariaDB otherwise may intersect two of them and sort.
 */
function listIndex(f: WorkflowFilter): string {
  if (f.name !== undefined) return 'ix_workflows_tenant_name_id';
  if (f.status !== undefined) return 'ix_workflows_tenant_status_id';
  return 'ix_workflows_tenant_id';
}

/** The FROM and WHERE of a tenant's page of instances, and their params. */
function workflowPageFilter(d: Dialect, f: WorkflowFilter): Sql {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (clause: string, v: unknown) => {
    where.push(clause);
    params.push(v);
  };
  add('tenant = ?', f.tenant);
  if (f.name !== undefined) add('name = ?', f.name);
  if (f.status !== undefined) add('status = ?', f.status);
  if (f.afterId !== undefined) add('id < ?', f.afterId);
  return { sql: `FROM workflows ${d.useIndex(listIndex(f))} WHERE ${where.join(' AND ')}`, params };
}

/**
 * A tenant's page of instances, newest first (ids are ULIDs), optionally of
 * one name and status, after the previous page's last id.
 * Params: tenant, [name], [status], [after_id], limit
 */
function listWorkflows(d: Dialect, f: WorkflowFilter): Sql {
  const { sql, params } = workflowPageFilter(d, f);
  return { sql: `SELECT ${WORKFLOW_COLUMNS.join(', ')} ${sql} ORDER BY id DESC LIMIT ?`, params: [...params, f.limit] };
}

/**
 * The ids of `listWorkflows`'s page and the bytes each instance's input and
 * state (its context) take. Params: as `listWorkflows`.
 */
function listWorkflowSizes(d: Dialect, f: WorkflowFilter): Sql {
  const { sql, params } = workflowPageFilter(d, f);
  return { sql: `SELECT id, COALESCE(OCTET_LENGTH(input), 0) + OCTET_LENGTH(state) AS bytes ${sql} ORDER BY id DESC LIMIT ?`, params: [...params, f.limit] };
}

/**
 * `limit` index entries of a tenant's page of one name and status (through
 * the name's index, the status tested on each row) after the previous one's
 * last id, newest first: each one's id, and the bytes of those of the status
 * (null for the others, whose large columns are not read). Read at most
 * pages.ts `MAX_PAGE_SCAN` a page (`scan`): a status the name's instances
 * seldom have walked them all to fill a page. Params: status, tenant, name, [after_id], limit
 */
function scanWorkflowSizes(d: Dialect, f: WorkflowFilter): Sql {
  const params: unknown[] = [f.status, f.tenant, f.name];
  let where = 'tenant = ? AND name = ?';
  if (f.afterId !== undefined) {
    where += ' AND id < ?';
    params.push(f.afterId);
  }
  return {
    sql: `SELECT id, CASE WHEN status = ? THEN COALESCE(OCTET_LENGTH(input), 0) + OCTET_LENGTH(state) END AS bytes FROM workflows ${d.useIndex(listIndex(f))} WHERE ${where} ORDER BY id DESC LIMIT ?`,
    params: [...params, f.limit],
  };
}

/** Instances by id, newest first. Params: the ids. */
function selectWorkflows(ids: readonly string[]): Sql {
  return { sql: `${SELECT_WORKFLOWS} WHERE id IN (${marks(ids.length)}) ORDER BY id DESC`, params: [...ids] };
}

// ---------------------------------------------------------------- programs

/**
 * Insert a new instance (version 1), its START event, its timer rows, and
 * what it does to jobs. An instance with a key is inserted skipping a taken
 * key, then the key's holder tells whether it got in: if not,
 * `duplicate-key`, and nothing else is written.
 */
export function* insertWorkflowProgram(d: Dialect, write: WorkflowWrite): Program<InsertResult> {
  const w = write.workflow;
  if (write.expectedVersion !== null) throw new AtsError('ATS_ERR_INTERNAL', `workflow ${w.id}: insertWorkflow() got a step of an instance (expectedVersion ${write.expectedVersion}); use updateWorkflow()`);
  checkEvent(write);
  const inserted = yield insertWorkflow(d, w);
  if (w.idempotencyKey !== null) {
    const [holder] = (yield { sql: SELECT_WORKFLOW_BY_KEY, params: [w.tenant, w.name, w.idempotencyKey] }).rows;
    if (!holder) throw new AtsError('ATS_ERR_INTERNAL', `workflow ${w.id}: not inserted (${inserted.changes} rows), and no instance holds its key`);
    if (String(holder.id) !== w.id) return DUPLICATE;
  }
  yield* stepWrites(d, write, false);
  return OK;
}

/**
 * Read instance `id` locked (and then message `read.messageId`, and the
 * event of a signal with `read.signalKey`, if given), let `decide` compute the step, and commit it: the message deleted if `decide`
 * takes it, the instance (compare-and-set: a version other than the one
 * read throws `VersionConflict`, so the store rolls back and runs `decide`
 * again on a fresh read), its event, its timer rows replaced by those of its
 * new state, its messages, and what it does to jobs. A null write commits
 * nothing else.
 */
export function* updateWorkflowProgram<T>(d: Dialect, id: string, decide: WorkflowDecide<T>, read: WorkflowStepRead = {}): Program<T> {
  const { messageId, signalKey } = read;
  const [row] = (yield { sql: `${SELECT_WORKFLOW} ${d.forUpdate}`, params: [id] }).rows;
  const [messageRow] = messageId === undefined ? [] : (yield { sql: `${SELECT_MESSAGE} ${d.forUpdate}`, params: [messageId] }).rows;
  const message = messageRow ? rowToMessage(messageRow) : null;
  // Read after the instance's lock: a step with the same key, racing, either committed before or waits behind it.
  const [signalledRow] = signalKey === undefined || !row ? [] : (yield { sql: SELECT_SIGNALLED, params: [id, signalKey] }).rows;
  const signalled = signalledRow ? rowToWorkflowEvent(signalledRow) : null;
  const { write, result, consumeMessage } = decide(row ? rowToWorkflow(row) : null, message, signalled);
  if (message && consumeMessage) {
    const deleted = yield { sql: DELETE_MESSAGE, params: [message.messageId] };
    if (deleted.changes !== 1) throw new VersionConflict(null, `workflow message ${message.messageId}: taken meanwhile`);
  }
  if (write === null) return result;
  const w = write.workflow;
  if (w.id !== id || write.expectedVersion === null) {
    throw new AtsError('ATS_ERR_INTERNAL', `updateWorkflow(${id}) got a write of instance ${w.id} expecting version ${write.expectedVersion}`);
  }
  checkEvent(write);
  const cas = yield { sql: UPDATE_WORKFLOW_CAS, params: [w.state.status, JSON.stringify(w.state), w.version, w.updatedAt, w.definitionVersion, w.id, write.expectedVersion] };
  if (cas.changes !== 1) throw new VersionConflict(null, `workflow ${w.id}: not at version ${write.expectedVersion} any more`);
  yield* stepWrites(d, write, true);
  return result;
}

/** The event must be the instance's next: its seq is the new version. */
function checkEvent(write: WorkflowWrite): void {
  const { workflow: w, event: e } = write;
  if (e.workflowId !== w.id || e.seq !== w.version) {
    throw new AtsError('ATS_ERR_INTERNAL', `workflow ${w.id} at version ${w.version} got event ${e.seq} of workflow ${e.workflowId}`);
  }
}

/**
 * What a step writes beside the instance row: its event, its timer rows (on
 * an update, those of the state before go first), then the cancels (the
 * jobs' rows locked before any counter row), then the child jobs.
 */
function* stepWrites(d: Dialect, write: WorkflowWrite, replaceTimers: boolean): Program<void> {
  const { workflow: w, event: e } = write;
  yield { sql: INSERT_WORKFLOW_EVENT, params: [e.workflowId, e.seq, e.type, e.at, toJson(e.data), e.status, toJson(w.state.value), signalKeyOf(e)] };
  if (replaceTimers) yield { sql: DELETE_WORKFLOW_TIMERS, params: [w.id] };
  for (const sql of insertTimers(w)) yield sql;
  if (write.messages) {
    for (const sql of insertMessages(write.messages.rows)) yield sql;
    for (const sql of insertOutboxSteps(write.messages.outbox.map((message) => ({ message, at: e.at })))) yield sql;
  }
  if (write.cancel && write.cancel.ids.length > 0) yield* uncommitted(updateProgram(d, write.cancel.ids, write.cancel.decide));
  if (write.jobs.length > 0) yield* insertChildren(d, write.jobs);
}

/**
 * Child jobs, as `JobStore.insert` writes them. The engine gives each a key
 * of its own: one taken means the step ran twice, which the instance's
 * compare-and-set rules out, so it fails the transaction.
 */
function* insertChildren(d: Dialect, jobs: readonly TransitionWrite[]): Program<void> {
  const results = yield* uncommitted(insertProgram(d, jobs));
  const taken = results.findIndex((r) => !r.ok);
  if (taken >= 0) throw new AtsError('ATS_ERR_INTERNAL', `child job ${jobs[taken]!.job.id}: its idempotency key is taken`);
}

/**
 * A jobs program run inside a step: its last statement must not carry the
 * COMMIT (`Sql.final`), since the step goes on after it (or checks its
 * result). Its checks still run in SQL and in code, as in its own transaction;
 * the store commits after the step.
 */
function* uncommitted<T>(program: Program<T>): Program<T> {
  let next = program.next();
  while (!next.done) {
    const step = next.value;
    next = program.next(yield step.final ? { ...step, final: false } : step);
  }
  return next.value;
}

// ---------------------------------------------------------------- retention

/** The statuses an instance never leaves: only these are ever deleted. */
const ENDED: readonly WorkflowStatus[] = WORKFLOW_STATUSES.filter((s) => s !== 'active');
const ENDED_LIST = ENDED.map((s) => `'${s}'`).join(', ');

/**
 * Workflow events one retention transaction deletes at most. Histories have
 * no cap, so a batch is bounded by events, not only by instances: instances
 * are taken, oldest first, while their histories (`version` is an instance's
 * event count) fit; an instance whose history alone is longer loses its
 * events this many at a time, over several transactions, its row last.
 */
export const PURGE_MAX_EVENTS = 10_000;

/**
 * Instances of one (ended) status whose last step is at or before a time,
 * the oldest first, read without locks, with their event counts.
 * Params: status, updated_before, limit
 */
const FIND_EXPIRED_WORKFLOWS = 'SELECT id, version FROM workflows WHERE status = ? AND updated_at <= ? ORDER BY updated_at, id LIMIT ?';

/** Lock the candidates in id order, to check them again. Params: the ids, sorted. */
const lockForPurge = (d: Dialect, ids: readonly string[]): Sql => ({
  sql: `SELECT id, status, updated_at FROM workflows WHERE id IN (${marks(ids.length)}) ORDER BY id ${d.forUpdate}`,
  params: [...ids],
});

/**
 * The seq after an instance's first `n` events left, if it has more than `n`.
 * Params: workflow_id, n
 */
const SEQ_AFTER_FIRST_EVENTS = 'SELECT seq FROM workflow_events WHERE workflow_id = ? ORDER BY seq LIMIT 1 OFFSET ?';

/** An instance's events before a seq: its oldest, a part of a history too long for one transaction. Params: workflow_id, seq */
const DELETE_EVENTS_BEFORE = 'DELETE FROM workflow_events WHERE workflow_id = ? AND seq < ?';

/**
 * The instances themselves, only if ended and old enough: the WHERE says it
 * again whatever the locked read found.
 * Params: the ids, updated_before
 */
const deleteWorkflows = (ids: readonly string[], updatedBefore: number): Sql => ({
  sql: `DELETE FROM workflows WHERE id IN (${marks(ids.length)}) AND status IN (${ENDED_LIST}) AND updated_at <= ?`,
  params: [...ids, updatedBefore],
});

/**
 * The oldest candidates whose histories add up to at most `maxEvents`, and
 * always the first: alone, its history may be longer (its events then go in parts).
 */
function withinEvents(candidates: readonly { id: string; events: number }[], maxEvents: number): string[] {
  const taken: string[] = [];
  let events = 0;
  for (const c of candidates) {
    events += c.events;
    if (taken.length > 0 && events > maxEvents) break;
    taken.push(c.id);
  }
  return taken;
}

/** What one purge transaction did: instances deleted, and workflow events deleted (theirs, or a part of a long history). */
export interface PurgeStep {
  instances: number;
  events: number;
}

/**
 * One transaction of retention's purge of instances: up to `limit` of ended
 * `status` last stepped at or before `updatedBefore`, oldest first, and no
 * more than `maxEvents` events. The candidates are read without locks, then
 * locked by id and kept only if still ended and old enough, as
 * `purgeProgram` (deletes.ts) does for jobs; they go with their events and
 * timer rows (an ended instance has none, but a row left would fire at
 * nothing). Their child jobs are left to the jobs' own retention. An
 * instance whose history is longer than `maxEvents` loses its oldest
 * `maxEvents` events instead, and stays: the next transaction finds it again
 * (still ended and old enough, still the oldest) and goes on, and deletes its
 * row with the last part. Meanwhile its row and state are whole, and its
 * history's tail reads as one; only its first events are gone, as they will
 * be with the row. Throws `VersionConflict` if the DELETE removed other rows
 * than the locked read promised (the store rolls back and runs it again).
 */
export function* purgeWorkflowsStep(
  d: Dialect, status: WorkflowStatus, updatedBefore: number, limit: number, maxEvents = PURGE_MAX_EVENTS,
): Program<PurgeStep> {
  if (!ENDED.includes(status)) throw new AtsError('ATS_ERR_INTERNAL', `retention deletes ended workflow instances only, not ${status}`);
  const found = (yield { sql: FIND_EXPIRED_WORKFLOWS, params: [status, updatedBefore, limit] }).rows;
  const candidates = withinEvents(found.map((r) => ({ id: String(r.id), events: toNum(r.version) })), maxEvents);
  if (candidates.length === 0) return { instances: 0, events: 0 };
  const { rows } = yield lockForPurge(d, [...candidates].sort());
  const doomed = rows
    .filter((r) => ENDED.includes(String(r.status) as WorkflowStatus) && toNum(r.updated_at) <= updatedBefore)
    .map((r) => String(r.id));
  if (doomed.length === 0) return { instances: 0, events: 0 };
  if (doomed.length === 1) {
    // Alone, perhaps too long for one transaction (`version` counts a history whose first part may be gone already).
    const [after] = (yield { sql: SEQ_AFTER_FIRST_EVENTS, params: [doomed[0], maxEvents] }).rows;
    if (after) {
      const { changes } = yield { sql: DELETE_EVENTS_BEFORE, params: [doomed[0], toNum(after.seq)] };
      return { instances: 0, events: changes };
    }
  }
  return yield* deleteLocked(doomed, updatedBefore);
}

/**
 * Delete instances locked and found ended (and old enough), whole: their
 * events (signals and their keys among them), their timer rows, then their
 * rows, whose DELETE says again that each is ended and old enough. Throws
 * `VersionConflict` if it removed other rows than the locked read promised.
 * Retention's (`purgeWorkflowsStep`) and a delete's of one instance
 * (`deleteWorkflowProgram`): the same statements.
 */
function* deleteLocked(doomed: readonly string[], updatedBefore: number): Program<PurgeStep> {
  const ids = marks(doomed.length);
  const events = (yield { sql: `DELETE FROM workflow_events WHERE workflow_id IN (${ids})`, params: [...doomed] }).changes;
  yield { sql: `DELETE FROM workflow_timers WHERE workflow_id IN (${ids})`, params: [...doomed] };
  const { changes } = yield deleteWorkflows(doomed, updatedBefore);
  if (changes !== doomed.length) throw new VersionConflict(null, `deleted ${changes} of ${doomed.length} locked workflow instances`);
  return { instances: changes, events };
}

/**
 * `DELETE /v1/workflows/:id` (`WorkflowStore.deleteWorkflow`): lock instance
 * `id` as retention locks its candidates, and, only if it has ended, delete
 * it as retention does (`deleteLocked`), whatever its age, in this one
 * transaction however long its history (retention splits a long one over
 * several; an instance deleted on request goes at once or not at all). A
 * step of the instance locks the same row first: one racing this delete
 * either committed before it (the status read here is what it left) or
 * waits and then finds no instance. Its child jobs stay, as retention leaves
 * them.
 */
export function* deleteWorkflowProgram(d: Dialect, id: string): Program<WorkflowDeleteResult> {
  const [row] = (yield lockForPurge(d, [id])).rows;
  if (!row) return { ok: false, reason: 'not-found' };
  const status = String(row.status) as WorkflowStatus;
  if (!ENDED.includes(status)) return { ok: false, reason: 'active' };
  yield* deleteLocked([id], Number.MAX_SAFE_INTEGER);
  return { ok: true, status: status as Exclude<WorkflowStatus, 'active'> };
}

/**
 * Retention's batch of instances (`WorkflowStore.purgeWorkflows`): up to
 * `limit` of them, in as many `purgeWorkflowsStep` transactions as their
 * histories need, each run by `transaction` (the store's, with its retries).
 * It stops at `limit` instances, or at a transaction that deleted nothing,
 * and gives up before its next transaction once `signal` aborts (retention
 * stopping): what went stays gone (each transaction commits on its own), and
 * the next purge goes on from there. Between two, the event loop runs: a
 * SQLite store's transactions block it while they last. Returns how many
 * instances went.
 */
export async function purgeWorkflowsInSteps(
  transaction: (program: () => Program<PurgeStep>) => Promise<PurgeStep>,
  d: Dialect, status: WorkflowStatus, updatedBefore: number, limit: number, maxEvents = PURGE_MAX_EVENTS, signal?: AbortSignal,
): Promise<number> {
  let instances = 0;
  while (instances < limit) {
    if (signal?.aborted) break;
    const step = await transaction(() => purgeWorkflowsStep(d, status, updatedBefore, limit - instances, maxEvents));
    instances += step.instances;
    if (step.instances === 0 && step.events === 0) break;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return instances;
}

// ---------------------------------------------------------------- reads

export type SqlWorkflowReads = Pick<
  WorkflowStore,
  'getWorkflow' | 'findWorkflowByIdempotencyKey' | 'getWorkflowEvents' | 'workflowEventSizes' | 'workflowEventSteps' | 'listWorkflows' | 'listWorkflowPage' | 'dueWorkflowTimers' | 'readWorkflowEventsAfter' | 'workflowEventSizesAfter' | 'lastWorkflowEventId' | 'lastIssuedWorkflowEventId'
  | 'activeWorkflowIds' | 'jobStates' | 'pendingWorkflowMessages' | 'staleWorkflowMessageTargets' | 'activeWorkflowValues'
>;

/** The WorkflowStore's reads: plain, no locks. */
export function createSqlWorkflowReads(query: Query, d: Dialect): SqlWorkflowReads {
  const one = async (sql: string, params: unknown[]): Promise<WorkflowRecord | null> => {
    const [row] = await query(sql, params);
    return row ? rowToWorkflow(row) : null;
  };
  return {
    getWorkflow: (id) => one(SELECT_WORKFLOW, [id]),
    findWorkflowByIdempotencyKey: (tenant, name, key) => one(SELECT_WORKFLOW_BY_KEY, [tenant, name, key]),
    getWorkflowEvents: async (id, afterSeq = 0, limit) =>
      (await (limit === undefined ? query(SELECT_WORKFLOW_EVENTS, [id, afterSeq]) : query(`${SELECT_WORKFLOW_EVENTS} LIMIT ?`, [id, afterSeq, limit]))).map(rowToWorkflowEvent),
    workflowEventSizes: async (id, afterSeq, limit) =>
      (await (limit === undefined ? query(SELECT_WORKFLOW_EVENT_SIZES, [id, afterSeq]) : query(`${SELECT_WORKFLOW_EVENT_SIZES} LIMIT ?`, [id, afterSeq, limit])))
        .map((r) => ({ seq: toNum(r.seq), bytes: toNum(r.bytes) })),
    workflowEventSteps: async (id, afterSeq, limit) =>
      (await (limit === undefined ? query(SELECT_WORKFLOW_EVENT_STEPS, [id, afterSeq]) : query(`${SELECT_WORKFLOW_EVENT_STEPS} LIMIT ?`, [id, afterSeq, limit])))
        .map(rowToWorkflowStep),
    listWorkflows: async (filter) => {
      const { sql, params } = listWorkflows(d, filter);
      return (await query(sql, params)).map(rowToWorkflow);
    },
    listWorkflowPage: async (filter, maxBytes) => {
      const { records, nextAfterId } = await readPage(query, {
        sizes: (afterId, limit) => listWorkflowSizes(d, { ...filter, limit, ...(afterId === undefined ? {} : { afterId }) }),
        rows: selectWorkflows,
        toRecord: rowToWorkflow,
        // The other filters are fixed for an instance's life; its status is not.
        matches: (wf) => filter.status === undefined || wf.state.status === filter.status,
        ...(filter.name !== undefined && filter.status !== undefined
          ? { scan: (afterId: string | undefined, take: number) => scanWorkflowSizes(d, { ...filter, limit: take, ...(afterId === undefined ? {} : { afterId }) }) }
          : {}),
      }, filter.afterId, filter.limit, maxBytes);
      return { workflows: records, nextAfterId };
    },
    dueWorkflowTimers: async (now, limit, after = { dueAt: Number.MIN_SAFE_INTEGER, workflowId: '', timerId: '' }): Promise<DueWorkflowTimer[]> =>
      (await query(SELECT_DUE_WORKFLOW_TIMERS, [now, after.dueAt, after.dueAt, after.workflowId, after.workflowId, after.timerId, limit])).map((r) => ({
        workflowId: String(r.workflow_id), timerId: String(r.timer_id), dueAt: toNum(r.due_at),
      })),
    readWorkflowEventsAfter: async (afterId, limit, throughId = Number.MAX_SAFE_INTEGER) =>
      (await query(SELECT_WORKFLOW_EVENTS_AFTER, [afterId, throughId, limit])).map(rowToWorkflowStreamEvent),
    workflowEventSizesAfter: async (afterId, limit) =>
      (await query(SELECT_WORKFLOW_EVENT_SIZES_AFTER, [afterId, limit])).map((r) => ({ id: toNum(r.id), bytes: toNum(r.bytes) })),
    lastWorkflowEventId: async () => toNum((await query(SELECT_LAST_WORKFLOW_EVENT_ID, []))[0]?.id ?? 0),
    lastIssuedWorkflowEventId: async () => toNum((await query(d.lastIssuedId('workflow_events'), []))[0]?.id ?? 0),
    jobStates: async (ids) => {
      const states = new Map<string, JobState>();
      for (const part of slices([...new Set(ids)])) {
        for (const r of await query(`SELECT id, state FROM jobs WHERE id IN (${marks(part.length)})`, part)) states.set(String(r.id), String(r.state) as JobState);
      }
      return states;
    },
    activeWorkflowValues: async (tenant, name, definitionVersion, limit) =>
      (await query(selectActiveValues(d), [tenant, name, definitionVersion, limit]))
        .map((r) => JSON.parse(String(r.state_value)) as unknown),
    pendingWorkflowMessages: async (targetId, limit) => (await query(SELECT_PENDING_MESSAGES, [targetId, limit])).map((r) => String(r.message_id)),
    staleWorkflowMessageTargets: async (createdBefore, limit, afterTarget = '') =>
      (await query(SELECT_STALE_MESSAGE_TARGETS, [createdBefore, afterTarget, limit])).map((r) => String(r.target_id)),
    activeWorkflowIds: async (limit, afterId = '') => (await query(SELECT_ACTIVE_WORKFLOW_IDS, [afterId, limit])).map((r) => String(r.id)),
  };
}
