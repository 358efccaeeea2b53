/**
 * `GET /healthz`: the process answers. `GET /readyz`: its dependencies answer
 * too (a load balancer stops sending traffic on 503). Each check is bounded by
 * a timeout so a hung database makes /readyz fail rather than hang.
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import { errorFields, silentLogger } from '../../engine/logger.js';
import type { Clock, Logger } from '../../engine/ports.js';
import { DEFAULT_READY_TIMEOUT_MS, type RouteOptions } from '../deps.js';
import { described, HealthView, publicErrorResponses, ReadyView, ref } from '../schemas.js';

/**
 * null when `check` resolved within `timeoutMs`, else why it failed, in words
 * that name no internal address: `unreachable` (the check threw: its error,
 * which may hold a host and port, goes to the log) or `timed out after N ms`.
 */
async function probe(name: string, check: () => Promise<void>, clock: Clock, timeoutMs: number, logger: Logger): Promise<string | null> {
  const stop = new AbortController();
  const timeout = clock.sleep(timeoutMs, stop.signal).then(
    () => `timed out after ${timeoutMs} ms`,
    () => null, // aborted: the check settled first
  );
  const outcome = Promise.resolve().then(check).then(
    () => null,
    (e: unknown) => {
      logger.warn(`readyz: the ${name} check failed`, { check: name, ...errorFields(e) });
      return 'unreachable';
    },
  );
  try {
    const why = await Promise.race([outcome, timeout.then((t) => t ?? outcome)]);
    if (why?.startsWith('timed out')) logger.warn(`readyz: the ${name} check ${why}`, { check: name, timeoutMs });
    return why;
  } finally {
    stop.abort();
  }
}

export const healthRoutes: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const timeoutMs = deps.limits.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const logger = deps.logger ?? silentLogger;

  app.get(
    '/healthz',
    { schema: { operationId: 'healthz', security: [], summary: 'Liveness', description: 'Answers 200 while the process serves requests; it checks nothing else. Like every route, 503 ATS_ERR_NOT_READY once the server is shutting down.', tags: ['health'], response: { 200: described(ref(HealthView), 'Alive'), ...publicErrorResponses() } } },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    { schema: { operationId: 'readyz', security: [], summary: 'Readiness: database and log reachable', description: 'Answers 200 when the database (and the log, in a process that has one) answer within the readiness timeout, else 503 ATS_ERR_NOT_READY naming what failed (unreachable, or timed out; the details go to the log): a load balancer stops sending traffic on 503.', tags: ['health'], response: { 200: described(ref(ReadyView), 'Ready'), ...publicErrorResponses(503) } } },
    async () => {
      const { checks } = deps;
      const hasLog = typeof checks.log === 'function';
      const [db, lg] = await Promise.all([
        probe('database', () => checks.database(), deps.clock, timeoutMs, logger),
        hasLog ? probe('log', () => checks.log!(), deps.clock, timeoutMs, logger) : Promise.resolve(null),
      ]);
      const failed = [db && `database: ${db}`, lg && `log: ${lg}`].filter(Boolean);
      if (failed.length) throw new AtsError('ATS_ERR_NOT_READY', `Not ready: ${failed.join('; ')}`);
      return { database: 'ok' as const, log: hasLog ? ('ok' as const) : ('absent' as const) };
    },
  );
};
