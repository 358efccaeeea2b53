/** `GET /v1/machine` (the job machine as JSON, for the visualizer) and `GET /v1/stats`. */
import type { FastifyPluginAsync } from 'fastify';
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
    { schema: { operationId: 'getStats', summary: 'Job counts per state, type and queue', description: 'How many jobs the store holds, in total, per state, and per state of each type and each queue.', tags: ['meta'], response: { 200: described(ref(StatsView), 'Counts'), ...errorResponses() } } },
    async () => {
      const stats = await deps.store.stats();
      const total = Object.values(stats.byState).reduce((a, n) => a + n, 0);
      return { total, ...stats };
    },
  );
};
