/**
 * Stream cursors: opaque to clients, `base64url("v1:<job_events.id>")` for
 * job transitions and `base64url("v1:w:<workflow_events.id>")` for workflow
 * transitions. A subscription follows one of the two tables (protocol.ts),
 * and its cursors name a position in that table only: the two tables' ids
 * are not comparable, so one cursor never stands for both, and a cursor of
 * one table is refused by a subscription to the other.
 *
 * How the cursor is made so that concurrent commits cannot be skipped
 * ------------------------------------------------------------------
 * `job_events.id` is one global AUTO_INCREMENT. An id is allocated when its row
 * is INSERTed but the row becomes visible only when its transaction COMMITs,
 * so two transitions committing at once can become visible in the "wrong"
 * order: id 12 is visible while id 11 is not yet. A reader that read "all ids
 * after 10", got 12 and then moved its position to 12 would never see 11.
 *
 * So a cursor never names a position a reader has jumped over. Positions come
 * from the tail reader's *horizon* (tail.ts): the horizon only advances over
 * ids that are contiguous from it. At a missing id it stops and waits: the id
 * is either a transaction still committing (it will appear, usually within
 * milliseconds) or a rollback (it never will); only `gapTimeoutMs` after an
 * id above it was first seen (far longer than a transition transaction holds
 * an inserted event uncommitted: see SeenMarks in tail.ts) is the id given up. Therefore every id at or below the horizon
 * is committed (or will never exist), and a cursor `c` (an event's id, or
 * the horizon at subscribe time) has this property: everything a client has
 * not received is in `job_events` with `id > c`. A resume is a replay of
 * `id > c` from the table up to the current horizon, then live: no gap, and
 * nothing at or below `c` comes again.
 *
 * Per-job order: a job's next event is inserted only after its previous one
 * committed (the transition holds the job's row lock, and the next writer
 * reads the committed version), and a chain of events on one job in one
 * transaction is inserted in seq order by one multi-row INSERT. So for one
 * job, id order is seq order, and delivering in id order delivers in seq order.
 * It is also why the job view's `streamCursor` (GET /v1/jobs/:id: the id of
 * the newest event it shows) is gap-free for a subscription to that job: each
 * of the job's events the read did not see was inserted after the newest one
 * it saw had committed, so got a higher id (AUTO_INCREMENT on MySQL/MariaDB,
 * AUTOINCREMENT on SQLite: never lower, never reused), while other jobs'
 * events below it may still be committing: a one-job filter only.
 *
 * `workflow_events.id` is allocated the same way and followed by a tail
 * reader of its own, so all of the above holds for workflow cursors too. Per
 * instance, a step locks the instance's row and its event's seq is the
 * version it read plus one, so one instance's events are inserted (and thus
 * numbered) in seq order.
 */
import { AtsError } from '../../engine/errors.js';

/** Which table a cursor is a position in: `job_events` or `workflow_events`. */
export type CursorSource = 'jobs' | 'workflows';

const PREFIX: Readonly<Record<CursorSource, string>> = Object.freeze({ jobs: 'v1:', workflows: 'v1:w:' });
const DECODED = /^v1:(w:)?(0|[1-9][0-9]{0,15})$/;

/** The cursor naming "after event `id`" (or "after position `id`") of `source`'s table. */
export function encodeStreamCursor(id: number, source: CursorSource = 'jobs'): string {
  return Buffer.from(`${PREFIX[source]}${id}`, 'utf8').toString('base64url');
}

/**
 * The position a cursor stands for; throws ATS_ERR_BAD_CURSOR for anything
 * not of this server's format. A well-formed cursor beyond every event issued
 * so far is refused too, by the session (it needs a read: session.ts).
 */
export function decodeStreamCursor(cursor: string): number {
  const { source, id } = decodeCursorPosition(cursor);
  if (source !== 'jobs') throw new AtsError('ATS_ERR_BAD_CURSOR', 'The stream cursor is one of workflow transitions, not of job transitions');
  return id;
}

/** The table and position a cursor stands for (either kind); throws ATS_ERR_BAD_CURSOR as `decodeStreamCursor`. */
export function decodeCursorPosition(cursor: string): { source: CursorSource; id: number } {
  const text = /^[A-Za-z0-9_-]{1,32}$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const m = DECODED.exec(text);
  const id = m ? Number(m[2]) : NaN;
  const source: CursorSource = m?.[1] ? 'workflows' : 'jobs';
  // Re-encoding must give the cursor back: base64url decoding skips junk silently.
  if (!Number.isSafeInteger(id) || encodeStreamCursor(id, source) !== cursor) {
    throw new AtsError('ATS_ERR_BAD_CURSOR', 'The stream cursor is not one this server issued');
  }
  return { source, id };
}
