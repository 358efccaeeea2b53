/**
 * The visualizer's calls, same origin, through the client package (client/):
 * REST with retries, and the stream. A failure is an `ApiError` carrying the
 * server's `{code, message}`.
 */
import {
  ApiError, createClient, type EventView, type Insights, type JobDetail, type JobView, type ListQuery, type Stats, type StreamFilter,
  type WatchOptions, waitingText,
} from '../../../client/index.js';
import type { MachineGraph } from '../../../machines/lifecycle.js';
import { apiBase } from './api-base.js';
import { storedKey } from './key-gate.js';
import { isLimitList, type LimitList } from './limits.js';
import { isCaller } from './permissions.js';
import { isScheduleList, type ScheduleList } from './schedules.js';
import { isWorkerList, type WorkerList } from './workers.js';
import { isWorkflowGraph, isWorkflowPage, type WorkflowGraphAnswer, type WorkflowPage } from './workflows.js';

export { ApiError, waitingText };
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
const key = storedKey();
// The server as this page reaches it (a proxy's path prefix kept): the client's requests and these below go under it.
const base = apiBase(location.href);
const client = createClient({ url: base, retries: 1, ...(key ? { apiKey: key } : {}) });
const authorization: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/**
 * `GET path` checked by `accept`, or null while the server does not have
 * that endpoint (a 404: an app built without it, or an older server). Any
 * other failure, or an answer `accept` refuses, throws naming the route.
 */
async function optionalGet<T>(path: string, accept: (body: unknown) => body is T, what: string): Promise<T | null> {
  const res = await fetch(base + path, { headers: { accept: 'application/json', ...authorization } });
  if (res.status === 404) return null;
  const body = (await res.json().catch(() => null)) as unknown;
  if (!res.ok) {
    // An ApiError, as the client's calls throw: a 401 is the key refused (key-gate.ts stops the page's calls then).
    const code = isObject(body) && typeof body.code === 'string' ? (body.code as ApiError['code']) : `HTTP_${res.status}` as const;
    // The server's message says what to do (a 429: when to retry); an answer without one (a proxy's) is named by its status.
    const message = isObject(body) && typeof body.message === 'string' && body.message ? body.message : `GET ${path} answered ${res.status}`;
    throw new ApiError(res.status, code, message);
  }
  if (!accept(body)) throw new Error(`GET ${path} answered ${res.status} (not ${what})`);
  return body;
}

/** `GET /v1/stats/edges`, or null while the server does not have it (a server without the metrics, or an older one). */
const edges = (): Promise<EdgeStats | null> =>
  optionalGet('/v1/stats/edges', (b): b is EdgeStats => isObject(b) && Array.isArray(b.edges), 'edge counts');

/** `GET /v1/stats/outbox`, or null while the server does not have it (an older one). */
const outbox = (): Promise<OutboxStats | null> =>
  optionalGet('/v1/stats/outbox', (b): b is OutboxStats => isObject(b) && typeof b.rows === 'number', 'outbox counts');

/** `GET /v1/schedules`, or null while the server does not have it. */
const schedules = (): Promise<ScheduleList | null> => optionalGet('/v1/schedules', isScheduleList, 'a list of schedules');

/** `GET /v1/keys/self`: the tab's key's scopes (permissions.ts reads them), or null while the server does not have it (an older one). */
const caller = (): Promise<{ scopes: string[] } | null> => optionalGet('/v1/keys/self', isCaller, 'the caller\'s key and scopes');

/** `GET /v1/workers`, or null while the server does not have it (an app not given the worker registry, or an older server). */
const workers = (): Promise<WorkerList | null> => optionalGet('/v1/workers', isWorkerList, 'a list of workers');

/** `GET /v1/limits`, or null while the server does not have it (an app not given the limit store, or an older server). */
const limits = (): Promise<LimitList | null> => optionalGet('/v1/limits', isLimitList, 'a list of limits');

/** The newest instances of `GET /v1/workflows`, or null while the server does not have it (an app without workflows, or an older server). */
const workflows = (limit: number): Promise<WorkflowPage | null> =>
  optionalGet(`/v1/workflows?limit=${limit}`, isWorkflowPage, 'a page of workflow instances');

/** `GET /v1/workflows/:id/graph`, or null for an instance that is gone (or a server without the route). */
const workflowGraph = (id: string): Promise<WorkflowGraphAnswer | null> =>
  optionalGet(`/v1/workflows/${encodeURIComponent(id)}/graph`, isWorkflowGraph, 'a workflow graph');

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
  caller,
  insights,
  schedules,
  workers,
  limits,
  workflows,
  workflow: (id: string) => client.getWorkflow(id),
  workflowEvents: (id: string, last?: number) => client.workflowEvents(id, { last }),
  workflowGraph,
  watch: (filter: StreamFilter, opts: WatchOptions) => client.watch(filter, opts),
};

export type Api = typeof api;

/** A message for the page from anything thrown. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}
