/**
 * The metrics' share of the composition root: which scrape-time sources a
 * process's roles give its PrometheusMetrics, and the ATS_METRICS_PORT
 * server. `compose.ts` binds that port as the process starts (before the
 * store opens: `/healthz` answers during a long migration, or the wait for
 * another process's) and wires the sources once the roles are built.
 */
import { serveMetrics, type MetricsServer } from '../adapters/metrics/http.js';
import { kafkaLag, type GroupTopic, type KafkaLag } from '../adapters/metrics/kafka-lag.js';
import type { PrometheusMetrics } from '../adapters/metrics/prometheus.js';
import { isLane, laneGroup } from '../engine/lanes.js';
import { TOPICS, type Clock, type JobStore, type Logger } from '../engine/ports.js';
import type { Worker } from '../engine/worker.js';
import { metricsHostRefusal } from '../server/security.js';
import type { StreamPlugin } from '../server/stream/index.js';
import { apiSecurity, type Config } from './config.js';

export interface MetricsWiring {
  /** Logs the ATS_METRICS_PORT server's URL and resolves with it (null when off). */
  start(): Promise<string | null>;
  stop(): Promise<void>;
}

/** The most dispatch lanes whose lag is exported (lanes are named after queues, which users choose). */
export const LAG_LANES_MAX = 100;

/**
 * Each dispatch lane among `topics` (Kafka's names) with the workers' group
 * of it: `ats.dispatch` first, then the others by name, at most
 * {@link LAG_LANES_MAX}.
 */
export function laneGroups(topics: readonly string[], prefix: string, groupId: string): GroupTopic[] {
  const lanes = topics.filter((t) => t.startsWith(prefix)).map((t) => t.slice(prefix.length)).filter(isLane)
    .sort((a, b) => (a === TOPICS.dispatch ? -1 : b === TOPICS.dispatch ? 1 : a < b ? -1 : a > b ? 1 : 0))
    .slice(0, LAG_LANES_MAX);
  return lanes.map((lane) => ({ group: prefix + laneGroup(groupId, lane), topic: prefix + lane }));
}

/**
 * The ATS_METRICS_PORT server (null when off), bound before the store opens:
 * a relay, worker or timers process has no other port, and a liveness probe
 * on its `/healthz` must not restart it while it waits up to 15 minutes for
 * another process's migration. Its `/metrics` answers the Host names the
 * API port answers (ATS_ALLOWED_HOSTS; on loopback without them, the loopback
 * names), against DNS rebinding, and any IP-literal Host (a scrape by pod IP,
 * which rebinding cannot produce), as the API port's `/metrics` does;
 * `/healthz` any. Rejects (EADDRINUSE, ...) when the port cannot be bound.
 */
export async function bindMetricsPort(metrics: PrometheusMetrics, config: Config): Promise<MetricsServer | null> {
  return config.metricsPort === null ? null : serveMetrics(metrics, config.metricsPort, config.host, metricsHostRefusal(apiSecurity(config)));
}

/** `server`: the one {@link bindMetricsPort} bound; closed by `stop()`. */
export function wireMetrics(
  metrics: PrometheusMetrics, config: Config,
  parts: { store: JobStore; clock: Clock; logger: Logger; worker: Worker | null; stream: StreamPlugin | null },
  server: MetricsServer | null,
): MetricsWiring {
  const { store, clock, logger, worker, stream } = parts;
  const api = config.roles.includes('api');
  if (worker) metrics.watchWorker(worker);
  if (stream) metrics.watchStream(stream);
  // The same numbers in every process: exported by the api role's processes only.
  if (api) metrics.watchStore(store, clock);
  const lag: KafkaLag | null = api && config.kafkaBrokers
    ? kafkaLag({
        brokers: [...config.kafkaBrokers], clientId: `ats-${config.worker.workerId}-metrics`, connectTimeoutMs: 3000,
        // As Kafka names them: the topic prefix goes before the group id too (adapters/kafka).
        groups: (topics) => laneGroups(topics, config.topicPrefix, config.worker.groupId),
      })
    : null;
  if (lag) metrics.watchConsumerLag(() => lag.read(), clock);
  return {
    async start() {
      if (server === null) return null;
      logger.info(`metrics: ${server.url}/metrics`);
      return server.url;
    },
    async stop() {
      await Promise.all([server?.close(), lag?.close()]);
    },
  };
}
