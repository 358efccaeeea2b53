/**
 * Reads for the metrics and the visualizer's per-edge figures, shared by
 * both stores: the outbox backlog, and the transitions of the last minutes
 * per edge of the job machine with their median dwell time.
 *
 * Neither scans a table that grows with the history: the outbox holds only
 * rows the relay has not sent yet, and the edge figures read the newest
 * events up to a row cap (ids are allocated in commit order, roughly the
 * order of `at`), plus one lookup of each event's predecessor through the
 * unique key `(job_id, seq)`. A tenant's are its own newest events, through
 * `(tenant, id)` (migration 0028): another tenant's events are never read, so
 * they change neither its figures nor whether its window was cut.
 */
import type { JobState } from '../../machines/job.machine.js';
import type { EdgeStat, EdgeStats, OutboxBacklog, StoredEventType } from '../../engine/ports.js';
import { toNum, type Row } from './rows.js';
import { OUTBOX_MESSAGES, SELECT_LAST_EVENT_ID } from './statements.js';

/** Runs one SELECT and returns its rows. */
type Query = (sql: string, params: readonly unknown[]) => Promise<Row[]>;

/**
 * The outbox's row and message counts (a row may hold many messages:
 * outbox.ts) and the `created_at` of its oldest row (the lowest id: a
 * primary key lookup). Params: none.
 */
export const OUTBOX_BACKLOG = `SELECT c.n, c.messages, (SELECT created_at FROM outbox ORDER BY id LIMIT 1) AS oldest
  FROM (SELECT COUNT(*) AS n, ${OUTBOX_MESSAGES} AS messages FROM outbox) c`;

/**
 * Events after an id and at or after a time, each with the `at` of the job's
 * previous event (NULL for the first, or when it was deleted).
 * Params: after_id, since
 */
export const EDGE_EVENTS = `SELECT e.type, e.from_state, e.to_state, e.at, p.at AS prev_at
  FROM job_events e LEFT JOIN job_events p ON p.job_id = e.job_id AND p.seq = e.seq - 1
  WHERE e.id > ? AND e.at >= ?`;

/**
 * The id of a tenant's event at `offset` from its newest (0: the newest),
 * read in `(tenant, id)` alone. Params: tenant, offset
 */
export const TENANT_EVENT_ID_AT_OFFSET = 'SELECT id FROM job_events WHERE tenant = ? ORDER BY id DESC LIMIT 1 OFFSET ?';

/**
 * EDGE_EVENTS of one tenant: its events after an id (a range of `(tenant, id)`)
 * and at or after a time.
 * Params: tenant, after_id, since
 */
export const TENANT_EDGE_EVENTS = `SELECT e.type, e.from_state, e.to_state, e.at, p.at AS prev_at
  FROM job_events e LEFT JOIN job_events p ON p.job_id = e.job_id AND p.seq = e.seq - 1
  WHERE e.tenant = ? AND e.id > ? AND e.at >= ?`;

/** The `at` of an event. Params: id */
export const EVENT_AT = 'SELECT at FROM job_events WHERE id = ?';

/** The `at` of the newest event at or below an id. Params: id */
export const EVENT_AT_OR_BELOW = 'SELECT at FROM job_events WHERE id <= ? ORDER BY id DESC LIMIT 1';

export async function readOutboxBacklog(query: Query): Promise<OutboxBacklog> {
  const [row] = await query(OUTBOX_BACKLOG, []);
  return { rows: toNum(row?.n ?? 0), messages: toNum(row?.messages ?? 0), oldestAt: row?.oldest == null ? null : toNum(row.oldest) };
}

/**
 * Every tenant's edges, or only `tenant`'s: from the newest `maxEvents`
 * events (of `tenant`'s when given) those at or after `since`; `truncated`
 * when an older one of those events is in the window too.
 */
export async function readEdgeStats(query: Query, since: number, maxEvents: number, tenant?: string): Promise<EdgeStats> {
  if (tenant !== undefined) {
    // The tenant's event just older than its newest maxEvents, if it has one: the range starts after it.
    const below = toNumOrNull((await query(TENANT_EVENT_ID_AT_OFFSET, [tenant, maxEvents]))[0]?.id);
    const rows = await query(TENANT_EDGE_EVENTS, [tenant, below ?? 0, since]);
    const belowAt = below === null ? undefined : (await query(EVENT_AT, [below]))[0]?.at;
    return { edges: edgesOf(rows), truncated: belowAt != null && toNum(belowAt) >= since };
  }
  const last = toNum((await query(SELECT_LAST_EVENT_ID, []))[0]?.id ?? 0);
  const after = Math.max(0, last - maxEvents);
  const rows = await query(EDGE_EVENTS, [after, since]);
  // Events below the range may still be in the window: then it was cut.
  const below = after > 0 ? (await query(EVENT_AT_OR_BELOW, [after]))[0] : undefined;
  const truncated = below !== undefined && toNum(below.at) >= since;
  return { edges: edgesOf(rows), truncated };
}

const toNumOrNull = (v: unknown): number | null => (v == null ? null : toNum(v));

/** Rows of EDGE_EVENTS grouped per (from, to, event), by count (then name) descending. */
export function edgesOf(rows: readonly Row[]): EdgeStat[] {
  const byEdge = new Map<string, { stat: EdgeStat; dwells: number[] }>();
  for (const r of rows) {
    const from = (r.from_state as JobState | null) ?? null;
    const to = r.to_state as JobState;
    const event = r.type as StoredEventType;
    const key = `${from ?? ''} ${to} ${event}`;
    let edge = byEdge.get(key);
    if (!edge) byEdge.set(key, (edge = { stat: { from, to, event, count: 0, medianDwellMs: null }, dwells: [] }));
    edge.stat.count++;
    if (r.prev_at != null) edge.dwells.push(Math.max(0, toNum(r.at) - toNum(r.prev_at)));
  }
  const out = [...byEdge.values()].map(({ stat, dwells }) => ({ ...stat, medianDwellMs: median(dwells) }));
  return out.sort((a, b) => b.count - a.count || keyOf(a).localeCompare(keyOf(b)));
}

const keyOf = (e: EdgeStat): string => `${e.from ?? ''} ${e.to} ${e.event}`;

/** The median (the mean of the two middle values for an even count); null for none. */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
