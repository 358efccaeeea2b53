/**
 * What the API needs from the engine, handed to `buildApp` by the composition
 * root. The app reads no environment and opens no connection of its own.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { BackoffPolicy } from '../machines/backoff.js';
import { MAX_NESTING_DEPTH } from '../machines/json-integers.js';
import type { Advisor } from '../engine/advisor/advisor.js';
import type { Metrics } from '../engine/metrics.js';
import type { AuthMode } from '../engine/auth.js';
import type { AuditStore, Clock, KeyStore, JobStore, LimitStore, Logger, ProgressStore, WorkerRegistryStore } from '../engine/ports.js';
import type { Tracer } from '../engine/tracing.js';
import type { TransitionService } from '../engine/transitions.js';
import type { ScheduleService } from '../engine/schedules.js';
import type { WorkflowService } from '../engine/workflows.js';

/** Defaults a submit gets for the fields it leaves out. */
export interface SubmitDefaults {
  /** @defaultValue 'default' (chosen by the composition root) */
  queue: string;
  maxAttempts: number;
  backoff: BackoffPolicy;
  timeoutMs: number;
  priority: number;
}

export interface AppLimits {
  /** Largest request body; a larger one is answered 413. At most MAX_BODY_LIMIT_BYTES (4 MiB): `buildApp` throws above. @defaultValue 1 MiB */
  bodyLimitBytes: number;
  /**
   * Largest body of `POST /v1/jobs/batch` (up to 1,000 jobs); each job in it
   * is still held to `bodyLimitBytes`. @defaultValue 16 MiB
   */
  batchBodyLimitBytes?: number;
  /**
   * Deepest nesting of a job payload (`{}` and `[]` count one level each). A
   * 1 MiB body can nest half a million levels; JSON.parse copes, but the
   * recursive JSON.stringify of the store and of the idempotency hash
   * overflows the stack at a few thousand (a 500), and MySQL's JSON type stops
   * at 100. @defaultValue 32
   */
  maxPayloadDepth?: number;
  /**
   * Workflow waits (`/wait`, a start with `?wait=`) open at once per API key
   * (per address without one), and in the process; the keys of a tenant other than the default together
   * hold at most a quarter of the process's. One more is a 429
   * ATS_ERR_TOO_MANY_WAITS. @defaultValue MAX_WAITS_PER_KEY, MAX_WAITS (100, 1,000)
   */
  workflowWaits?: { perKey: number; max: number };
  /**
   * Most bytes of stored payloads and snapshots (results, last errors) on one
   * page of `GET /v1/jobs`, and of inputs and states on one of `GET
   * /v1/workflows`, and of events' data on one of `GET
   * /v1/workflows/:id/events`: a page stops before the item that would pass
   * it (the first always comes) and gives a `nextCursor` (`next`). 500 jobs of 1 MiB
   * payloads would be half a gigabyte in memory and past the longest string
   * JSON can be written to. @defaultValue DEFAULT_LIST_PAGE_BYTES (8 MiB)
   */
  listPageBytes?: number;
  /** How long /readyz waits for one check before calling it failed. @defaultValue 2000 */
  readyTimeoutMs?: number;
  /** Time to receive the request line and headers; then 408. @defaultValue 10000 */
  headersTimeoutMs?: number;
  /** Time to receive the whole request (headers and body); then 408. @defaultValue 30000 */
  requestTimeoutMs?: number;
  /** Longest silence while a request body arrives; then 408 and the connection is closed. @defaultValue 10000 */
  bodyTimeoutMs?: number;
  /** How long an idle kept-alive connection stays open. @defaultValue 5000 */
  keepAliveTimeoutMs?: number;
  /** Connections open at once (requests, kept-alive ones and streams); beyond, a new one is closed as it comes. @defaultValue 10000 */
  maxConnections?: number;
}

export interface ReadinessChecks {
  /** Resolves when the database answers; throws otherwise. */
  database(): Promise<void>;
  /** Resolves when the log (Kafka, or the in-process log) answers. Absent: not checked. */
  log?(): Promise<void>;
}

/** An extra encapsulated plugin (the stream and the UI register here). */
export type AppPlugin = (app: FastifyInstance) => Promise<void>;

/** API keys (server/auth.ts, docs/security.md). */
export interface AuthDeps {
  keys: KeyStore;
  /** `auto`: keys required once one exists; `on`: always; `off`: never. */
  mode: AuthMode;
  /** A new key id (a ULID). */
  newKeyId(): string;
  /** `n` random bytes (a key's secret). */
  randomBytes(n: number): Uint8Array;
}

/** What guards the API beyond keys (server/security.ts, docs/security.md). */
export interface SecurityOptions {
  /** Browser origins CORS allows; empty: CORS off. @defaultValue [] */
  corsOrigins: readonly string[];
  /** Host header values answered; empty: loopback names when `loopback`, else any. @defaultValue [] */
  allowedHosts: readonly string[];
  /** Whether the API is bound to loopback only. @defaultValue true */
  loopback: boolean;
  /** Requests per minute per key (per address without one), and TENANT_RATE_KEYS times that per tenant other than the default (server/security.ts); 0: none. @defaultValue 6000 */
  rateLimitPerMinute: number;
  /** WebSocket stream connections open at once per key (per address without one). @defaultValue 50 */
  streamMaxPerKey: number;
  /**
   * The reverse proxies whose X-Forwarded-For is believed (addresses, CIDRs, or proxy-addr's `loopback`,
   * `linklocal`, `uniquelocal`): from one of them, a request's address (`request.ip`, what the per-address
   * counts take) is the client's it names; from any other peer, the peer's own. Any listed also means the
   * API is exposed through a proxy: `auto` is then never open without keys. Empty: none, the TCP peer is
   * the client. @defaultValue []
   */
  trustProxy: readonly string[];
}

export const DEFAULT_SECURITY: Readonly<SecurityOptions> = Object.freeze({
  corsOrigins: [], allowedHosts: [], loopback: true, rateLimitPerMinute: 6000, streamMaxPerKey: 50, trustProxy: [],
});

export interface AppDeps {
  transitions: TransitionService;
  /** API keys: given, every route but health, metrics, the UI's files and the docs needs a key (see AuthDeps.mode). Omit: open, every caller the default tenant with every scope. */
  auth?: AuthDeps;
  /** Where operator actions are recorded with the key that did them. Omit: not recorded. Key changes are recorded by `auth.keys` in the change's own transaction, on the audit log of the same database. */
  audit?: AuditStore;
  /** @defaultValue DEFAULT_SECURITY */
  security?: Partial<SecurityOptions>;
  /** Worker presence: `GET /v1/workers` and `unserved` in `/v1/stats` are served when given. @defaultValue none */
  workers?: Pick<WorkerRegistryStore, 'listWorkers'>;
  /** Cron schedules: the /v1/schedules routes are served when given. @defaultValue none */
  schedules?: ScheduleService;
  /** Workflow instances (engine/workflows.ts): the /v1/workflows routes are served when given. @defaultValue none */
  workflows?: WorkflowService;
  /**
   * Concurrency and rate limits by key (engine/limits.ts): the /v1/limits
   * routes are served when given. (Not `limits`: that is the request limits.)
   * @defaultValue none
   */
  limitStore?: LimitStore;
  store: JobStore;
  clock: Clock;
  /** ETAs on `GET /v1/jobs/:id` and `GET /v1/insights` (engine/advisor/). Omit: no ETA, and insights say `off`. */
  advisor?: Pick<Advisor, 'eta' | 'insights'>;
  /**
   * Where handlers' progress is stored (`ctx.progress`): `GET /v1/jobs/:id`
   * shows the job's latest. Omit: its `progress` is always null.
   */
  progress?: Pick<ProgressStore, 'getProgress'>;
  /** Registered handler types; a submit of another type is answered 422. Omit to accept any. */
  knownTypes?: () => readonly string[];
  /** The payload schema check of the handlers that declare one (defineHandler): a misfit is a 400. Omit to check none. */
  checkPayload?: (type: string, payload: unknown) => string | null;
  /** For /readyz: each resolves or throws. */
  checks: ReadinessChecks;
  limits: AppLimits;
  defaults: SubmitDefaults;
  /**
   * Where the API logs (the engine's logger: one log for the whole process).
   * Every 5xx is logged here with its request id (a 503 at debug while its
   * outage's warning is less than a minute old: server/error-log.ts). @defaultValue silent
   */
  logger?: Logger;
  /** Where each response is counted (`httpResponded`: `ats_http_responses_total`). @defaultValue none */
  metrics?: Pick<Metrics, 'httpResponded'>;
  /**
   * fastify's own logger: the pino instance behind `logger`, so request lines
   * (with fastify's `reqId`) and the engine's are one stream. @defaultValue off
   */
  loggerInstance?: FastifyBaseLogger;
  plugins?: AppPlugin[];
  /**
   * Traces the submits (engine/tracing.ts): each gets a server span, and the
   * jobs it creates keep its trace context. Omit for no tracing work at all.
   */
  tracer?: Tracer;
}

export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;
/**
 * The largest `ATS_BODY_LIMIT_BYTES`: a job's payload is stored in one row, and
 * on MariaDB one statement holds at most `max_allowed_packet` (16 MiB by
 * default). A payload's JSON can double when escaped into SQL (a string of
 * backslashes), so 4 MiB leaves room; a larger body than the database can take
 * was a 500 at submit.
 */
export const MAX_BODY_LIMIT_BYTES = 4 * 1024 * 1024;
export const DEFAULT_BATCH_BODY_LIMIT_BYTES = 16 * 1024 * 1024;
/** The nesting a payload may have unless `limits.maxPayloadDepth` says otherwise: the bound a handler's result has too. */
export const DEFAULT_MAX_PAYLOAD_DEPTH = MAX_NESTING_DEPTH;
export const DEFAULT_LIST_PAGE_BYTES = 8 * 1024 * 1024;
export const DEFAULT_READY_TIMEOUT_MS = 2000;

/** Route plugins receive the deps as their options. */
export interface RouteOptions {
  deps: AppDeps;
}
