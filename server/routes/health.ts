/**
 * `GET /healthz`: the process answers. `GET /readyz`: the database answers
 * too (a load balancer stops sending traffic on 503). The log (Kafka) is
 * checked and reported, but does not make the process unready: the API
 * serves without it (submits go to the outbox, the stream reads the
 * database), and a load balancer that dropped every API process while Kafka
 * is down would stop the submits the outbox exists to keep taking. Each check
 * is bounded by a timeout so a hung database makes /readyz fail rather than hang.
 * A probe asks every few seconds: a check's failures are logged as an outage
 * (the first, then a line a minute with the count, and its recovery), not a
 * warning per probe.
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import { OutageLog } from '../../engine/error-backoff.js';
import { silentLogger } from '../../engine/logger.js';
import type { Clock, Logger } from '../../engine/ports.js';
import { DEFAULT_READY_TIMEOUT_MS, type RouteOptions } from '../deps.js';
import { described, HealthView, publicErrorResponses, ReadyView, ref } from '../schemas.js';

/**
 * null when `check` resolved within `timeoutMs`, else why it failed, in words
 * that name no internal address: `unreachable` (the check threw: its error,
 * which may hold a host and port, goes to the log) or `timed out after N ms`.
 */
async function probe(name: string, check: () => Promise<void>, clock: Clock, timeoutMs: number, outage: OutageLog): Promise<string | null> {
  const stop = new AbortController();
  const timeout = clock.sleep(timeoutMs, stop.signal).then(
    () => `timed out after ${timeoutMs} ms`,
    () => null, // aborted: the check settled first
  );
  let thrown: unknown;
  const outcome = Promise.resolve().then(check).then(
    () => null,
    (e: unknown) => {
      thrown = e;
      return 'unreachable';
    },
  );
  try {
    const why = await Promise.race([outcome, timeout.then((t) => t ?? outcome)]);
    if (why === null) outage.succeeded();
    else outage.failed(thrown ?? new Error(`the ${name} check ${why}`), clock.now(), { check: name, ...(thrown === undefined ? { timeoutMs } : {}) });
    return why;
  } finally {
    stop.abort();
  }
}

/** The outage log of one readiness check (warn: a probe's failure loses nothing). */
function checkOutage(logger: Logger, name: string): OutageLog {
  return new OutageLog(logger, `readyz: the ${name} check`, { level: 'warn', failedMessage: `readyz: the ${name} check failed` });
}

export const healthRoutes: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const timeoutMs = deps.limits.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const logger = deps.logger ?? silentLogger;
  const outages = { database: checkOutage(logger, 'database'), log: checkOutage(logger, 'log') };

  app.get(
    '/healthz',
    { schema: { operationId: 'healthz', security: [], summary: 'Liveness', description: 'Answers 200 while the process serves requests, and already while it starts (migrating the database: /readyz and the rest answer 503 ATS_ERR_NOT_READY then); it checks nothing else. Like every route, 503 ATS_ERR_NOT_READY once the server is shutting down.', tags: ['health'], response: { 200: described(ref(HealthView), 'Alive'), ...publicErrorResponses() } } },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    { schema: { operationId: 'readyz', security: [], summary: 'Readiness: the database reachable', description: 'Answers 200 when the database answers within the readiness timeout (on MySQL a write that changes nothing: a server refusing writes is not ready), else 503 ATS_ERR_NOT_READY saying why (unreachable, or timed out; the details go to the log): a load balancer stops sending traffic on 503. The log (Kafka), in a process that has one, is checked too and reported in `log`, but does not make the process unready: submits and reads do not need it.', tags: ['health'], response: { 200: described(ref(ReadyView), 'Ready'), ...publicErrorResponses(503) } } },
    async () => {
      const { checks } = deps;
      const hasLog = typeof checks.log === 'function';
      const [db, lg] = await Promise.all([
        probe('database', () => checks.database(), deps.clock, timeoutMs, outages.database),
        hasLog ? probe('log', () => checks.log!(), deps.clock, timeoutMs, outages.log) : Promise.resolve(null),
      ]);
      if (db) throw new AtsError('ATS_ERR_NOT_READY', `Not ready: database: ${db}`);
      return { database: 'ok' as const, log: !hasLog ? ('absent' as const) : lg ? ('unreachable' as const) : ('ok' as const) };
    },
  );
};
