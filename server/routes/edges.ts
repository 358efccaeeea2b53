/**
 * `GET /v1/stats/edges`: per edge of the job machine, how many transitions
 * took it in the last 15 minutes and the median time jobs spent in the state
 * before (from `job_events`: this event's `at` minus the job's previous
 * event's). What the visualizer shows on each edge.
 *
 * The store reads at most the caller's tenant's newest 50,000 events (a
 * range of `job_events (tenant, id)`: no other tenant's event is read) and
 * says when the tenant's window held more (`truncated`). Answers are shared
 * for a second per tenant: several open visualizers cost one read.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { EdgeStats } from '../../engine/ports.js';
import type { RouteOptions } from '../deps.js';
import { sharedFor } from '../answer-cache.js';
import { sharedPerTenant } from '../tenant-jobs.js';
import { described, EDGE_STATS_MAX_EVENTS, EDGE_STATS_WINDOW_MS, EdgeStatsView, errorResponses, ref } from '../schemas.js';

/** How long one answer is served to every caller. */
export const EDGE_STATS_CACHE_MS = 1000;

export const edgeStatsRoute: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  // Per tenant: the edges of the caller's tenant's jobs only.
  const read = sharedPerTenant((tenant) =>
    sharedFor<EdgeStats>(EDGE_STATS_CACHE_MS, deps.clock, (now) => deps.store.edgeStats(now - EDGE_STATS_WINDOW_MS, EDGE_STATS_MAX_EVENTS, tenant)));

  app.get(
    '/v1/stats/edges',
    {
      schema: {
        operationId: 'getEdgeStats',
        summary: 'Transitions per edge of the job machine, last 15 minutes',
        description:
          'For each edge of the job machine (from, to, event) taken in the last 15 minutes: how many transitions took it and the ' +
          'median time the jobs (of the caller\'s tenant) had spent in `from` before (dwell: the event\'s time minus the job\'s previous event\'s). ' +
          `Read from the caller's tenant's newest ${EDGE_STATS_MAX_EVENTS.toLocaleString('en-US')} events at most (\`truncated\` says when its window held more): ` +
          'other tenants\' events are not read, and change neither the figures nor `truncated`.',
        tags: ['meta'],
        response: { 200: described(ref(EdgeStatsView), 'Edges with their counts and median dwell times'), ...errorResponses() },
      },
    },
    async (request) => {
      const { edges, truncated } = await read(request.principal.tenant);
      return { windowMs: EDGE_STATS_WINDOW_MS, maxEvents: EDGE_STATS_MAX_EVENTS, truncated, edges };
    },
  );
};
