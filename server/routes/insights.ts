/**
 * `GET /v1/insights`: what the advisor learned from each job type's history
 * (run times, failure signatures with their evidence, anomalies) and what it
 * changes, or in advise mode would change (docs/advisor.md).
 *
 * The advisor learns from every tenant's jobs at once (failure signatures
 * carry error messages), so its insights are the operator's: the default
 * tenant's callers see them, another tenant's get the mode and no types.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Insights } from '../../engine/advisor/types.js';
import { sharedFor } from '../answer-cache.js';
import { DEFAULT_TENANT } from '../../engine/auth.js';
import type { RouteOptions } from '../deps.js';
import { described, errorResponses, InsightsView, ref } from '../schemas.js';

/** How long one answer is served to every caller (each open console asks every 5 s). */
export const INSIGHTS_CACHE_MS = 1000;

const OFF: Insights = Object.freeze({ mode: 'off', events: 0, types: [] }) as Insights;

export const insightsRoute: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const { advisor } = deps;
  const read = advisor ? sharedFor<Insights>(INSIGHTS_CACHE_MS, deps.clock, () => advisor.insights()) : async () => OFF;
  app.get(
    '/v1/insights',
    {
      schema: {
        operationId: 'getInsights',
        summary: 'What the advisor learned and what it changes',
        description:
          'Per job type and queue: attempts and run-time quantiles, the lease the advisor would claim with, each failure signature ' +
          'with its evidence (retries that recovered or failed again) and verdict, recent anomalies, and `changes`: what the ' +
          'advisor changes (`mode: enforce`) or would change (`advise`). With the advisor off, `types` is empty. The advisor learns from ' +
          'every tenant\'s jobs: only callers of the default tenant see its types; others get the mode and an empty `types`.',
        tags: ['meta'],
        response: { 200: described(ref(InsightsView), 'The advisor\'s insights'), ...errorResponses() },
      },
    },
    async (request): Promise<Insights> => {
      const all = await read();
      return request.principal.tenant === DEFAULT_TENANT ? all : { mode: all.mode, events: 0, types: [] };
    },
  );
};
