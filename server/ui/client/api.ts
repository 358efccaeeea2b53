/**
 * The visualizer's calls, same origin, through the client package (client/):
 * REST with retries, and the stream. A failure is an `ApiError` carrying the
 * server's `{code, message}`.
 */
import {
  ApiError, createClient, type EventView, type Insights, type JobDetail, type JobView, type ListQuery, type Stats, type StreamFilter,
  type WatchOptions,
} from '../../../client/index.js';
import type { MachineGraph } from '../../../machines/lifecycle.js';
import { isScheduleList, type ScheduleList } from './schedules.js';
import { isWorkerList, type WorkerList } from './workers.js';

export { ApiError };
export type { EventView, Insights, JobDetail, JobView, ListQuery, MachineGraph, Stats };

/** Jobs per state, e.g. `{pending: 3, done: 10}`. */
export type StateCounts = Record<string, number>;

/** Counts per state, and per state of each type and each queue (`GET /v1/stats`, or a stream `stats` message). */
export interface CountStats {
  byState: StateCounts;
  byType: Record<string, Record<string, number | undefined>>;
  byQueue: Record<string, Record<string, number | undefined>>;
}

/** One edge of the machine over the last window: `GET /v1/stats/edges`. */
export interface EdgeStat {
  from: string | null;
  to: string;
  event: string;
  count: number;
  /** Median time jobs spent in `from` before taking this edge; null when unknown. */
  medianDwellMs: number | null;
}

export interface EdgeStats {
  edges: EdgeStat[];
  windowMs: number;
}

/** The relay backlog: `GET /v1/stats/outbox`. */
export interface OutboxStats {
  rows: number;
  oldestAt: string | null;
  oldestAgeMs: number | null;
}

// A button press waits for an answer: one quick retry, not the default three.
const client = createClient({ url: location.origin, retries: 1 });

/**
 * `GET /v1/stats/edges`, or null while the server does not have that endpoint
 * (a 404: a server without the metrics, or an older one).
 */
async function edges(): Promise<EdgeStats | null> {
  const res = await fetch('/v1/stats/edges', { headers: { accept: 'application/json' } });
  if (res.status === 404) return null;
  const body = (await res.json().catch(() => null)) as (EdgeStats & { code?: string; message?: string }) | null;
  if (!res.ok || !body || !Array.isArray(body.edges)) {
    throw new Error(`GET /v1/stats/edges answered ${res.status}${body?.code ? ` ${body.code}` : ''}`);
  }
  return body;
}

/** `GET /v1/stats/outbox`, or null while the server does not have that endpoint (an older one). */
async function outbox(): Promise<OutboxStats | null> {
  const res = await fetch('/v1/stats/outbox', { headers: { accept: 'application/json' } });
  if (res.status === 404) return null;
  const body = (await res.json().catch(() => null)) as (OutboxStats & { code?: string }) | null;
  if (!res.ok || !body || typeof body.rows !== 'number') {
    throw new Error(`GET /v1/stats/outbox answered ${res.status}${body?.code ? ` ${body.code}` : ''}`);
  }
  return body;
}

/**
 * `GET /v1/schedules`, or null while the server does not have that endpoint
 * (a 404: an app built without the schedules, or an older server).
 */
async function schedules(): Promise<ScheduleList | null> {
  const res = await fetch('/v1/schedules', { headers: { accept: 'application/json' } });
  if (res.status === 404) return null;
  const body = (await res.json().catch(() => null)) as unknown;
  if (!res.ok || !isScheduleList(body)) {
    const code = body && typeof body === 'object' && 'code' in body ? ` ${String(body.code)}` : '';
    throw new Error(`GET /v1/schedules answered ${res.status}${code}${res.ok ? ' (not a list of schedules)' : ''}`);
  }
  return body;
}

/**
 * `GET /v1/workers`, or null while the server does not have that endpoint
 * (a 404: an app not given the worker registry, or an older server).
 */
async function workers(): Promise<WorkerList | null> {
  const res = await fetch('/v1/workers', { headers: { accept: 'application/json' } });
  if (res.status === 404) return null;
  const body = (await res.json().catch(() => null)) as unknown;
  if (!res.ok || !isWorkerList(body)) {
    const code = body && typeof body === 'object' && 'code' in body ? ` ${String(body.code)}` : '';
    throw new Error(`GET /v1/workers answered ${res.status}${code}${res.ok ? ' (not a list of workers)' : ''}`);
  }
  return body;
}

/** `GET /v1/insights`, or null while the server does not have that endpoint (an older one). */
async function insights(): Promise<Insights | null> {
  try {
    return await client.insights();
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

export const api = {
  // The wire type names events as text; the server sends machineGraph(), whose events are the machine's.
  machine: () => client.machine() as Promise<MachineGraph>,
  stats: () => client.stats(),
  listJobs: (query: ListQuery) => client.listPage(query),
  job: (id: string) => client.get(id),
  submit: (type: string, payload: unknown) => client.submit({ type, payload }),
  cancel: (id: string) => client.cancel(id),
  redrive: (id: string) => client.redrive(id),
  edges,
  outbox,
  insights,
  schedules,
  workers,
  watch: (filter: StreamFilter, opts: WatchOptions) => client.watch(filter, opts),
};

export type Api = typeof api;

/** A message for the page from anything thrown. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}
