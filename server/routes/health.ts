/**
 * `GET /healthz`: the process answers. `GET /readyz`: its dependencies answer
 * too (a load balancer stops sending traffic on 503). Each check is bounded by
 * a timeout so a hung database makes /readyz fail rather than hang.
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import type { Clock } from '../../engine/ports.js';
import { DEFAULT_READY_TIMEOUT_MS, type RouteOptions } from '../deps.js';
import { described, errorResponses, HealthView, ReadyView, ref } from '../schemas.js';

/** null when `check` resolved within `timeoutMs`, else why it failed. */
async function probe(check: () => Promise<void>, clock: Clock, timeoutMs: number): Promise<string | null> {
  const stop = new AbortController();
  const timeout = clock.sleep(timeoutMs, stop.signal).then(
    () => `timed out after ${timeoutMs} ms`,
    () => null, // aborted: the check settled first
  );
  const outcome = Promise.resolve().then(check).then(
    () => null,
    (e: unknown) => (e instanceof Error ? e.message : String(e)).slice(0, 200) || 'failed',
  );
  try {
    return await Promise.race([outcome, timeout.then((t) => t ?? outcome)]);
  } finally {
    stop.abort();
  }
}

export const healthRoutes: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const timeoutMs = deps.limits.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;

  app.get(
    '/healthz',
    { schema: { operationId: 'healthz', summary: 'Liveness', description: 'Answers 200 while the process serves requests; it checks nothing else.', tags: ['health'], response: { 200: described(ref(HealthView), 'Alive') } } },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    { schema: { operationId: 'readyz', summary: 'Readiness: database and log reachable', description: 'Answers 200 when the database (and the log, in a process that has one) answer within the readiness timeout, else 503 ATS_ERR_NOT_READY naming what failed: a load balancer stops sending traffic on 503.', tags: ['health'], response: { 200: described(ref(ReadyView), 'Ready'), ...errorResponses(503) } } },
    async () => {
      const { checks } = deps;
      const hasLog = typeof checks.log === 'function';
      const [db, lg] = await Promise.all([
        probe(() => checks.database(), deps.clock, timeoutMs),
        hasLog ? probe(() => checks.log!(), deps.clock, timeoutMs) : Promise.resolve(null),
      ]);
      const failed = [db && `database: ${db}`, lg && `log: ${lg}`].filter(Boolean);
      if (failed.length) throw new AtsError('ATS_ERR_NOT_READY', `Not ready: ${failed.join('; ')}`);
      return { database: 'ok' as const, log: hasLog ? ('ok' as const) : ('absent' as const) };
    },
  );
};
