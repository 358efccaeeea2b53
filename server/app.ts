/**
 * The HTTP app: REST v1, health, OpenAPI. `buildApp` returns it ready but not
 * listening (tests use `app.inject()`); only the entry point calls `listen()`.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { AtsError } from '../engine/errors.js';
import { silentLogger } from '../engine/logger.js';
import { NO_METRICS, type Metrics } from '../engine/metrics.js';
import { CLOSE_DRAIN_MS, DEFAULT_CONNECTION_LIMITS, LINGER_MS, installBodyTimeout, installCloseDrain, installConnectionCap, installExpectationCheck, installHalfCloseAnswers, installLingeringClose, installPipelineGate, installUpgradeGuard, serverTimeouts } from './connections.js';
import { DEFAULT_BODY_LIMIT_BYTES, MAX_BODY_LIMIT_BYTES, type AppDeps } from './deps.js';
import { frameworkErrorHandler, installErrorHandlers, onClientError } from './error-handler.js';
import { routeOf, ServerErrorLog } from './error-log.js';
import { installAuth } from './auth.js';
import { installJsonParser } from './json-body.js';
import { installRateLimit, installSecurity, securityOptionsOf } from './security.js';
import { registerOpenApi } from './openapi.js';
import { RequestLog } from './request-log.js';
import { LIMIT_SCHEMAS, MAX_NAME_CHARS, SCHEDULE_SCHEMAS, SHARED_SCHEMAS, WORKER_SCHEMAS, WORKFLOW_GRAPH_SCHEMAS, WORKFLOW_SCHEMAS } from './schemas.js';
import { AUDIT_SCHEMAS, KEY_SCHEMAS } from './key-schemas.js';
import { auditRoutes } from './routes/audit.js';
import { keyRoutes } from './routes/keys.js';
import { healthRoutes } from './routes/health.js';
import { jobActionRoutes } from './routes/job-actions.js';
import { jobDeleteRoute } from './routes/job-delete.js';
import { edgeStatsRoute } from './routes/edges.js';
import { outboxStatsRoute } from './routes/outbox.js';
import { insightsRoute } from './routes/insights.js';
import { jobsReadRoutes } from './routes/jobs-read.js';
import { jobVerifyRoute } from './routes/job-verify.js';
import { limitRoutes } from './routes/limits.js';
import { metaRoutes } from './routes/meta.js';
import { scheduleRoutes } from './routes/schedules.js';
import { submitRoute } from './routes/submit.js';
import { submitBatchRoute } from './routes/submit-batch.js';
import { workersRoute } from './routes/workers.js';
import { workflowRoutes } from './routes/workflows.js';
import { workflowDeleteRoute } from './routes/workflow-delete.js';
import { workflowGraphRoute } from './routes/workflow-graph.js';
import { createValidatorCompiler, formatValidationError, refuseUndeclaredInput } from './validation.js';

export type { AppDeps, AppLimits, AppPlugin, AuthDeps, ReadinessChecks, SecurityOptions, SubmitDefaults } from './deps.js';

/** Build the app from its deps; resolves once every plugin is loaded. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const logger = deps.logger ?? silentLogger;
  const errors = new ServerErrorLog(logger, deps.clock);
  const limits = { ...DEFAULT_CONNECTION_LIMITS, ...definedOnly(deps.limits) };
  if ((deps.limits.bodyLimitBytes ?? 0) > MAX_BODY_LIMIT_BYTES) {
    throw new RangeError(`limits.bodyLimitBytes is ${deps.limits.bodyLimitBytes}: at most ${MAX_BODY_LIMIT_BYTES}, what one MariaDB statement holds of a payload`);
  }
  const timeouts = serverTimeouts(limits);
  const app = Fastify({
    ...timeouts,
    // Node answers an HTTP/1.1 request without a Host with a bare 400 of its own (no body, no code):
    // the Host check (server/security.ts) refuses it as the API refuses bad input.
    http: { ...timeouts.http, requireHostHeader: false },
    // One log per process: fastify logs through the engine's pino (request ids
    // as `reqId`), each request's completion at debug (see request-log.ts); the
    // 5xx errors go to the engine's logger (see error-handler.ts).
    ...(deps.loggerInstance ? { loggerInstance: deps.loggerInstance, logController: new RequestLog() } : { logger: false }),
    bodyLimit: deps.limits.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    schemaErrorFormatter: formatValidationError,
    frameworkErrors: frameworkErrorHandler(errors),
    clientErrorHandler: onClientError,
    // The longest parameter of ours is a limit's key (a name: at most 200 chars, as decoded); anything longer
    // is a 400 without being matched (a job id is 26 chars, a schedule name at most 100).
    routerOptions: { maxParamLength: MAX_NAME_CHARS },
    // Our own gate below answers {code, message}; fastify's writes a body of its own.
    return503OnClosing: false,
    // `request.ip` (what the per-address counts take) is the client's from X-Forwarded-For only when the
    // peer is a listed proxy; never `true`, which would let any client that reaches us directly pick its address.
    trustProxy: trustProxyOf(deps),
  });
  // The named schemas (components of the OpenAPI document) that route schemas `$ref`:
  // fastify's serializer finds them through addSchema, our validators through their Ajv.
  // The schedule, worker, limit and workflow routes' schemas only with those routes: the document holds no component no route uses.
  const shared = [
    ...SHARED_SCHEMAS, ...(deps.schedules ? SCHEDULE_SCHEMAS : []), ...(deps.workers ? WORKER_SCHEMAS : []), ...(deps.limitStore ? LIMIT_SCHEMAS : []),
    ...(deps.workflows ? [...WORKFLOW_SCHEMAS, ...WORKFLOW_GRAPH_SCHEMAS] : []),
    ...(keysServed(deps) ? KEY_SCHEMAS : []), ...(deps.audit ? AUDIT_SCHEMAS : []),
  ];
  for (const schema of shared) app.addSchema(schema);
  app.setValidatorCompiler(createValidatorCompiler(shared));
  installErrorHandlers(app, errors);
  // First of all hooks: it must see a connection's requests in the order they came (see it).
  installPipelineGate(app);
  // A client quoting this id (and our log lines carrying it) points at one request.
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  installResponseHook(app, errors, deps.metrics ?? NO_METRICS);
  installShutdownGate(app);
  // In this order: Host/Origin/CORS first, then who calls (request.principal), then how often they may.
  await installSecurity(app, deps);
  installAuth(app, deps);
  await installRateLimit(app, deps);
  installUpgradeGuard(app);
  installExpectationCheck(app);
  installHalfCloseAnswers(app);
  installBodyTimeout(app, limits.bodyTimeoutMs);
  installLingeringClose(app, LINGER_MS);
  installCloseDrain(app, CLOSE_DRAIN_MS);
  installConnectionCap(app, limits.maxConnections, logger, () => deps.clock.now());
  installJsonParser(app);
  refuseUndeclaredInput(app);
  await registerOpenApi(app);

  const opts = { deps };
  await app.register(submitRoute, opts);
  await app.register(submitBatchRoute, opts);
  await app.register(jobsReadRoutes, opts);
  await app.register(jobActionRoutes, opts);
  await app.register(jobDeleteRoute, opts);
  await app.register(jobVerifyRoute, opts);
  if (deps.schedules) await app.register(scheduleRoutes, opts);
  if (deps.workflows) await app.register(workflowRoutes, opts);
  if (deps.workflows) await app.register(workflowDeleteRoute, opts);
  if (deps.workflows) await app.register(workflowGraphRoute, opts);
  await app.register(metaRoutes, opts);
  if (deps.workers) await app.register(workersRoute, opts);
  if (deps.limitStore) await app.register(limitRoutes, opts);
  if (keysServed(deps)) await app.register(keyRoutes, opts);
  if (deps.audit) await app.register(auditRoutes, opts);
  await app.register(edgeStatsRoute, opts);
  await app.register(outboxStatsRoute, opts);
  await app.register(insightsRoute, opts);
  await app.register(healthRoutes, opts);
  for (const plugin of deps.plugins ?? []) await app.register(plugin);

  await app.ready();
  return app;
}

/**
 * The /v1/keys routes: with keys, but not under ATS_AUTH=off, where every
 * caller would be an admin making keys that count the day keys are turned on
 * (make them with `ats keys create` then).
 */
const keysServed = (deps: AppDeps): boolean => deps.auth !== undefined && deps.auth.mode !== 'off';

/** Fastify's `trustProxy` of the security options: the listed proxies, or false (none: the TCP peer is the client). */
function trustProxyOf(deps: AppDeps): string[] | false {
  const listed = securityOptionsOf(deps).trustProxy;
  return listed.length > 0 ? [...listed] : false;
}

/** `o` without its undefined fields, so they do not hide defaults in a spread. */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Every response, once sent: counted (`ats_http_responses_total`), and shown
 * to the error log, for which a 2xx may end an outage (server/error-log.ts).
 * Added on the root before any route, so every plugin's routes, and the
 * not-found handler's answers, pass here; what fastify answers before routing
 * (frameworkErrors, a request Node could not parse) runs no hook.
 */
function installResponseHook(app: FastifyInstance, errors: ServerErrorLog, metrics: Pick<Metrics, 'httpResponded'>): void {
  app.addHook('onResponse', async (request, reply) => {
    metrics.httpResponded(request.method, routeOf(request), reply.statusCode);
    errors.responded(request, reply.statusCode);
  });
}

/** Once `close()` starts, requests on kept-alive connections get 503 ATS_ERR_NOT_READY. */
function installShutdownGate(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    reply.header('connection', 'close');
    throw new AtsError('ATS_ERR_NOT_READY', 'The server is shutting down');
  });
}
