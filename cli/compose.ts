/**
 * The composition root: the one place that picks adapters and wires the
 * engine, the server and the roles together from a compiled Config.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { createKafkaLog } from '../adapters/kafka/index.js';
import { createMemoryLog } from '../adapters/memory/index.js';
import { PrometheusMetrics } from '../adapters/metrics/prometheus.js';
import { createMysqlStore, type MysqlStore } from '../adapters/mysql/index.js';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { sqliteCodeIn, UNWRITABLE_CODES } from '../adapters/sqlite/sqlite-store.js';
import { describeHolder, lockFolder, LOCK_FILE, type FolderLock } from '../adapters/sqlite/folder-lock.js';
import { makeFolder } from '../adapters/sqlite/make-folder.js';
import { builtForAnotherNode, sqliteNativeProblem } from '../adapters/sqlite/native.js';
import { checkAccess, type AccessLine } from './auth-startup.js';
import { SETTINGS, apiSecurity, type Config } from './config.js';
import { bindMetricsPort, wireMetrics } from './metrics.js';
import { Advisor } from '../engine/advisor/advisor.js';
import { DbClock } from '../engine/db-clock.js';
import { handlerModuleOf, HandlerModuleError, HandlerRegistry, registerDemoHandlers, registerModule, type HandlerModule } from '../engine/handlers.js';
import { createLogger, errorFields, prettyDestination, type AppLogger } from '../engine/logger.js';
import { settlesWithin } from '../engine/loop.js';
import { AtsError } from '../engine/errors.js';
import type {
  AuditStore, Clock, EventLog, IdGenerator, JobStore, KeyStore, LimitStore, Logger, ProgressStore, QueueStore, Random, ScheduleStore, WorkerRegistryStore, WorkflowStore,
} from '../engine/ports.js';
import { TOPICS } from '../engine/ports.js';
import { QueueRegistry } from '../engine/queue-registry.js';
import { ScheduleRunner, ScheduleService } from '../engine/schedules.js';
import { WorkerPresence } from '../engine/worker-presence.js';
import { LimitDirectory } from '../engine/limit-directory.js';
import { Relay } from '../engine/relay.js';
import { Retention } from '../engine/retention.js';
import { mathRandom, systemClock, ulidIds } from '../engine/system.js';
import { Timers } from '../engine/timers.js';
import { logForFormat } from '../engine/transition-records.js';
import { TransitionService } from '../engine/transitions.js';
import { Waker } from '../engine/wake.js';
import { describeThrown, isInstance, thrownField } from '../engine/thrown.js';
import { Worker } from '../engine/worker.js';
import { WorkflowDriver, WorkflowService } from '../engine/workflows.js';
import { buildApp } from '../server/app.js';
import { connectionCapNotice } from '../server/connections.js';
import { serveWhileStarting, type StartingServer } from '../server/starting.js';
import type { Tracing } from './tracing.js';
import { metricsRoute } from '../server/routes/metrics.js';
import { MAX_STREAM_CONNECTIONS, streamPlugin } from '../server/stream/index.js';
import { uiPlugin } from '../server/ui/index.js';

export interface ComposeOptions {
  registry?: HandlerRegistry;
  logger?: Logger;
  /**
   * The host clock. With MySQL every role reads the database's time through it
   * (the host clock plus the measured offset, see engine/db-clock.ts).
   */
  clock?: Clock;
  random?: Random;
  ids?: IdGenerator;
  /** Extra fastify plugins for the api role (the stream, the UI). */
  plugins?: Parameters<typeof buildApp>[0]['plugins'];
  /**
   * Traces jobs (submits, dispatches, attempts) with this tracer; shut down
   * (flushed) on stop once the roles stopped, before the log and the store
   * close. Omit for no tracing (cli/tracing.ts starts one from the OTEL_*
   * variables).
   */
  tracing?: Tracing;
  /** The process's metrics. @defaultValue a new PrometheusMetrics */
  metrics?: PrometheusMetrics;
}

/** What both SQL stores are: every port the roles and the API use. */
export type SystemStore = JobStore & ScheduleStore & ProgressStore & WorkerRegistryStore & LimitStore & KeyStore & AuditStore & QueueStore & WorkflowStore;

export interface System {
  config: Config;
  store: SystemStore;
  /** Cron schedules: created and changed through the API; the timers role fires them. */
  schedules: ScheduleService;
  /** Workflow instances (engine/workflows.ts): started and signalled through the API; the timers role drives them. */
  workflows: WorkflowService;
  log: EventLog;
  transitions: TransitionService;
  registry: HandlerRegistry;
  logger: Logger;
  app: FastifyInstance | null;
  relay: Relay | null;
  worker: Worker | null;
  timers: Timers | null;
  /** Deletes old finished jobs; runs with the timers role. */
  retention: Retention | null;
  /** Learns from each job type's history; runs with the api and worker roles (null when ATS_ADVISOR=off). */
  advisor: Advisor | null;
  /** What `/metrics` serves (README.md, "Metrics"). */
  metrics: PrometheusMetrics;
  /** What the api role says about keys at start-up (cli/auth-startup.ts); null without the api role. */
  access: AccessLine | null;
  /**
   * Starts the roles; resolves with the API's URL when the api role runs, and
   * the metrics port's (`http://host:port`, serving /metrics) when ATS_METRICS_PORT is set.
   * A `stop()` while it is under way ends it: no more roles start, and it rejects with StartGivenUp.
   */
  start(): Promise<{ url: string | null; metricsUrl: string | null }>;
  /**
   * Graceful: stop taking work, finish or abandon running handlers, close
   * connections. Every step runs, whatever failed before it; rejects (an
   * AggregateError naming the steps) when any failed, each logged as it failed.
   * A second call gets the first one's outcome. During a start, it first waits
   * for the role starting then, STARTING_ROLE_WAIT_MS at most (what that
   * role's start still starts once it ends is stopped then), except the
   * worker, whose join of its lanes still in progress it gives up.
   */
  stop(): Promise<void>;
  /**
   * How far the stop got: `waitingOn`, the part it waits on now and for how
   * long it has (ms), empty before a stop and once it ended; `took`, each
   * part it is done with, in order, and how long that took. A part is named
   * as its failure would be (`store`, `relay`, `api`…), or `start of <part>`
   * for the wait for the role starting then. For the line a process that
   * gives its stop up logs (cli/start.ts).
   */
  stopProgress(): StopProgress;
}

/** How far a stop got (System.stopProgress): parts of it, each with its time in ms. */
export interface StopProgress {
  waitingOn: Array<{ part: string; ms: number }>;
  took: Array<{ part: string; ms: number }>;
}

/**
 * The process's logger (pino): JSON lines on stdout, or pino-pretty's for
 * LOG_FORMAT=pretty; every line carries `role` (this process's roles), `pid`
 * and `hostname`. fastify logs through the same instance.
 */
export async function openLogger(config: Config): Promise<AppLogger> {
  const base = { role: config.roles.join(',') };
  return config.logFormat === 'pretty'
    ? createLogger(config.logLevel, base, await prettyDestination())
    : createLogger(config.logLevel, base);
}

/** The store of these settings (not migrated yet): MySQL with MYSQL_URL, else the embedded SQLite file in the data dir. */
export async function openStore(config: Config, clock: Clock, logger: Logger, metrics?: PrometheusMetrics): Promise<SystemStore> {
  if (config.mysqlUrl) {
    const url = config.mysqlUrl;
    return namingStoreSetting(config, () => createMysqlStore({ url, connectTimeoutMs: 5000, queryTimeoutMs: config.mysqlQueryTimeoutMs, clock, logger, metrics }));
  }
  checkSqliteNative();
  makeDataDir(config.dataDir);
  return namingStoreSetting(config, async () => createSqliteStore({ file: join(config.dataDir, 'ats.sqlite'), clock, metrics }));
}

/**
 * What `run` (the store's open or migration) throws as a store that cannot
 * work as given (exit 2), named as the setting to change: MYSQL_URL (the
 * URL's options the driver refuses, a server the store does not support,
 * another program's database), or ATS_DATA_DIR (a SQLite file this user may
 * not write, or that is no database).
 */
export async function namingStoreSetting<T>(config: Config, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (!(err instanceof AtsError) || err.code !== 'ATS_ERR_CONFIG') throw err;
    const { env, flag } = config.mysqlUrl ? SETTINGS.mysqlUrl : SETTINGS.dataDir;
    throw new AtsError('ATS_ERR_CONFIG', `${env} (${flag}): ${err.message}`, { cause: err });
  }
}

/**
 * The embedded store's native module loads, or the start (or `ats keys`)
 * stops before it makes the data folder, saying how to build the module: the
 * open of the folder's lock would fail with `bindings`' list of paths,
 * blamed on ATS_DATA_DIR. Not a setting (exit 1): the install is incomplete.
 */
function checkSqliteNative(): void {
  const problem = sqliteNativeProblem();
  if (problem !== null) throw new Error(sqliteNativeMessage(problem));
}

/** What `checkSqliteNative` says of a native module that did not load (`problem`: `nativeProblemText`), the cause its text shows. */
export function sqliteNativeMessage(problem: string): string {
  const data = SETTINGS.dataDir.env;
  const mysql = SETTINGS.mysqlUrl;
  const cause = builtForAnotherNode(problem)
    ? 'it was built under another node: installed, or node_modules copied, with another node version'
    : 'an install with --ignore-scripts, or whose npm did not allow better-sqlite3\'s install script, skipped it';
  return `the embedded store (${data}) needs better-sqlite3's native module, which did not load (${problem}): ` +
    `build it with "npm rebuild better-sqlite3" under this node (${process.version}) (${cause}), ` +
    `or set ${mysql.env} (${mysql.flag}) to use MySQL`;
}

/**
 * The data dir, made if missing; a path that cannot be a folder (a file, a
 * folder not writable, a place such as /proc where none can be made) is a bad
 * setting naming ATS_DATA_DIR.
 */
function makeDataDir(dir: string): void {
  try {
    makeFolder(dir);
  } catch (err) {
    const { env, flag } = SETTINGS.dataDir;
    throw new AtsError('ATS_ERR_CONFIG', `${env} (${flag}): ${dir} cannot be made a folder: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The data dir, taken for this process (adapters/sqlite/folder-lock.ts): the
 * embedded store is one scheduler's. One a live scheduler holds is a bad
 * setting naming ATS_DATA_DIR, the folder and the holder; one whose holder
 * ended without releasing it (a crash, SIGKILL) is taken over, and said so.
 * `ats keys` opens the store beside a running scheduler without it.
 */
function lockDataDir(dir: string, logger: Logger): FolderLock {
  checkSqliteNative();
  makeDataDir(dir);
  const { env, flag } = SETTINGS.dataDir;
  let taken;
  try {
    taken = lockFolder(dir, { pid: process.pid, host: hostname() });
  } catch (err) {
    const lockFile = join(dir, LOCK_FILE);
    // A folder this user may not write, a read-only mount (or a lock file that is no file): a setting to change (exit 2).
    if (sqliteCodeIn(err, UNWRITABLE_CODES)) {
      const user = process.getuid ? `this user (uid ${process.getuid()})` : 'this user';
      throw new AtsError('ATS_ERR_CONFIG', `${env} (${flag}): ${dir} cannot be used: ${lockFile} cannot be written (${(err as Error).message}); the folder and its files must be writable by ${user}`, { cause: err });
    }
    throw new Error(`${env} (${flag}): cannot lock ${lockFile}: ${(err as Error).message}`, { cause: err });
  }
  if (!taken.ok) {
    throw new AtsError('ATS_ERR_CONFIG', `${env} (${flag}): ${dir} is in use by another scheduler (${describeHolder(taken.holder)}): stop it, or set ${env} to another folder`);
  }
  const gone = taken.lock.tookOverFrom;
  if (gone) logger.warn(`data folder: took over ${dir} from ${describeHolder(gone)}, which ended without releasing it`, { dataDir: dir, previousPid: gone.pid });
  return taken.lock;
}

/**
 * kafkajs makes no entry below this; the process's logger filters the rest.
 * Its INFO lines are logged at debug (adapters/kafka/kafka-logging.ts); its
 * DEBUG is the wire protocol, never wanted here.
 */
const KAFKA_LOG_LEVEL = { debug: 'info', info: 'warn', warn: 'warn', error: 'error', silent: 'nothing' } as const;

function openLog(config: Config, logger: Logger, clock: Clock): EventLog {
  return logForFormat(openBaseLog(config, logger, clock), config.eventsFormat);
}

/** Records are stamped with `clock`'s time, against which the timers ask what the workers have not read. */
function openBaseLog(config: Config, logger: Logger, clock: Clock): EventLog {
  const now = () => clock.now();
  if (config.kafkaBrokers) {
    return createKafkaLog({
      brokers: [...config.kafkaBrokers], topicPrefix: config.topicPrefix, partitions: config.kafkaPartitions,
      ...(config.kafkaReplicationFactor === null ? {} : { replicationFactor: config.kafkaReplicationFactor }),
      clientId: `ats-${config.worker.workerId}`, connectTimeoutMs: 5000,
      logLevel: KAFKA_LOG_LEVEL[config.logLevel], logger, now,
    });
  }
  return createMemoryLog({ retainUnconsumedByTopic: UNREAD_IN_PROCESS, now, logger });
}

/**
 * Topics nothing in this process reads (the stream tails `job_events` in the
 * store, not `ats.events`; no role consumes `ats.dlq`), and nothing outside
 * can reach an in-process log: the log keeps their records only for a group
 * already reading them (a test's), not a tail for one that may come. A
 * transition can carry a job's whole result, so that tail would grow with
 * the results, not with the jobs. The dispatch lanes keep theirs: a new
 * queue's first dispatches come before the worker finds its lanes.
 */
const UNREAD_IN_PROCESS = { [TOPICS.events]: { records: 0 }, [TOPICS.dlq]: { records: 0 } };

/**
 * Whether any of `roles` reads or writes the log: the relay publishes the
 * outbox, the worker consumes the dispatch lanes, the timers ask the lanes
 * what the workers have not read and drive the workflows from
 * `ats.workflows`.
 * The api does neither: submits go to the outbox, the stream tails
 * `job_events` in the store, and /readyz only reports the log's state. So a
 * process of the api role alone does not ensure the topics at start (which
 * fails the start when Kafka cannot be reached): restarted during a Kafka
 * outage, it serves, and the outbox keeps what it accepts until the relay
 * can publish it.
 */
function rolesUseLog(roles: Config['roles']): boolean {
  return roles.some((r) => r !== 'api');
}

export async function compose(config: Config, opts: ComposeOptions = {}): Promise<System> {
  const logger = opts.logger ?? (await openLogger(config));
  const base = opts.clock ?? systemClock;
  const registry = opts.registry ?? (await loadHandlers(config.handlers, registerDemoHandlers(new HandlerRegistry())));
  // Processes on one MySQL database judge each other's leases and due times:
  // all read the database's clock. SQLite is one process: its own clock.
  const dbClock = config.mysqlUrl ? new DbClock({ base, logger, dbNow: () => (opened as MysqlStore).dbNow() }) : null;
  const clock: Clock = dbClock ?? base;
  const metrics = opts.metrics ?? new PrometheusMetrics({ logger });
  const has = (r: string) => config.roles.includes(r as Config['roles'][number]);
  // First, the embedded store's folder: a second scheduler on it is refused before it binds a port or opens the store.
  const folderLock = config.mysqlUrl ? null : lockDataDir(config.dataDir, logger);
  let metricsServer: Awaited<ReturnType<typeof bindMetricsPort>> | null = null;
  let starting: StartingServer | null = null;
  let opened: SystemStore | null = null;
  let log: EventLog | null = null;
  // A composition that fails leaves nothing of its start open, its ports least of all, nor the data folder held.
  const abandon = async (err: unknown): Promise<never> => {
    try {
      await log?.close().catch(() => undefined);
      await opened?.close().catch(() => undefined);
      await starting?.close();
      await metricsServer?.close();
    } finally {
      folderLock?.release();
    }
    throw err;
  };
  try {
    // The api's port, from now until the API listens on it: /healthz 200 (alive, starting: a liveness
    // probe must not restart a process during a long migration, or its wait for another's), the rest 503.
    // ATS_METRICS_PORT, from now on too: its /healthz is the liveness probe of a process without the api.
    metricsServer = config.metricsPort === null ? null : await bindingPort('metricsPort', config.metricsPort, config.host, () => bindMetricsPort(metrics, config));
    starting = has('api') ? await bindingPort('port', config.port, config.host, () => serveWhileStarting(config.port, config.host)) : null;
    opened = await openStore(config, clock, logger, metrics);
    await dbClock?.sync();
    const migrating = opened;
    // A migration that refuses the database (another program's, a file that cannot be written) names the setting.
    await namingStoreSetting(config, () => migrating.migrate({ logger }));
    log = openLog(config, logger, clock);
    if (rolesUseLog(config.roles)) await log.ensureTopics();
  } catch (err) {
    return abandon(err);
  }
  const store = opened;
  const waker = new Waker();
  // With the keys, open streams are checked again: a revoked key's are closed (4401).
  // Streams take at most half of the API's connections: the requests (health probes among them) keep the rest.
  const streamCap = Math.min(MAX_STREAM_CONNECTIONS, Math.floor(config.api.maxConnections / 2));
  // The cap against the open-file limit, said once: a default lowered to half of it (info), a setting not below it (warn).
  const capNotice = has('api') ? connectionCapNotice({ maxConnections: config.api.maxConnections, set: config.api.maxConnectionsSet, openFileLimit: config.openFileLimit }) : null;
  if (capNotice) logger[capNotice.level](capNotice.message, capNotice.fields);
  const stream = has('api') ? streamPlugin({ store, clock, logger, metrics, auth: { keys: store, mode: config.security.auth }, maxConnections: streamCap }) : null;
  // Workers' claims: which default limits (`type:…`, `queue:…`) exist (engine/limit-directory.ts).
  const limitDirectory = has('worker') ? new LimitDirectory({ store, clock, logger }) : null;
  const ids = opts.ids ?? ulidIds(clock);
  // The queues jobs may name, for every path that makes jobs: submits, schedules, workflow steps.
  const queues = new QueueRegistry({ store, clock, max: config.maxQueues, defaultQueue: config.defaults.queue });
  const transitions = new TransitionService({
    store, clock, random: opts.random ?? mathRandom, ids, metrics, queues, ...(limitDirectory ? { limits: limitDirectory } : {}),
    onCommit: () => {
      waker.notify();
      stream?.wake();
    },
  });
  const eventLog = log;
  const tracer = opts.tracing?.tracer;
  const advisorHooks = config.advisor.mode !== 'off' && (has('api') || has('worker')) ? metrics.advisorHooks() : null;
  const advisor = advisorHooks
    ? new Advisor({
        store, clock, logger,
        onAnomaly: (a) => {
          advisorHooks.onAnomaly(a);
          stream?.insight(a);
        },
        onDecision: advisorHooks.onDecision,
      }, {
        mode: config.advisor.mode, pollMs: config.advisor.pollMs, historyEvents: config.advisor.historyEvents,
        // A learned lease is at most a third of the configured one and at least 5 s; one no shorter than the configured lease is not used.
        model: {
          staticLeaseMs: config.worker.leaseMs, staticHeartbeatMs: config.worker.heartbeatMs, minLeaseMs: Math.min(5_000, config.worker.leaseMs),
        },
      })
    : null;

  const schedules = new ScheduleService({ store, clock, queues });
  // Workflows: started and signalled through the API; the timers role delivers children's ends and fires their timers.
  const workflows = new WorkflowService({
    store, clock, ids, definitions: registry, logger, metrics, queues,
    onCommit: () => {
      waker.notify();
      stream?.wake();
    },
    defaults: config.defaults,
    ...(tracer ? { tracer } : {}),
  });
  let access: AccessLine | null = null;
  let app: FastifyInstance | null = null;
  try {
    // Refuses (ATS_ERR_CONFIG) to serve without keys on an interface other than loopback.
    access = has('api') ? await checkAccess(config, store) : null;
    app = has('api')
      ? await buildApp({
          transitions, store, schedules, workflows, workers: store, limitStore: store, clock, logger, loggerInstance: pinoOf(logger), metrics,
          auth: { keys: store, mode: config.security.auth, newKeyId: () => ids.jobId(), randomBytes: (n) => randomBytes(n) },
          audit: store,
          security: apiSecurity(config),
          knownTypes: () => registry.types(),
          checkPayload: (type, payload) => registry.checkPayload(type, payload),
          checks: { database: () => store.ping(), log: () => eventLog.ping() },
          limits: config.api, defaults: config.defaults, tracer, progress: store, ...(advisor ? { advisor } : {}),
          plugins: [
            ...(stream ? [stream] : []),
            uiPlugin,
            metricsRoute(metrics),
            ...(opts.plugins ?? []),
          ],
        })
      : null;
  } catch (err) {
    return abandon(err); // a plugin that fails to register, say
  }
  const relay = has('relay') ? new Relay({ store, log, transitions, clock, logger, waker, tracer, metrics }, config.relay) : null;
  const worker = has('worker')
    ? new Worker({ log, transitions, clock, logger, registry, tracer, metrics, progress: store, store, ...(advisor ? { advisor } : {}) }, config.worker)
    : null;
  // The worker's row in `workers`: who it is and which types it runs (GET /v1/workers, `unserved` in /v1/stats).
  const presence = worker
    ? new WorkerPresence({ store, clock, logger }, {
        id: config.worker.workerId, host: hostname(), pid: process.pid, concurrency: config.worker.concurrency, types: () => registry.types(),
        queues: config.worker.queues,
      })
    : null;
  const scheduleRunner = new ScheduleRunner({
    store, transitions, clock, logger, ...(has('timers') ? { onTicks: metrics.scheduleTicks() } : {}), ...(tracer ? { tracer } : {}),
  });
  const timers = has('timers')
    ? new Timers({
        store, transitions, clock, logger, schedules: scheduleRunner, dispatches: { log, groupId: config.worker.groupId }, presence: store,
      }, config.timers)
    : null;
  const retention = has('timers') ? new Retention({ store, clock, logger }, config.retention) : null;
  const workflowDriver = has('timers')
    // The in-process log forgets what it held at a restart: sweep every active instance before consuming.
    ? new WorkflowDriver({ log, service: workflows, clock, logger }, { pollMs: config.timers.pollMs, batchSize: 100, sweepAtStart: !config.kafkaBrokers })
    : null;
  const metricsWiring = wireMetrics(metrics, config, { store, clock, logger, worker, stream }, metricsServer);

  let stopping: Promise<void> | null = null;
  /** Aborted by a stop: a step of the start that reads in batches (the re-dispatch) ends between two. */
  const startAbort = new AbortController();
  // Each part's stop, in the order a stop runs them (stopAll), by name.
  const stopSteps: Array<[string, () => Promise<unknown> | undefined]> = [
    ['starting', () => starting?.close()],
    ['api', () => app?.close()],
    ['worker', () => worker?.stop()],
    ['limits', () => limitDirectory?.stop()],
    ['presence', () => presence?.stop()],
    ['relay', () => relay?.stop()],
    ['timers', () => timers?.stop()],
    ['workflows', () => workflowDriver?.stop()],
    ['retention', () => retention?.stop()],
    ['advisor', () => advisor?.stop()],
    // Once the roles that make spans stopped, and before the log and the store, whose close may wait
    // on a dependency that stopped answering for longer than the process allows its shutdown.
    ['tracing', () => opts.tracing?.shutdown()],
    ['clock', () => dbClock?.stop()],
    ['metrics', () => metricsWiring.stop()],
    ['log', () => eventLog.close()],
    ['store', () => store.close()],
    // Last: no other scheduler opens the store before this one closed it.
    ['data folder', async () => folderLock?.release()],
  ];
  /** The parts whose stop a stop has begun (stopAll). */
  const stopsBegun = new Set<string>();
  /** What the stop waits on now (stopProgress), since when (performance.now()): null when it waits on nothing. */
  let waitingOn: { part: string; since: number } | null = null;
  /** The parts the stop is done with, and how long each took. */
  const took: StopProgress['took'] = [];
  /** Waits on `part` (stopProgress) until `run` settled. */
  const waitOn = async <T>(part: string, run: () => Promise<T>): Promise<T> => {
    const since = performance.now();
    waitingOn = { part, since };
    try {
      return await run();
    } finally {
      waitingOn = null;
      took.push({ part, ms: Math.round(performance.now() - since) });
    }
  };
  /**
   * The step of a start under way, which a stop waits for, STARTING_ROLE_WAIT_MS at most, before it stops
   * the roles: null when none is. Not the worker's start: its stop gives up a lane's join in progress
   * (up to the log's ready timeout, 30 s on Kafka), which the start then ends with.
   */
  let startStep: { part: string; done: Promise<unknown> } | null = null;
  /** Rejects (StartGivenUp) once a stop gave up waiting for the step of the start under way: the start then ends. */
  let giveUpStart!: () => void;
  const startGivenUp = new Promise<never>((_resolve, reject) => (giveUpStart = () => reject(new StartGivenUp())));
  startGivenUp.catch(() => undefined);
  /**
   * Runs one step of the start (starting `part`, a name of stopSteps) unless a stop came: then no more
   * roles start, and the start rejects. A step that ends once the stop of its part began (a start that
   * waited on a store or a broker not answering, given up by the stop) has its part stopped again: what it
   * started then (a loop, a subscription) does not run on.
   */
  const step = async <T>(part: string, run: () => Promise<T> | T, awaitedByStop = true): Promise<T> => {
    if (stopping) throw new StartGivenUp();
    const done = (async () => run())();
    if (awaitedByStop) {
      const settled = done.then(() => undefined, () => undefined);
      startStep = { part, done: settled };
      void settled.then(() => {
        if (startStep?.done === settled) startStep = null;
        if (stopsBegun.has(part)) void stopPart(part);
      });
      return Promise.race([done, startGivenUp]);
    }
    return done;
  };
  return {
    config, store, schedules, workflows, log, transitions, registry, logger, app, relay, worker, timers, retention, advisor, metrics, access,
    async start() {
      try {
        // First: a port that cannot be bound (the API's; the metrics port was bound by compose) fails the start
        // before any role runs, so a second start on a taken port writes nothing (no re-dispatch into another process's jobs).
        const metricsUrl = await step('metrics', () => metricsWiring.start());
        // The port the starting answers were served on (the one bound when 0 was asked), handed over to the API.
        await step('starting', () => starting?.close());
        const apiPort = starting?.port ?? config.port;
        const address = app ? await step('api', () => bindingPort('port', apiPort, config.host, () => listenQuietly(app!, config, apiPort))) : null;
        await step('clock', () => dbClock?.start());
        // The folder lock held, no other process runs a job of this store: those found running were the ended process's.
        if (folderLock && timers) await step('expire held leases', () => expireHeldAfterRestart(timers, store, logger, startAbort.signal));
        if (!config.kafkaBrokers && timers) await step('redispatch', () => redispatchAfterRestart(timers, store, clock, logger, startAbort.signal));
        await step('advisor', () => advisor?.start());
        // Before the timers: their first pass must not take this process's own worker for missing.
        await step('presence', () => presence?.start());
        await step('relay, timers, retention', () => {
          relay?.start();
          timers?.start();
          retention?.start();
        });
        await step('workflows', () => workflowDriver?.start());
        await step('limits', () => limitDirectory?.start());
        await step('worker', () => worker?.start(), false);
        // Stopped while the worker joined its lanes (the stop gave the joins up): not a started system.
        if (stopping) throw new StartGivenUp();
        return { url: address?.replace('127.0.0.1', 'localhost').replace('[::1]', 'localhost') ?? null, metricsUrl };
      } catch (err) {
        throw stopping && !(err instanceof StartGivenUp) ? new StartGivenUp(err) : err;
      }
    },
    stop() {
      // Once: a second call (a test's cleanup after its own stop) gets the first one's outcome, not a second close.
      // A start under way starts no more roles from now on; the step it is at ends first, or is given up
      // after STARTING_ROLE_WAIT_MS (see startStep and step).
      stopping ??= (async () => {
        startAbort.abort();
        const current = startStep;
        if (current && !(await waitOn(`start of ${current.part}`, () => settlesWithin(current.done, STARTING_ROLE_WAIT_MS)))) {
          logger.warn(`stop: the start of ${current.part} did not end within ${STARTING_ROLE_WAIT_MS} ms; given up`, { part: current.part });
          giveUpStart();
        }
        return stopAll();
      })();
      return stopping;
    },
    stopProgress() {
      const now = performance.now();
      return { waitingOn: waitingOn ? [{ part: waitingOn.part, ms: Math.round(now - waitingOn.since) }] : [], took: [...took] };
    },
  };

  async function stopAll(): Promise<void> {
    const failed: Array<[string, unknown]> = [];
    for (const [name, step] of stopSteps) {
      stopsBegun.add(name);
      try {
        await waitOn(name, async () => step());
      } catch (err) {
        logger.error(`stop: ${name} failed`, errorFields(err));
        failed.push([name, err]);
      }
    }
    // Every step ran; the stop was not clean (the process exits 1: cli/start.ts).
    if (failed.length > 0) throw new AggregateError(failed.map(([, err]) => err), `stop: ${failed.map(([name]) => name).join(', ')} failed`);
  }

  /** Stops `part` again, its start having ended after its stop (see step); a failure is logged. */
  async function stopPart(part: string): Promise<void> {
    try {
      await stopSteps.find(([name]) => name === part)?.[1]();
    } catch (err) {
      logger.warn(`stop: ${part}, whose start ended after the stop, failed to stop`, errorFields(err));
    }
  }
}

/**
 * How long a stop during the start waits for the role starting then to finish starting (a store read,
 * a worker's row, the workflows' subscription, the API's listen) before it gives that start up and stops
 * the roles: a store or a broker that stops answering then would hold the stop until the process's
 * deadline. What that start still starts once it ends is stopped then. Within the 5 s a stop has beyond
 * the handlers' grace (SHUTDOWN_SLACK_MS in cli/start.ts); no handler runs yet at a stop during the start.
 */
export const STARTING_ROLE_WAIT_MS = 2000;


/** What `System.start()` rejects with when a stop came while it was under way: the roles not started yet were not. */
export class StartGivenUp extends Error {
  constructor(cause?: unknown) {
    super('the start was given up: the process is stopping', cause === undefined ? undefined : { cause });
    this.name = 'StartGivenUp';
  }
}

/** The pino behind a logger made by `createLogger`, for fastify; none for another Logger. */
function pinoOf(logger: Logger): AppLogger['pino'] | undefined {
  return (logger as Partial<AppLogger>).pino;
}

/**
 * Binds a port of a setting (PORT, ATS_METRICS_PORT): a failure that is the
 * settings' names the setting to change and the value, as node's own message
 * names neither (`listen EADDRINUSE: address already in use 127.0.0.1:3000`,
 * `getaddrinfo ENOTFOUND ...`): the port in use, or one below 1024 without the
 * privilege; HOST not an address of this machine, or a name that does not
 * resolve. Its code stays node's, and the start exits 1 as before (the port
 * may be freed, the address or the name may come up). Other errors pass as
 * they are.
 */
export async function bindingPort<T>(setting: 'port' | 'metricsPort', port: number, host: string, bind: () => Promise<T>): Promise<T> {
  try {
    return await bind();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const { env, flag } = SETTINGS[setting];
    const h = SETTINGS.host;
    const unresolved = `${h.env} (${h.flag}) ${host} does not resolve (${e?.message}): set ${h.env} to an address or a name of this machine`;
    const why = new Map<string | undefined, string>([
      ['EADDRINUSE', `${env} (${flag}) ${port} is in use on ${host} (${e?.message}): stop what listens there, or set ${env} to another port`],
      ['EACCES', `${env} (${flag}) ${port} may not be listened on (${e?.message}): a port below 1024 needs privileges; set ${env} to 1024 or above`],
      ['EADDRNOTAVAIL', `${h.env} (${h.flag}) ${host} is not an address of this machine (${e?.message}): set ${h.env} to one of its addresses, or to 0.0.0.0 or :: for all of them`],
      ['ENOTFOUND', unresolved],
      ['EAI_AGAIN', unresolved],
    ]).get(e?.code);
    if (why === undefined) throw err;
    throw Object.assign(new Error(why, { cause: err }), { code: e.code });
  }
}

/**
 * Listen without fastify's "Server listening at" info line: `ats ready`, the
 * first line of a started process, says the URL with the roles.
 */
async function listenQuietly(app: FastifyInstance, config: Config, port: number): Promise<string> {
  const level = app.log.level;
  if (level === 'debug' || level === 'info') app.log.level = 'warn';
  try {
    return await app.listen({ port, host: config.host });
  } finally {
    app.log.level = level;
  }
}

/**
 * Each module exports `handlers` (defineHandler results) and/or
 * `register(registry)` (sync or async). A path that names no file (nothing,
 * or a folder), or a module that exports neither, is a bad setting (ATS_ERR_CONFIG, exit 2); an error
 * thrown by the module's own code (while it loads, or by its `register`), or
 * `handlers` that are not defineHandler results, is not, but it too names the
 * setting and the module (exit 1): with several modules, the bare message
 * (`a handler for email.send is already registered`) would not say whose.
 */
async function loadHandlers(modules: readonly string[], registry: HandlerRegistry): Promise<HandlerRegistry> {
  const { env, flag } = SETTINGS.handlers;
  const bad = (m: string, why: string) => new AtsError('ATS_ERR_CONFIG', `${env} (${flag}): ${m} ${why}`);
  for (const m of modules) {
    const path = resolve(m);
    if (!existsSync(path)) throw bad(m, `does not exist (resolved to ${path})`);
    if (statSync(path).isDirectory()) throw bad(m, 'is a folder, not a module file');
    const mod = handlerModuleOf(await importHandlerModule(m, path));
    if (mod.handlers === undefined && typeof mod.register !== 'function') throw bad(m, 'exports neither register(registry) nor handlers');
    try {
      await registerModule(mod, registry, m);
    } catch (err) {
      // A fault of what the module exports is said once, after the module's name (no cause: the
      // start's message would name the module again with it).
      if (err instanceof HandlerModuleError) throw new Error(`${env} (${flag}): ${m} failed to register its handlers: ${err.problem}`);
      throw new Error(`${env} (${flag}): ${m} failed to register its handlers: ${thrownMessage(err)}${thrownAt(err)}`, { cause: err });
    }
  }
  return registry;
}

/**
 * The module at `path` (`m` as the setting names it). Its failure to load (a
 * syntax error, an import it lacks, a throw of its top-level code) is
 * rethrown naming ATS_HANDLERS and the module: node's own message says
 * neither (`Unexpected token ';'`).
 */
async function importHandlerModule(m: string, path: string): Promise<HandlerModule> {
  try {
    return (await import(pathToFileURL(path).href)) as HandlerModule;
  } catch (err) {
    const at = isInstance(err, SyntaxError) ? syntaxErrorLine(path) : null;
    const { env, flag } = SETTINGS.handlers;
    throw new Error(`${env} (${flag}): ${m} failed to load: ${at ? `${at}: ` : ''}${thrownMessage(err)}${at ? '' : thrownAt(err)}${typeScriptHint(err, path)}`, { cause: err });
  }
}

/**
 * What to do about a TypeScript module this node cannot run (`Unknown file
 * extension ".ts"`: node before 22.18 / 23.6 strips no types, and the built
 * package loads no tsx); '' for any other failure.
 */
function typeScriptHint(err: unknown, path: string): string {
  if (thrownField(err, 'code') !== 'ERR_UNKNOWN_FILE_EXTENSION' || !/\.[cm]?ts$/.test(path)) return '';
  return `: node ${process.version} does not run TypeScript: compile the module to JavaScript, or run node 22.18+ / 23.6+`;
}

/** What a handler module threw, as text: an Error's message, anything else as node prints it (never throws). */
function thrownMessage(err: unknown): string {
  return describeThrown(err, { message: 8000, name: 200, stack: 0 }).message;
}

/** The scheduler's own code (its sources, or its build): a frame there is not the handler module's. */
const OWN_DIRS = ['adapters', 'cli', 'client', 'dist', 'engine', 'machines', 'server'].map((d) => join(fileURLToPath(new URL('..', import.meta.url)), d, '/'));

/**
 * ` (at file:line:col)`: the first frame of `err`'s stack in code of the
 * user's (neither node's, nor a dependency's, nor the scheduler's own), so a
 * handler module that throws while it loads or registers says where without
 * a stack trace; '' when it has none.
 */
function thrownAt(err: unknown): string {
  const stack = thrownField(err, 'stack');
  if (typeof stack !== 'string') return '';
  for (const line of stack.split('\n')) {
    const frame = /^\s+at (?:.*? \()?(.+?:\d+:\d+)\)?$/.exec(line)?.[1];
    if (!frame) continue;
    const file = frame.startsWith('file://') ? fileURLToPath(frame.replace(/:\d+:\d+$/, '')) : frame.replace(/:\d+:\d+$/, '');
    if (frame.startsWith('node:') || file.includes('/node_modules/') || OWN_DIRS.some((d) => file.startsWith(d))) continue;
    return ` (at ${frame.startsWith('file://') ? `${file}${frame.slice(frame.search(/:\d+:\d+$/))}` : frame})`;
  }
  return '';
}

/**
 * Where node's parser stops in the JavaScript file at `path` (`file:line`),
 * or null: node's SyntaxError of an ES module carries no location, while
 * `node --check` prints it. Null for a TypeScript file (node cannot check
 * it), for a file that parses (the error is in a module it imports), and
 * for a `.js` file of no declared module type (node 20 checks it as
 * nothing).
 */
function syntaxErrorLine(path: string): string | null {
  if (!/\.[cm]?js$/.test(path)) return null;
  const check = spawnSync(process.execPath, ['--check', path], { encoding: 'utf8', timeout: 5000 });
  const first = check.status === 0 ? undefined : check.stderr?.split('\n')[0];
  return first && /:\d+$/.test(first) ? first : null;
}

/** Jobs a restart's repair reads and moves at once. */
const RESTART_BATCH = 500;

/**
 * The in-process log forgets everything when the process ends, so after a
 * restart no dispatch message survives: issue them again now for every job
 * that was dispatched but not started (published, or pending with its dispatch
 * already sent) instead of waiting for the stale-dispatch timeout. A dispatch
 * row the relay had not sent yet goes out too: a duplicate, which the attempt
 * fence makes harmless. (Jobs that were running are `expireHeldAfterRestart`'s;
 * delayed jobs and retries are in the timers' due query.)
 */
export async function redispatchAfterRestart(timers: Timers, store: JobStore, clock: Clock, logger: Logger, signal?: AbortSignal): Promise<void> {
  // The timers' own query, without its timeout: every dispatch up to now is lost.
  const before = clock.now();
  // A re-dispatch touches its job (updated_at >= before): it sorts last, and is skipped if seen again.
  const count = await inBatches((limit) => store.findLostDispatches(before, limit), (lost) => timers.redispatch(lost), signal);
  // Also with MySQL (no Kafka): not an embedded store's, whose running jobs' leases this start ends too.
  if (count > 0) logger.info('in-process log restart: dispatched jobs again', { count });
}

/**
 * The embedded store's jobs found running at a start were the ended
 * process's (the folder lock holds out any other): their leases end now
 * (LEASE_EXPIRED with `holderGone`, a failed attempt each, retried or dead
 * as at a lease's end) instead of when each lease would have run out.
 */
export async function expireHeldAfterRestart(timers: Timers, store: JobStore, logger: Logger, signal?: AbortSignal): Promise<void> {
  // The timers' own query with no end: every lease held is over.
  const count = await inBatches((limit) => store.findExpiredLeases(Number.MAX_SAFE_INTEGER, limit), (held) => timers.expireHeld(held, 'debug'), signal);
  if (count > 0) logger.info('embedded restart: the attempts of jobs found running ended (a failed attempt each, retried as the job\'s policy says)', { count });
}

/**
 * Reads batches with `read(limit)` and hands each to `apply`, until a read
 * brings no job not seen before; returns the count applied. A job applied
 * leaves the read, or sorts last; one that could not be (a job of another
 * job machine version) stays first: each read asks for as many rows more as
 * were seen. A stop during the start ends it between two batches: the
 * timers' passes recover the rest.
 */
async function inBatches<J extends { id: string }>(
  read: (limit: number) => Promise<J[]>, apply: (jobs: J[]) => Promise<number>, signal?: AbortSignal,
): Promise<number> {
  const done = new Set<string>();
  let count = 0;
  while (!signal?.aborted) {
    const batch = (await read(RESTART_BATCH + done.size)).filter((j) => !done.has(j.id));
    if (batch.length === 0) break;
    for (const j of batch) done.add(j.id);
    count += await apply(batch); // each job at debug: the count is said once
  }
  return count;
}
