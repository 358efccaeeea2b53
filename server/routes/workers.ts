/**
 * `GET /v1/workers`: the worker processes as they registered themselves
 * (engine/worker-presence.ts), each with whether it is live now. Served only
 * when the app is given the worker registry (`deps.workers`).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { WorkerRecord } from '../../engine/ports.js';
import { isLive } from '../../engine/worker-presence.js';
import type { RouteOptions } from '../deps.js';
import { iso } from '../job-views.js';
import { described, errorResponses, ref, WorkerList, type WorkerView } from '../schemas.js';

const listSchema = {
  operationId: 'listWorkers',
  summary: 'The registered workers, live or not',
  description:
    'Every worker process that registered itself (at most 1000), by id: its host and pid, the job types it handles, its queues ' +
    '(`*`: every queue), its concurrency, and when it started and was last seen. A worker writes its record every 5 s and deletes it ' +
    'when it stops; `live` is false for one unseen for 15 s (it stopped without deleting it, or lost the database), and a record ' +
    'unseen for an hour is removed.',
  tags: ['workers'],
  response: { 200: described(ref(WorkerList), 'The workers'), ...errorResponses() },
};

/** A worker record as the API shows it, live or not at `now`. */
export function toWorkerView(w: WorkerRecord, now: number): WorkerView {
  return {
    id: w.id, host: w.host, pid: w.pid, queues: [...w.queues], types: [...w.types], concurrency: w.concurrency,
    startedAt: iso(w.startedAt), lastSeenAt: iso(w.lastSeenAt), live: isLive(w, now),
  };
}

export const workersRoute: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const registry = deps.workers;
  if (!registry) return;
  app.get('/v1/workers', { schema: listSchema }, async () => {
    const workers = await registry.listWorkers();
    const now = deps.clock.now();
    return { workers: workers.map((w) => toWorkerView(w, now)) };
  });
};
