/**
 * `GET /metrics` on the API port: the process's metrics in Prometheus' text
 * format. Outside `/v1` and left out of the OpenAPI document (it is for
 * Prometheus, not for API clients; README.md, "Metrics", lists what it holds).
 */
import type { FastifyInstance } from 'fastify';
import type { AppPlugin } from '../deps.js';

/** What renders the metrics text (PrometheusMetrics). */
export interface MetricsText {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export function metricsRoute(source: MetricsText): AppPlugin {
  return async function metrics(app: FastifyInstance): Promise<void> {
    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
      const text = await source.metrics();
      return reply.type(source.contentType).send(text);
    });
  };
}
