/**
 * Configuration, compiled once: raw options in (strings from the environment
 * or flags, or values from code), defaults applied, everything validated, the
 * result frozen. Only the entry point reads `process.env`; it hands the raw
 * values here.
 */
import { isIP, isIPv6 } from 'node:net';
import { DEFAULT_BACKOFF, type BackoffPolicy } from '../machines/backoff.js';
import { ADVISOR_MODES, type AdvisorMode } from '../engine/advisor/types.js';
import { EVENTS_FORMATS, type EventsFormat } from '../engine/transition-records.js';
import { AtsError } from '../engine/errors.js';
import { AUTH_MODES, isLoopbackHost, type AuthMode } from '../engine/auth.js';
import { MAX_NAME_CHARS, NAME_PATTERN } from '../server/schemas.js';
import { MAX_BODY_LIMIT_BYTES } from '../server/deps.js';
import { hostNameOf } from '../server/security.js';
import { defaultMaxConnections, MIN_MAX_CONNECTIONS } from '../server/connections.js';
import { parseDurationMs } from './duration.js';
import type { LogFormat, LogLevel } from '../engine/logger.js';

export const ROLES = ['api', 'relay', 'worker', 'timers'] as const;
export type Role = (typeof ROLES)[number];

/** Every setting, with the environment variable that sets it (the README's table is generated from this). */
export const SETTINGS = {
  roles: { env: 'ATS_ROLES', flag: '--role', default: 'api,relay,worker,timers', doc: 'Roles this process runs, comma-separated: api, relay, worker, timers, or all.' },
  port: { env: 'PORT', flag: '--port', default: '3000', doc: 'HTTP port of the api role.' },
  host: { env: 'HOST', flag: '--host', default: '127.0.0.1', doc: 'Interface the api role listens on (0.0.0.0 in containers): an address (an IPv6 one bare or in brackets) or a name, without a port.' },
  metricsPort: { env: 'ATS_METRICS_PORT', flag: '--metrics-port', default: '', doc: 'Serve Prometheus metrics at /metrics on this port too (on HOST), whatever the roles (to the Host names the API answers: ATS_ALLOWED_HOSTS, and to any IP-address Host, a scrape by pod IP), and /healthz (a liveness probe, to any Host): for processes without the api role, whose API port serves both already (with the api role, a port other than PORT). Empty: off.' },
  mysqlUrl: { env: 'MYSQL_URL', flag: '--mysql-url', default: '', doc: 'mysql://user:pass@host:3306/db (percent-encode @ # / % in the password). Query parameters pass to the driver (mysql2) as its options, of the connection only: ssl (e.g. ?ssl={"rejectUnauthorized":true}, URL-encoded), socketPath, localAddress, compress, flags, insecureAuth, enableCleartextPlugin, connectAttributes, keepAliveInitialDelay, maxIdle, idleTimeout, queueLimit, waitForConnections, maxPreparedStatements, timezone; any other stops the start. The database is the scheduler\'s own: one holding a table of its names (jobs, outbox, …) that it did not make stops the start. Empty: the embedded SQLite store.' },
  mysqlQueryTimeoutMs: { env: 'ATS_MYSQL_QUERY_TIMEOUT_MS', flag: '--mysql-query-timeout-ms', default: '60000', doc: 'Longest wait for MySQL to answer one statement, and for a pooled connection to run it on; then the operation fails as the store being unavailable (the API answers 503) and the connection is dropped, so a server that stops answering (a network partition) holds nothing for ever, however many requests wait for the pool. Keep it above innodb_lock_wait_timeout (50 s by default). Migrations are not bounded by it.' },
  kafkaBrokers: { env: 'KAFKA_BROKERS', flag: '--kafka-brokers', default: '', doc: 'host:port,host:port. Empty: the in-process log (one process only).' },
  topicPrefix: { env: 'ATS_TOPIC_PREFIX', flag: '--topic-prefix', default: '', doc: 'Prefix of the Kafka topics (ats.dispatch and its lanes, ats.events, ats.dlq, ats.workflows) and of the scheduler\'s consumer groups.' },
  eventsFormat: { env: 'ATS_EVENTS_FORMAT', flag: '--events-format', default: 'batch', doc: 'How transitions go to ats.events: batch (those of one publish whose jobs map to one partition as one record, `ats-kind: transitions`) or single (a record each, `ats-kind: transition`). See docs/kafka-messages.md.' },
  kafkaPartitions: { env: 'ATS_KAFKA_PARTITIONS', flag: '--kafka-partitions', default: '3', doc: 'Partitions of each topic when the scheduler creates it.' },
  kafkaReplicationFactor: { env: 'ATS_KAFKA_REPLICATION_FACTOR', flag: '--kafka-replication-factor', default: '', doc: 'Replicas of each topic when the scheduler creates it (at most the brokers the cluster has; 3 on a cluster of three or more, so that a broker lost loses nothing). Empty: the broker\'s `default.replication.factor`, which is 1 unless the cluster sets it. Topics that exist already keep theirs.' },
  dataDir: { env: 'ATS_DATA_DIR', flag: '--data-dir', default: './data', doc: 'Folder of the embedded SQLite file (ats.sqlite); one scheduler at a time (a start on a folder a running one holds exits 2).' },
  logLevel: { env: 'LOG_LEVEL', flag: '--log-level', default: 'info', doc: 'debug, info, warn, error or silent.' },
  logFormat: { env: 'LOG_FORMAT', flag: '--log-format', default: 'json', doc: 'json (one JSON object a line) or pretty (readable lines, for development).' },
  concurrency: { env: 'ATS_WORKER_CONCURRENCY', flag: '--concurrency', default: '10', doc: 'Handlers a worker runs at once (a handler still running after its attempt was given up keeps its slot).' },
  leaseMs: { env: 'ATS_LEASE_MS', flag: '--lease-ms', default: '30000', doc: 'How long a claimed attempt holds without a heartbeat.' },
  heartbeatMs: { env: 'ATS_HEARTBEAT_MS', flag: '--heartbeat-ms', default: '10000', doc: 'Automatic heartbeat period (must be below the lease).' },
  shutdownGraceMs: { env: 'ATS_SHUTDOWN_GRACE_MS', flag: '--shutdown-grace-ms', default: '10000', doc: 'On SIGTERM, how long running handlers may finish before they are aborted (their attempts then count as failed).' },
  queues: { env: 'ATS_QUEUES', flag: '--queues', default: '', doc: 'Queues a worker serves (comma-separated names, e.g. email,reports): it receives only their jobs. Empty: every queue, including those that appear later. See docs/queues.md.' },
  workerGroup: { env: 'ATS_WORKER_GROUP', flag: '--worker-group', default: 'ats-workers', doc: 'Consumer group of the workers (of the `ats.dispatch` lane; each other lane is read in `<group>.<lane>`). Give the timers\' processes the same: they ask Kafka what this group has not read.' },
  relayBatch: { env: 'ATS_RELAY_BATCH', flag: '--relay-batch', default: '500', doc: 'Messages the relay publishes per batch (whole outbox rows until it has this many).' },
  relayPollMs: { env: 'ATS_RELAY_POLL_MS', flag: '--relay-poll-ms', default: '50', doc: 'Poll of the relay for commits of other processes (it is woken at once by commits in its own process).' },
  relayPublishedDelayMs: { env: 'ATS_RELAY_PUBLISHED_DELAY_MS', flag: '--relay-published-delay-ms', default: '200', doc: 'How long after a dispatch went out the relay records PUBLISHED (none for a job a worker started meanwhile); at most 60000, and at most half of ATS_PUBLISHED_TIMEOUT_MS.' },
  timersPollMs: { env: 'ATS_TIMERS_POLL_MS', flag: '--timers-poll-ms', default: '250', doc: 'How often the timers look for due jobs, expired leases and stale dispatches.' },
  retentionDone: { env: 'ATS_RETENTION_DONE', flag: '--retention-done', default: '7d', doc: 'How long a done job (and its events and Idempotency-Key) is kept after its last transition, then the timers delete it; a done workflow instance likewise after its last step. A duration: 7d, 12h, 30m, 60s, 500ms or plain ms.' },
  retentionDead: { env: 'ATS_RETENTION_DEAD', flag: '--retention-dead', default: '30d', doc: 'The same for dead and cancelled jobs (they can be redriven until then), and for workflow instances ended in error or cancelled. `0` (either setting) deletes at the timers\' next retention pass, within a minute (retention runs once a minute, at once again after a full batch): nothing left to redrive, the `Idempotency-Key` free again.' },
  retentionAudit: { env: 'ATS_RETENTION_AUDIT', flag: '--retention-audit', default: '90d', doc: 'How long an audit log entry (an operator\'s cancel, redrive, delete or key change) is kept after it was recorded, then the timers delete it. A duration, as above.' },
  publishedTimeoutMs: { env: 'ATS_PUBLISHED_TIMEOUT_MS', flag: '--published-timeout-ms', default: '300000', doc: 'A job dispatched this long ago (published or still pending) and not started is dispatched again, unless its dispatch still waits unread by the workers of its lane or no live worker can run it.' },
  bodyLimitBytes: { env: 'ATS_BODY_LIMIT_BYTES', flag: '--body-limit-bytes', default: '1048576', doc: 'Largest request body the API accepts: at most 4 MiB (4194304), what one MariaDB statement holds of a payload at its default `max_allowed_packet`; a larger value stops the start (ATS_ERR_CONFIG).' },
  batchBodyLimitBytes: { env: 'ATS_BATCH_BODY_LIMIT_BYTES', flag: '--batch-body-limit-bytes', default: '16777216', doc: 'Largest body of `POST /v1/jobs/batch` (up to 1,000 jobs; each still within the body limit), at least ATS_BODY_LIMIT_BYTES. A larger batch is a 413: split it.' },
  httpHeadersTimeoutMs: { env: 'ATS_HTTP_HEADERS_TIMEOUT_MS', flag: '--http-headers-timeout-ms', default: '10000', doc: 'Time a client has to send the request line and headers; then 408 and the connection is closed. At most the request timeout.' },
  httpRequestTimeoutMs: { env: 'ATS_HTTP_REQUEST_TIMEOUT_MS', flag: '--http-request-timeout-ms', default: '30000', doc: 'Time a client has to send the whole request, headers and body; then 408 and the connection is closed.' },
  httpBodyTimeoutMs: { env: 'ATS_HTTP_BODY_TIMEOUT_MS', flag: '--http-body-timeout-ms', default: '10000', doc: 'Longest silence while a request body arrives; then 408 and the connection is closed.' },
  httpKeepAliveTimeoutMs: { env: 'ATS_HTTP_KEEP_ALIVE_TIMEOUT_MS', flag: '--http-keep-alive-timeout-ms', default: '5000', doc: 'How long an idle kept-alive connection stays open (behind a load balancer: above its idle timeout).' },
  httpMaxConnections: { env: 'ATS_HTTP_MAX_CONNECTIONS', flag: '--http-max-connections', default: '10000', doc: 'Connections the API keeps open at once (requests, kept-alive ones and streams: these at most half of them, and 1,000), at least 64; beyond, a new one is closed as it comes (a warning once a minute). Unset: 10000, or half the open-file limit when that is lower (on Linux, the soft "Max open files" of /proc/self/limits, which Node raises to `ulimit -Hn` at start), never below 64, so the database, Kafka, the SQLite file and the handlers keep the other half (said at start, at info). A value not below the limit is kept, with a warning at start: past the limit every open fails (EMFILE) before the cap acts; keep it well below.' },
  auth: { env: 'ATS_AUTH', flag: '--auth', default: 'auto', doc: 'API keys (docs/security.md): auto (required once a key exists; without keys the API is open, and only bound to loopback: on any other HOST the start is refused); on (always required); off (never: every caller acts as the default tenant with every scope; set it only behind a gateway that authenticates).' },
  corsOrigins: { env: 'ATS_CORS_ORIGINS', flag: '--cors-origins', default: '', doc: 'Origins (comma-separated, e.g. https://ops.example.com) whose pages may call the API from a browser. Empty: none (CORS off).' },
  allowedHosts: { env: 'ATS_ALLOWED_HOSTS', flag: '--allowed-hosts', default: '', doc: 'Host header values the API answers, and the /metrics of ATS_METRICS_PORT (comma-separated names or addresses, port optional; not URLs), against DNS rebinding. Empty: on loopback, localhost and loopback addresses only; on any other interface, any host. /metrics, on either port, answers any IP-address Host too (10.1.2.3:9464, [fd00::1]:9464), as rebinding always names a host name.' },
  trustProxy: { env: 'ATS_TRUST_PROXY', flag: '--trust-proxy', default: '', doc: 'Reverse proxies (comma-separated addresses or CIDRs, IPv4 or IPv6, e.g. 10.0.0.5,fd00::/64; or loopback, linklocal, uniquelocal) whose X-Forwarded-For the API believes: a request from one of them is counted (the per-address rate limit, stream cap and workflow waits, failed API keys) as the client it names, a request from any other peer as that peer. List only the proxies: a listed address can say it is anyone. Not `true` (every peer, which lets any client that reaches the server directly choose its address), nor a range wider than /8 (IPv4) or /16 (IPv6). Any listed also keeps ATS_AUTH=auto from serving without keys. Empty: none (every client behind a proxy shares its address). See docs/security.md.' },
  rateLimit: { env: 'ATS_RATE_LIMIT', flag: '--rate-limit', default: '6000', doc: 'Requests per minute per API key (per client address without one), and four times that for all the keys of one tenant other than the default together; over it, 429 with Retry-After. 0: no limit.' },
  streamMaxPerKey: { env: 'ATS_STREAM_MAX_PER_KEY', flag: '--stream-max-per-key', default: '50', doc: 'WebSocket stream connections open at once per API key (per client address without one); one more is refused.' },
  maxQueues: { env: 'ATS_MAX_QUEUES', flag: '--max-queues', default: '100', doc: 'Most queues jobs may name, over all tenants and for good (each keeps three lane topics): a job, schedule or workflow step naming a new queue beyond it is refused (409 ATS_ERR_QUEUE_LIMIT). A tenant other than the default may name a quarter of them. The default queue and queues named before are always admitted. See docs/queues.md.' },
  defaultQueue: { env: 'ATS_DEFAULT_QUEUE', flag: '--default-queue', default: 'default', doc: 'Queue of a job submitted without one.' },
  defaultMaxAttempts: { env: 'ATS_DEFAULT_MAX_ATTEMPTS', flag: '--default-max-attempts', default: '3', doc: 'Attempts of a job submitted without maxAttempts.' },
  defaultTimeoutMs: { env: 'ATS_DEFAULT_TIMEOUT_MS', flag: '--default-timeout-ms', default: '60000', doc: 'Handler timeout of a job submitted without timeoutMs.' },
  handlers: { env: 'ATS_HANDLERS', flag: '--handlers', default: '', doc: 'Modules (comma-separated paths) exporting `handlers` (defineHandler results) and/or `register(registry)` to add your job handlers beside the demo ones.' },
  advisor: { env: 'ATS_ADVISOR', flag: '--advisor', default: 'advise', doc: 'The advisor (docs/advisor.md): off; advise (learns from each job type\'s history and shows insights, ETAs and anomalies, changing nothing); enforce (also stops hopeless retries, times retries from observed recovery and sizes leases from observed run times).' },
  advisorPollMs: { env: 'ATS_ADVISOR_POLL_MS', flag: '--advisor-poll-ms', default: '1000', doc: 'How often the advisor reads new job events (in the api and worker roles).' },
  advisorHistory: { env: 'ATS_ADVISOR_HISTORY', flag: '--advisor-history', default: '100000', doc: 'The advisor re-reads at start the job events among this many of the newest event ids (at most that many events) to rebuild what it learned.' },
  workerId: { env: 'ATS_WORKER_ID', flag: '--worker-id', default: '', doc: 'Name of this worker (default: hostname-pid): at most 255 characters, no control characters.' },
} as const;

export type SettingName = keyof typeof SETTINGS;
export type RawConfig = Partial<Record<SettingName, string | number | undefined>>;

export interface Config {
  roles: readonly Role[];
  port: number;
  host: string;
  /** ATS_METRICS_PORT: a port of its own for /metrics, or null. */
  metricsPort: number | null;
  mysqlUrl: string | null;
  /** ATS_MYSQL_QUERY_TIMEOUT_MS (adapters/mysql/timed-query.ts). */
  mysqlQueryTimeoutMs: number;
  kafkaBrokers: readonly string[] | null;
  topicPrefix: string;
  kafkaPartitions: number;
  /** ATS_KAFKA_REPLICATION_FACTOR, or null: the broker's default. */
  kafkaReplicationFactor: number | null;
  dataDir: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** How transitions go to `ats.events` (engine/transition-records.ts). */
  eventsFormat: EventsFormat;
  /** Handler modules to load (absolute or relative to the working directory). */
  handlers: readonly string[];
  worker: {
    concurrency: number; leaseMs: number; heartbeatMs: number; shutdownGraceMs: number; groupId: string; workerId: string;
    /** The queues served; empty for every queue. */
    queues: readonly string[];
    /** How often the dispatches held back by limits are kept from the timers' re-dispatch: a third of the published timeout. */
    keepHeldMs: number;
  };
  relay: { batchSize: number; pollMs: number; errorBackoffMs: number; publishedDelayMs: number };
  timers: { pollMs: number; batchSize: number; publishedTimeoutMs: number };
  /** Run by the timers role: see engine/retention.ts. */
  retention: { doneMs: number; deadMs: number; auditMs: number; batchSize: number; pollMs: number };
  api: {
    bodyLimitBytes: number; batchBodyLimitBytes: number; headersTimeoutMs: number; requestTimeoutMs: number; bodyTimeoutMs: number; keepAliveTimeoutMs: number;
    maxConnections: number;
    /** Whether ATS_HTTP_MAX_CONNECTIONS set maxConnections; if not, it is `defaultMaxConnections` of the open-file limit. */
    maxConnectionsSet: boolean;
  };
  /** Who may call the API and how much (docs/security.md). */
  security: {
    auth: AuthMode;
    /** Browser origins allowed by CORS; empty: CORS off. */
    corsOrigins: readonly string[];
    /** Host header values answered; empty: see `allowedHosts` in SETTINGS. */
    allowedHosts: readonly string[];
    /** Proxies whose X-Forwarded-For is believed (addresses, CIDRs, proxy-addr's range names); empty: none. */
    trustProxy: readonly string[];
    /** Requests per minute per key or address; 0: unlimited. */
    rateLimitPerMinute: number;
    streamMaxPerKey: number;
  };
  defaults: { queue: string; maxAttempts: number; backoff: BackoffPolicy; timeoutMs: number; priority: number };
  /** ATS_MAX_QUEUES (engine/queue-registry.ts). */
  maxQueues: number;
  /** Run by the api and worker roles: see engine/advisor/advisor.ts. */
  advisor: { mode: AdvisorMode; pollMs: number; historyEvents: number };
  /** The process's open-file limit as the start read it (cli/open-file-limit.ts), or null: unknown or unlimited. */
  openFileLimit: number | null;
}

/** What compileConfig knows of the process it configures. */
export interface HostFacts {
  hostname: string;
  pid: number;
  /** Its open-file limit (cli/open-file-limit.ts `readOpenFileLimit`); null or absent: unknown. */
  openFileLimit?: number | null;
}

const fail = (name: SettingName, msg: string): never => {
  const s = SETTINGS[name];
  throw new AtsError('ATS_ERR_CONFIG', `${s.env} (${s.flag}): ${msg}`);
};

/** Whether the setting was given a value (not missing, not only spaces). */
const isSet = (raw: RawConfig, name: SettingName): boolean => raw[name] !== undefined && String(raw[name]).trim() !== '';

/** The value, trimmed; unset (the default) when missing or only spaces: `Number('')` would read a blank PORT or ATS_RATE_LIMIT as 0. */
function str(raw: RawConfig, name: SettingName): string {
  return isSet(raw, name) ? String(raw[name]).trim() : SETTINGS[name].default;
}

function int(raw: RawConfig, name: SettingName, min: number, max: number): number {
  const text = str(raw, name);
  // Digits only: Number() would also read `1e3`, `0x10` or `0b1` as integers.
  const n = /^-?\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) fail(name, `must be an integer from ${min} to ${max}, got "${text}"`);
  return n;
}

/** The longest duration accepted: 100 years. */
const MAX_DURATION_MS = 100 * 365 * 86_400_000;

/** A duration in ms from `7d`, `12h`, `30m`, `60s`, `500ms` or plain milliseconds. */
function duration(raw: RawConfig, name: SettingName): number {
  const text = str(raw, name);
  const ms = parseDurationMs(text);
  if (!(ms <= MAX_DURATION_MS)) fail(name, `must be a duration like 7d, 12h, 30m, 60s, 500ms or plain milliseconds (at most 100 years), got "${text}"`);
  return ms;
}

function roles(raw: RawConfig): Role[] {
  const list = str(raw, 'roles').split(',').map((r) => r.trim()).filter(Boolean);
  const all = list.includes('all') ? [...ROLES] : list;
  for (const r of all) if (!(ROLES as readonly string[]).includes(r)) fail('roles', `unknown role "${r}" (roles: ${ROLES.join(', ')}, all)`);
  if (all.length === 0) fail('roles', 'no role given');
  return [...new Set(all)] as Role[];
}

const QUEUE_NAME = new RegExp(NAME_PATTERN);

/**
 * Longest topic prefix: Kafka's topic names stop at 249 characters, and the
 * longest name the scheduler makes (a dispatch lane: `ats.dispatch.`, a queue
 * segment of at most 40, a band) is about 60.
 */
const MAX_TOPIC_PREFIX_CHARS = 100;

/** The topic prefix, in the characters Kafka takes in a topic's name (else the broker refuses every topic at start). */
function topicPrefix(raw: RawConfig): string {
  const p = str(raw, 'topicPrefix');
  if (p.length > MAX_TOPIC_PREFIX_CHARS || !/^[A-Za-z0-9._-]*$/.test(p)) {
    fail('topicPrefix', `"${p.slice(0, 60)}" is not a topic prefix (up to ${MAX_TOPIC_PREFIX_CHARS} of A-Z a-z 0-9 . _ -)`);
  }
  return p;
}

/**
 * HOST: an address or a name to resolve, as `listen` takes it. A port or a
 * scheme (`localhost:3000`, `http://0.0.0.0`) would fail the start on
 * getaddrinfo as if the name did not resolve (exit 1, which a supervisor
 * retries for ever), naming no setting. An IPv6 address may be given in
 * brackets.
 */
function listenHost(raw: RawConfig): string {
  const text = str(raw, 'host');
  // `[::1]`, as in a URL: `listen` takes the address without its brackets.
  const bracketed = /^\[(.*)\]$/.exec(text)?.[1];
  const h = bracketed ?? text;
  const ok = bracketed !== undefined ? isIPv6(h) : isIP(h) !== 0 || (h.length <= 253 && /^[A-Za-z0-9_.-]+$/.test(h));
  if (!ok) {
    fail('host', `"${text.slice(0, 100)}" is not a host name or address to listen on (like 127.0.0.1, 0.0.0.0, :: or localhost; no port: PORT sets it)`);
  }
  return h;
}

/** `q`, when the API takes it as a queue name (its pattern and length); else fails naming the setting. */
function queueName(name: SettingName, q: string): string {
  if (q.length > MAX_NAME_CHARS || !QUEUE_NAME.test(q)) {
    fail(name, `"${q.slice(0, 60)}" is not a queue name (1 to ${MAX_NAME_CHARS} of A-Z a-z 0-9 . _ : -)`);
  }
  return q;
}

function queues(raw: RawConfig): string[] {
  const text = str(raw, 'queues');
  if (text === '') return [];
  const list = text.split(',').map((q) => q.trim());
  for (const q of list) {
    if (q === '') fail('queues', 'an empty queue name (two commas, or one at an end)');
    queueName('queues', q);
  }
  return [...new Set(list)];
}

/**
 * The query parameters of MYSQL_URL, which the driver (mysql2) takes as its
 * options: those of the connection's transport and authentication. Any other
 * is refused: one the driver does not know it only printed on the console and
 * ignored (a misspelt `ssl` connected without TLS); one the store sets itself
 * it ignored (`connectTimeout`, `connectionLimit`), or let change what rows
 * look like (`bigNumberStrings`, `rowsAsArray`), which the store cannot read.
 * No credential beside the password (`password2`, `passwordSha1`): messages
 * name the URL with its password masked, and its query as it is.
 */
export const MYSQL_URL_PARAMETERS: readonly string[] = [
  'ssl', 'socketPath', 'localAddress', 'compress', 'flags', 'insecureAuth', 'enableCleartextPlugin', 'connectAttributes',
  'keepAliveInitialDelay', 'maxIdle', 'idleTimeout', 'queueLimit', 'waitForConnections', 'maxPreparedStatements', 'timezone',
];

function mysqlUrl(raw: RawConfig): string | null {
  const text = str(raw, 'mysqlUrl');
  if (!text) return null;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail('mysqlUrl', `is not a URL (expected mysql://user:pass@host:3306/db; in the password, write @ as %40, # as %23, / as %2F and % as %25)`);
  }
  if (url.protocol !== 'mysql:') fail('mysqlUrl', `must start with mysql://, got ${url.protocol}//`);
  if (url.hostname === '') fail('mysqlUrl', 'must name a host, e.g. mysql://root@127.0.0.1:3306/ats');
  // The driver reads port 0 as its default, 3306, while every message would name :0.
  if (url.port === '0') fail('mysqlUrl', 'must name a port from 1 to 65535, or none for 3306');
  if (!url.pathname || url.pathname === '/') fail('mysqlUrl', 'must name a database, e.g. mysql://root@127.0.0.1:3306/ats');
  // The driver percent-decodes these: a stray % failed the start at connect as "URI malformed", naming nothing.
  for (const part of [url.username, url.password, url.hostname, url.pathname.slice(1)]) {
    try {
      decodeURIComponent(part);
    } catch {
      fail('mysqlUrl', 'has a malformed percent-encoding in its user, password, host or database (a % not followed by two hex digits: write % as %25)');
    }
  }
  const seen = new Set<string>();
  for (const [name, value] of url.searchParams) {
    if (!MYSQL_URL_PARAMETERS.includes(name)) fail('mysqlUrl', `unknown query parameter "${name.slice(0, 60)}" (parameters: ${MYSQL_URL_PARAMETERS.join(', ')})`);
    // The driver takes the last: the first would be ignored unsaid.
    if (seen.has(name)) fail('mysqlUrl', `query parameter ${name} is given twice`);
    seen.add(name);
    const problem = mysqlParameterProblem(name, value);
    if (problem) fail('mysqlUrl', `query parameter ${name} ${problem}, got "${value.slice(0, 60)}"`);
  }
  return text;
}

/** Parameters the driver reads as a count or a time in ms, and as a flag (it JSON-parses each value). */
const MYSQL_INTEGER_PARAMETERS: ReadonlySet<string> = new Set(['keepAliveInitialDelay', 'maxIdle', 'idleTimeout', 'queueLimit', 'maxPreparedStatements']);
const MYSQL_BOOLEAN_PARAMETERS: ReadonlySet<string> = new Set(['compress', 'insecureAuth', 'enableCleartextPlugin', 'waitForConnections']);

/**
 * What is wrong with a value of a MYSQL_URL parameter the driver would take
 * without a word (a count that is no number, an unknown timezone: a console
 * line of its own, then UTC), or null. The others' values (ssl, flags, ...)
 * the driver checks when the pool is made (compose.ts names the setting).
 */
function mysqlParameterProblem(name: string, value: string): string | null {
  if (MYSQL_INTEGER_PARAMETERS.has(name)) return /^\d{1,9}$/.test(value) ? null : 'must be an integer from 0 to 999999999';
  if (MYSQL_BOOLEAN_PARAMETERS.has(name)) return value === 'true' || value === 'false' ? null : 'must be true or false';
  // The driver's own pattern; a `+` is a space in a query: write it %2B.
  if (name === 'timezone') return /^(?:local|Z|[ +-]\d\d:\d\d)$/.test(value) ? null : 'must be local, Z or +HH:MM / -HH:MM (write + as %2B)';
  return null;
}

function brokers(raw: RawConfig): string[] | null {
  const text = str(raw, 'kafkaBrokers');
  if (!text) return null;
  const list = text.split(',').map((b) => b.trim()).filter(Boolean);
  // `,` is set, not empty: neither the embedded log nor a Kafka log of no broker (which fails naming nothing).
  if (list.length === 0) fail('kafkaBrokers', `names no broker, got "${text}" (expected host:port,host:port)`);
  for (const b of list) {
    const port = /^[A-Za-z0-9.\-_[\]:]+:(\d{1,5})$/.exec(b)?.[1];
    // A port out of range would pass here and fail only at connect, as an unreachable Kafka (exit 1).
    if (port === undefined || Number(port) < 1 || Number(port) > 65535) fail('kafkaBrokers', `"${b}" is not host:port (a port from 1 to 65535)`);
  }
  return list;
}

/**
 * The longest worker id: the `workers.id` column's (VARCHAR(255), in
 * characters). A longer one fails every presence write on MySQL, and the
 * worker never shows in GET /v1/workers.
 */
const MAX_WORKER_ID_CHARS = 255;

/**
 * ATS_WORKER_ID, or `hostname-pid`. Also the Kafka client id and a line of
 * the console: no control characters (a newline would split a log line).
 */
function workerId(raw: RawConfig, host: { hostname: string; pid: number }): string {
  const id = str(raw, 'workerId') || `${host.hostname}-${host.pid}`;
  if ([...id].length > MAX_WORKER_ID_CHARS) fail('workerId', `"${id.slice(0, 60)}…" is longer than ${MAX_WORKER_ID_CHARS} characters`);
  if (/[\u0000-\u001f\u007f]/.test(id)) fail('workerId', `${JSON.stringify(id.slice(0, 60))} holds a control character`);
  return id;
}

const list = (raw: RawConfig, name: SettingName): string[] => str(raw, name).split(',').map((x) => x.trim()).filter(Boolean);

/**
 * The body limits: a batch's at least one job's, or a batch of one job the
 * API accepts alone would be refused (and the client, splitting a refused
 * batch, would end at that job and fail).
 */
function bodyLimits(raw: RawConfig): { bodyLimitBytes: number; batchBodyLimitBytes: number } {
  const bodyLimitBytes = int(raw, 'bodyLimitBytes', 1024, MAX_BODY_LIMIT_BYTES);
  const batchBodyLimitBytes = int(raw, 'batchBodyLimitBytes', 1024, 256 * 1024 * 1024);
  if (batchBodyLimitBytes < bodyLimitBytes) fail('batchBodyLimitBytes', `must be at least ${SETTINGS.bodyLimitBytes.env} (${bodyLimitBytes} bytes)`);
  return { bodyLimitBytes, batchBodyLimitBytes };
}

/**
 * Each a Host header value as the API compares it (server/security.ts): a
 * name or address, port optional, IPv6 bare or in brackets. Anything else
 * (`http://localhost`, `*`) matches no request: every request would be 421.
 */
function allowedHosts(raw: RawConfig): string[] {
  const all = list(raw, 'allowedHosts');
  for (const h of all) {
    if (hostNameOf(h) === null && !isIPv6(h)) fail('allowedHosts', `"${h.slice(0, 100)}" is not a host name or address (like ops.example.com, ops.example.com:443 or [::1])`);
  }
  return all;
}

/** `https://ops.example.com,http://localhost:5173`: each a scheme, a host and an optional port, nothing else. */
function origins(raw: RawConfig): string[] {
  const all = list(raw, 'corsOrigins');
  for (const o of all) if (!/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(o)) fail('corsOrigins', `"${o.slice(0, 100)}" is not an origin like https://ops.example.com`);
  return all;
}

/** The names of address ranges fastify's `trustProxy` takes (proxy-addr's): 127.0.0.1/8 and ::1; 169.254.0.0/16 and fe80::/10; 10/8, 172.16/12, 192.168/16 and fc00::/7. */
const PROXY_RANGE_NAMES: readonly string[] = ['loopback', 'linklocal', 'uniquelocal'];

/** A range this wide holds far more than proxies: shorter prefixes are refused as trusting every peer. */
const WIDEST_PROXY_PREFIX = { 4: 8, 6: 16 } as const;

/**
 * What `entry` is to fastify's `trustProxy`: an address or CIDR it takes
 * (`ok`); one wider than WIDEST_PROXY_PREFIX (`wide`: `0.0.0.0/1` with
 * `128.0.0.0/1` is every IPv4 peer); or none (`bad`): no zone id
 * (`fe80::1%eth0`, which Node reads and proxy-addr refuses), and an
 * IPv4-mapped one (`::ffff:10.0.0.0/104`) with a prefix of 96 at least
 * (proxy-addr never matches a shorter one).
 */
function proxyRange(entry: string): 'ok' | 'wide' | 'bad' {
  if (PROXY_RANGE_NAMES.includes(entry)) return 'ok';
  const [address, prefix, extra] = entry.split('/');
  const family = isIP(address!);
  if (family === 0 || extra !== undefined || address!.includes('%')) return 'bad';
  if (prefix === undefined) return 'ok';
  const bits = Number(prefix);
  if (!/^\d{1,3}$/.test(prefix) || bits > (family === 4 ? 32 : 128)) return 'bad';
  if (bits < WIDEST_PROXY_PREFIX[family as 4 | 6]) return 'wide';
  return family === 6 && /^::ffff:/i.test(address!) && bits < 96 ? 'bad' : 'ok';
}

/**
 * ATS_TRUST_PROXY: the proxies whose X-Forwarded-For is believed. Never
 * every peer (`true`, `*`, a hop count, a /0): then any client reaching the
 * server directly names its own address, and steps around every
 * per-address count (or spends another client's).
 */
function trustedProxies(raw: RawConfig): string[] {
  const all = list(raw, 'trustProxy');
  for (const p of all) {
    const range = proxyRange(p);
    if (/^(true|yes|on|all|any|\*|\d+)$/i.test(p) || /\/0+$/.test(p) || range === 'wide') {
      fail('trustProxy', `"${p.slice(0, 100)}" would believe X-Forwarded-For from every peer, so any client that reaches the server directly could choose the address it is counted by: list the proxies' addresses or CIDRs (like 10.0.0.5 or 10.0.0.0/24)`);
    }
    if (range === 'bad') {
      fail('trustProxy', `"${p.slice(0, 100)}" is not an address or CIDR (like 10.0.0.5, 10.0.0.0/24, fd00::/64; or ${PROXY_RANGE_NAMES.join(', ')})`);
    }
  }
  return [...new Set(all)];
}

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

/** A setting that takes one of `values`; `what` names them in the error ("format" → "unknown format ... (formats: ...)"). */
function oneOf<T extends string>(raw: RawConfig, name: SettingName, values: readonly T[], what: string): T {
  const v = str(raw, name);
  if (!(values as readonly string[]).includes(v)) fail(name, `unknown ${what} "${v}" (${what}s: ${values.join(', ')})`);
  return v as T;
}

/** Compile and validate once; throws AtsError(ATS_ERR_CONFIG) naming the setting. */
export function compileConfig(raw: RawConfig, host: HostFacts = { hostname: 'local', pid: 0 }): Config {
  const leaseMs = int(raw, 'leaseMs', 1000, 3_600_000);
  const heartbeatMs = int(raw, 'heartbeatMs', 100, 3_600_000);
  if (heartbeatMs >= leaseMs) fail('heartbeatMs', `must be below the lease (${leaseMs} ms)`);
  const requestTimeoutMs = int(raw, 'httpRequestTimeoutMs', 100, 3_600_000);
  const headersTimeoutMs = int(raw, 'httpHeadersTimeoutMs', 100, 3_600_000);
  if (headersTimeoutMs > requestTimeoutMs) fail('httpHeadersTimeoutMs', `must be at most the request timeout (${requestTimeoutMs} ms)`);
  const publishedTimeoutMs = int(raw, 'publishedTimeoutMs', 1000, 86_400_000);
  const publishedDelayMs = int(raw, 'relayPublishedDelayMs', 0, 60_000);
  // A dispatch whose PUBLISHED is still waiting must not look lost to the timers.
  if (publishedDelayMs * 2 > publishedTimeoutMs) fail('relayPublishedDelayMs', `must be at most half the published timeout (${publishedTimeoutMs} ms)`);
  const openFileLimit = host.openFileLimit ?? null;
  const maxConnectionsSet = isSet(raw, 'httpMaxConnections');
  const config: Config = {
    roles: roles(raw),
    port: int(raw, 'port', 0, 65535),
    host: listenHost(raw),
    metricsPort: str(raw, 'metricsPort') === '' ? null : int(raw, 'metricsPort', 0, 65535),
    mysqlUrl: mysqlUrl(raw),
    mysqlQueryTimeoutMs: int(raw, 'mysqlQueryTimeoutMs', 100, 3_600_000),
    kafkaBrokers: brokers(raw),
    topicPrefix: topicPrefix(raw),
    kafkaPartitions: int(raw, 'kafkaPartitions', 1, 1000),
    kafkaReplicationFactor: str(raw, 'kafkaReplicationFactor') === '' ? null : int(raw, 'kafkaReplicationFactor', 1, 100),
    eventsFormat: oneOf(raw, 'eventsFormat', EVENTS_FORMATS, 'format'),
    dataDir: str(raw, 'dataDir'),
    logLevel: oneOf(raw, 'logLevel', LOG_LEVELS, 'level'),
    logFormat: oneOf(raw, 'logFormat', LOG_FORMATS, 'format'),
    handlers: str(raw, 'handlers').split(',').map((h) => h.trim()).filter(Boolean),
    worker: {
      concurrency: int(raw, 'concurrency', 1, 10_000), leaseMs, heartbeatMs,
      shutdownGraceMs: int(raw, 'shutdownGraceMs', 0, 3_600_000), groupId: str(raw, 'workerGroup'),
      workerId: workerId(raw, host), queues: queues(raw),
      keepHeldMs: Math.floor(publishedTimeoutMs / 3),
    },
    relay: {
      batchSize: int(raw, 'relayBatch', 1, 10_000), pollMs: int(raw, 'relayPollMs', 5, 60_000), errorBackoffMs: 1000,
      publishedDelayMs,
    },
    timers: { pollMs: int(raw, 'timersPollMs', 5, 60_000), batchSize: 500, publishedTimeoutMs },
    retention: { doneMs: duration(raw, 'retentionDone'), deadMs: duration(raw, 'retentionDead'), auditMs: duration(raw, 'retentionAudit'), batchSize: 500, pollMs: 60_000 },
    api: {
      ...bodyLimits(raw), headersTimeoutMs, requestTimeoutMs,
      bodyTimeoutMs: int(raw, 'httpBodyTimeoutMs', 100, 3_600_000), keepAliveTimeoutMs: int(raw, 'httpKeepAliveTimeoutMs', 100, 3_600_000),
      maxConnections: maxConnectionsSet ? int(raw, 'httpMaxConnections', MIN_MAX_CONNECTIONS, 1_000_000) : defaultMaxConnections(openFileLimit),
      maxConnectionsSet,
    },
    security: {
      auth: oneOf(raw, 'auth', AUTH_MODES, 'mode'), corsOrigins: origins(raw), allowedHosts: allowedHosts(raw),
      rateLimitPerMinute: int(raw, 'rateLimit', 0, 10_000_000), streamMaxPerKey: int(raw, 'streamMaxPerKey', 1, 100_000),
      trustProxy: trustedProxies(raw),
    },
    defaults: {
      queue: queueName('defaultQueue', str(raw, 'defaultQueue')), maxAttempts: int(raw, 'defaultMaxAttempts', 1, 100), backoff: DEFAULT_BACKOFF,
      timeoutMs: int(raw, 'defaultTimeoutMs', 1, 86_400_000), priority: 0,
    },
    maxQueues: int(raw, 'maxQueues', 1, 100_000),
    advisor: { mode: oneOf(raw, 'advisor', ADVISOR_MODES, 'mode'), pollMs: int(raw, 'advisorPollMs', 10, 600_000), historyEvents: int(raw, 'advisorHistory', 0, 10_000_000) },
    openFileLimit,
  };
  // The api role binds PORT and serves /metrics there: binding it twice fails the start on EADDRINUSE naming neither setting.
  if (config.metricsPort !== null && config.metricsPort !== 0 && config.metricsPort === config.port && config.roles.includes('api')) {
    fail('metricsPort', `${config.metricsPort} is ${SETTINGS.port.env}'s too (the api role serves /metrics there already): leave it empty, or give another port`);
  }
  const split = config.roles.length < ROLES.length;
  if (split && !config.kafkaBrokers) {
    fail('roles', `running only ${config.roles.join(',')} needs KAFKA_BROKERS (the in-process log cannot reach other processes)`);
  }
  if (split && !config.mysqlUrl) fail('roles', `running only ${config.roles.join(',')} needs MYSQL_URL (the embedded store belongs to one process)`);
  return deepFreeze(config);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/**
 * The API's security options (server/deps.ts) of `config`: its settings, and
 * whether HOST is loopback. The ATS_METRICS_PORT server's Host check reads
 * the same (cli/metrics.ts): both ports answer `/metrics` to the same names.
 */
export function apiSecurity(config: Pick<Config, 'security' | 'host'>): Config['security'] & { loopback: boolean } {
  return { ...config.security, loopback: isLoopbackHost(config.host) };
}

/** Raw config from an environment (the entry point passes process.env). */
export function rawFromEnv(env: Record<string, string | undefined>): RawConfig {
  const raw: RawConfig = {};
  for (const [name, s] of Object.entries(SETTINGS) as [SettingName, (typeof SETTINGS)[SettingName]][]) {
    if (env[s.env] !== undefined) raw[name] = env[s.env];
  }
  return raw;
}

/** Variables of the `ats` client commands (`--url`, the API key): beside the settings in one environment, and no typo of one. */
const CLIENT_VARIABLES: ReadonlySet<string> = new Set(['ATS_URL', 'ATS_API_KEY']);

/** Edits (an insertion, a deletion, a change, or two neighbours swapped) that make `a` into `b`. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const change = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + change);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The names in `env` that begin with ATS_ (in any case) and are no setting:
 * one that is a setting misspelt (two edits at most, any case, or a setting
 * without its ATS_ given it, `ATS_PORT`) throws ATS_ERR_CONFIG naming the
 * setting meant, since the start would otherwise run on that setting's
 * default unawares; the others (another tool's, a test's) are returned, for
 * the start to say it ignores them. The client's own variables pass.
 */
export function checkEnvNames(env: Record<string, string | undefined>): string[] {
  const settings = Object.values(SETTINGS);
  const known = new Set(settings.map((s) => s.env as string));
  const unknown: string[] = [];
  for (const name of Object.keys(env)) {
    const upper = name.toUpperCase();
    if (!upper.startsWith('ATS_') || known.has(name) || CLIENT_VARIABLES.has(name) || env[name] === undefined) continue;
    const meant = settings.find((s) => s.env === upper.slice(4)) ?? settings.find((s) => s.env.startsWith('ATS_') && editDistance(upper, s.env) <= 2);
    if (meant) throw new AtsError('ATS_ERR_CONFIG', `${name} is not a setting: did you mean ${meant.env} (${meant.flag})? (\`ats start --help\` lists the settings)`);
    unknown.push(name);
  }
  return unknown;
}

/** `ats start --help`: every setting, by flag, with its environment variable, default and meaning (from SETTINGS). */
export function startHelp(): string {
  const lines = Object.values(SETTINGS).map((s) => `  ${s.flag} (\$${s.env}${s.default === '' ? '' : `, default ${s.default}`})\n      ${s.doc}`);
  return [
    'usage: ats start [--flag value | --flag=value] ...',
    'Runs the scheduler\'s roles in this process until SIGTERM or SIGINT. Each setting is a flag or an environment variable;',
    'a flag wins over its variable. A flag takes an empty value only when its default is empty (--mysql-url= : the embedded',
    'store, whatever MYSQL_URL says). A bad setting, an empty value for any other flag, or an ATS_ variable that is a',
    'setting misspelt (ATS_ROLE), exits 2; any other ATS_ variable that is no setting is named and ignored.',
    '',
    ...lines,
  ].join('\n');
}

/**
 * Raw config from `--flag value` / `--flag=value` arguments; unknown flags are errors. So is an
 * empty value (`--port=`), which the settings would read as unset, the default: a flag given
 * means a value. Only a setting whose default is empty (`--mysql-url=`: the embedded store,
 * `--metrics-port=`: off) takes one, to override its environment variable with that meaning.
 */
export function rawFromArgs(args: readonly string[]): RawConfig {
  const raw: RawConfig = {};
  const byFlag = new Map(Object.entries(SETTINGS).map(([name, s]) => [s.flag as string, name as SettingName]));
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split(/=(.*)/s, 2) as [string, string | undefined];
    const name = byFlag.get(flag);
    if (!name) throw new AtsError('ATS_ERR_CONFIG', `unknown option ${flag} (options: ${[...byFlag.keys()].join(' ')})`);
    const value = inline ?? args[++i];
    if (value === undefined) throw new AtsError('ATS_ERR_CONFIG', `option ${flag} needs a value`);
    if (value.trim() === '' && SETTINGS[name].default !== '') {
      throw new AtsError('ATS_ERR_CONFIG', `option ${flag} needs a value, got an empty one (leave the option out for its default, ${SETTINGS[name].default})`);
    }
    raw[name] = value;
  }
  return raw;
}
