/**
 * `GET /v1/stats/outbox`: the relay backlog, the outbox rows not yet published
 * to Kafka and how long the oldest has waited (one indexed read: the relay
 * deletes rows once acked, so the table holds the backlog only). What the
 * operator console shows; `ats_outbox_backlog` and
 * `ats_outbox_oldest_age_seconds` on /metrics are the same figures. Answers
 * are shared for a second: several open consoles cost one read.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { OutboxBacklog } from '../../engine/ports.js';
import type { RouteOptions } from '../deps.js';
import { sharedFor } from '../answer-cache.js';
import { described, errorResponses, OutboxStatsView, ref } from '../schemas.js';

/** How long one answer is served to every caller. */
export const OUTBOX_STATS_CACHE_MS = 1000;

export const outboxStatsRoute: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const read = sharedFor<OutboxBacklog>(OUTBOX_STATS_CACHE_MS, deps.clock, () => deps.store.outboxBacklog());

  app.get(
    '/v1/stats/outbox',
    {
      schema: {
        operationId: 'getOutboxStats',
        summary: 'The relay backlog: outbox rows not yet published',
        description: 'How many outbox rows, and messages in them, the relay has not published to Kafka yet, and how long the oldest has waited.',
        tags: ['meta'],
        response: { 200: described(ref(OutboxStatsView), 'The outbox backlog'), ...errorResponses() },
      },
    },
    async () => {
      const now = deps.clock.now();
      const { rows, messages, oldestAt } = await read(now);
      return {
        rows,
        messages,
        oldestAt: oldestAt === null ? null : new Date(oldestAt).toISOString(),
        oldestAgeMs: oldestAt === null ? null : Math.max(0, Math.round(now - oldestAt)),
      };
    },
  );
};
