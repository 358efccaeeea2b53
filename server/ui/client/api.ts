/**
 * The REST calls the visualizer makes, same origin. A non-2xx answer becomes an
 * `ApiError` carrying the server's `{code, message}`.
 */
import type { MachineGraph } from '../../../machines/lifecycle.js';
import type { EventView, JobDetail, JobView } from '../../schemas.js';

export type { EventView, JobDetail, JobView, MachineGraph };

/** Jobs per state, e.g. `{pending: 3, done: 10}`. */
export type StateCounts = Record<string, number>;

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { ...init.headers, 'content-type': 'application/json' };
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // A proxy's HTML error page, say: reported below with the status.
  }
  if (!res.ok) {
    const err = (json ?? {}) as { code?: string; message?: string };
    throw new ApiError(res.status, err.code ?? `HTTP_${res.status}`, err.message ?? (text.slice(0, 200) || res.statusText));
  }
  return json as T;
}

const jobPath = (id: string) => `/v1/jobs/${encodeURIComponent(id)}`;

export const api = {
  machine: () => call<MachineGraph>('GET', '/v1/machine'),
  stats: () => call<{ byState: StateCounts }>('GET', '/v1/stats'),
  recentJobs: (limit: number) => call<{ jobs: JobView[] }>('GET', `/v1/jobs?limit=${limit}`),
  job: (id: string) => call<JobDetail>('GET', jobPath(id)),
  submit: (type: string, payload: unknown) => call<JobView>('POST', '/v1/jobs', { type, payload }),
  cancel: (id: string) => call<JobView>('POST', `${jobPath(id)}/cancel`, {}),
  redrive: (id: string) => call<JobView>('POST', `${jobPath(id)}/redrive`),
};

export type Api = typeof api;

/** A message for the page from anything thrown. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}
