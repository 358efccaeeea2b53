/**
 * `GET /v1/machine` (the job machine as JSON, for the visualizer),
 * `GET /v1/stats` (with `unserved` when the app reads the worker registry,
 * `deps.workers`): the counts of the caller's tenant's jobs only, and
 * `GET /v1/keys/self`: who the caller is (its key's id, tenant and scopes),
 * so that the console can leave out what the key may not do. Served with or
 * without keys: without, the caller has every scope.
 */
import type { FastifyPluginAsync } from 'fastify';
import { SCOPES } from '../../engine/auth.js';
import type { Stats } from '../../engine/ports.js';
import { statsOf } from '../../engine/job-counts.js';
import { unserved } from '../../engine/worker-presence.js';
import { machineGraph } from '../../machines/lifecycle.js';
import type { RouteOptions } from '../deps.js';
import { CallerView, described, errorResponses, MachineView, ref, StatsView } from '../schemas.js';

export const metaRoutes: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  // The machine never changes while the process runs.
  const graph = machineGraph();
  app.get(
    '/v1/machine',
    { schema: { operationId: 'getMachine', summary: 'The job machine: states and transitions', description: 'Every state of the job machine and every transition between them, with its event and guard: what the visualizer draws.', tags: ['meta'], response: { 200: described(ref(MachineView), 'States and edges'), ...errorResponses() } } },
    async () => graph,
  );

  app.get(
    '/v1/keys/self',
    {
      schema: {
        operationId: 'getCaller', summary: 'The caller: its key, tenant and scopes',
        description: 'The id, tenant and scopes of the key the request is made with (any key with the read scope may ask; never the key\'s secret): '
          + 'what the console reads to disable the actions the key may not take. Without keys (the open mode) the key id is null and the caller '
          + 'has every scope.',
        tags: ['keys'], response: { 200: described(ref(CallerView), 'The caller'), ...errorResponses() },
      },
    },
    async (request) => {
      const { keyId, tenant, scopes } = request.principal;
      return { keyId, tenant, scopes: SCOPES.filter((s) => scopes.has(s)) };
    },
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
