/**
 * `GET /v1/machine` (the job machine as JSON, for the visualizer) and
 * `GET /v1/stats` (with `unserved` when the app reads the worker registry,
 * `deps.workers`): the counts of the caller's tenant's jobs only.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Stats } from '../../engine/ports.js';
import { statsOf } from '../../engine/job-counts.js';
import { unserved } from '../../engine/worker-presence.js';
import { machineGraph } from '../../machines/lifecycle.js';
import type { RouteOptions } from '../deps.js';
import { described, errorResponses, MachineView, ref, StatsView } from '../schemas.js';

export const metaRoutes: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  // The machine never changes while the process runs.
  const graph = machineGraph();
  app.get(
    '/v1/machine',
    { schema: { operationId: 'getMachine', summary: 'The job machine: states and transitions', description: 'Every state of the job machine and every transition between them, with its event and guard: what the visualizer draws.', tags: ['meta'], response: { 200: described(ref(MachineView), 'States and edges'), ...errorResponses() } } },
    async () => graph,
  );

  app.get(
    '/v1/stats',
    { schema: { operationId: 'getStats', summary: 'Job counts per state, type and queue', description: 'How many jobs of the caller\'s tenant the store holds, in total, per state, and per state of each type and each queue; and, on a server that reads the worker registry, `unserved`: the job types (per queue) with jobs waiting to start that no live worker handles.', tags: ['meta'], response: { 200: described(ref(StatsView), 'Counts'), ...errorResponses() } } },
    async (request) => {
      const workers = deps.workers;
      const { tenant } = request.principal;
      if (!workers) {
        const stats = await deps.store.stats(tenant);
        return { total: totalOf(stats), ...stats };
      }
      // The counts (read once: the stats are made of them) and the workers at once; either failing fails the answer
      // (a store that is down is a 503, as for the counts alone).
      const [counts, registered] = await Promise.all([deps.store.jobCounts(tenant), workers.listWorkers()]);
      const stats = statsOf(counts);
      return { total: totalOf(stats), ...stats, unserved: unserved(counts, registered, deps.clock.now()) };
    },
  );
};

const totalOf = (stats: Stats): number => Object.values(stats.byState).reduce((a, n) => a + n, 0);
