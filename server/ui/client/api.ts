/**
 * The visualizer's calls, same origin, through the client package (client/):
 * REST with retries, and the stream. A failure is an `ApiError` carrying the
 * server's `{code, message}`.
 */
import { ApiError, createClient, type EventView, type JobDetail, type JobView, type StreamFilter, type WatchOptions } from '../../../client/index.js';
import type { MachineGraph } from '../../../machines/lifecycle.js';

export { ApiError };
export type { EventView, JobDetail, JobView, MachineGraph };

/** Jobs per state, e.g. `{pending: 3, done: 10}`. */
export type StateCounts = Record<string, number>;

// A button press waits for an answer: one quick retry, not the default three.
const client = createClient({ url: location.origin, retries: 1 });

export const api = {
  // The wire type names events as text; the server sends machineGraph(), whose events are the machine's.
  machine: () => client.machine() as Promise<MachineGraph>,
  stats: () => client.stats(),
  recentJobs: (limit: number) => client.listPage({ limit }),
  job: (id: string) => client.get(id),
  submit: (type: string, payload: unknown) => client.submit({ type, payload }),
  cancel: (id: string) => client.cancel(id),
  redrive: (id: string) => client.redrive(id),
  watch: (filter: StreamFilter, opts: WatchOptions) => client.watch(filter, opts),
};

export type Api = typeof api;

/** A message for the page from anything thrown. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}
