/**
 * This scheduler under test, three ways:
 * - `atsMysql`: MariaDB + Kafka, all roles in the benchmark process;
 * - `atsSplit`: MariaDB + Kafka, api / relay+timers / worker as three `ats start` processes;
 * - `atsEmbedded`: the embedded default (SQLite + in-process log), all roles in process.
 * Start and done times come from the job's own history (`job_events`):
 * STARTED (first attempt) and SUCCEEDED, stamped by the worker.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createPool, type Pool } from 'mysql2/promise';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig, type RawConfig } from '../../cli/config.js';
import { HandlerRegistry, registerDemoHandlers } from '../../engine/handlers.js';
import { createLogger } from '../../engine/logger.js';
import type { JobSpec } from '../../engine/ports.js';
import { mathRandom, systemClock, ulidIds } from '../../engine/system.js';
import { TransitionService } from '../../engine/transitions.js';
import { createMysqlStore } from '../../adapters/mysql/index.js';
import { BENCH_JOB_TYPE, register } from '../handlers.js';
import { runId, type BenchJob, type CaseOptions, type Driver, type JobTimes } from '../lib/driver.js';
import { startRole, type RoleProcess } from '../lib/roles.js';
import { benchTracing, tracingOn } from '../lib/tracing.js';
import { createBenchDatabase, deleteTopicsWithPrefix, kafkaBrokers } from '../lib/services.js';

/** Every job: 2 attempts, retried at once (fixed 0 ms backoff), like the peers' settings. */
export function benchSpec(job: BenchJob): JobSpec {
  return {
    type: BENCH_JOB_TYPE, payload: job, queue: 'default', maxAttempts: 2,
    backoff: { kind: 'fixed', delayMs: 0 }, timeoutMs: 60_000, priority: 0,
  };
}

const httpItem = (job: BenchJob) => ({ type: BENCH_JOB_TYPE, payload: job, maxAttempts: 2, backoff: { kind: 'fixed', delayMs: 0 } });
const httpBody = (job: BenchJob) => JSON.stringify(httpItem(job));

const FINISHED = "SELECT COUNT(*) AS n FROM jobs WHERE state IN ('done', 'dead', 'cancelled')";
const TIMES = "SELECT job_id, type, MIN(at) AS at FROM job_events WHERE type IN ('STARTED', 'SUCCEEDED') GROUP BY job_id, type";

function foldTimes(rows: Array<{ job_id: string; type: string; at: number | string }>): Map<string, JobTimes> {
  const partial = new Map<string, Partial<JobTimes>>();
  for (const r of rows) {
    const t = partial.get(r.job_id) ?? {};
    if (r.type === 'STARTED') t.started = Number(r.at);
    else t.done = Number(r.at);
    partial.set(r.job_id, t);
  }
  const out = new Map<string, JobTimes>();
  for (const [id, t] of partial) if (t.started !== undefined && t.done !== undefined) out.set(id, t as JobTimes);
  return out;
}

const registry = () => register(registerDemoHandlers(new HandlerRegistry()));

/**
 * `ATS_ADVISOR` and `ATS_EVENTS_FORMAT` as the benchmark was started with (the
 * role processes of the split cases inherit them): the defaults when unset.
 */
const envSettings = (): RawConfig => ({
  ...(process.env.ATS_ADVISOR ? { advisor: process.env.ATS_ADVISOR } : {}),
  ...(process.env.ATS_EVENTS_FORMAT ? { eventsFormat: process.env.ATS_EVENTS_FORMAT } : {}),
});

const DEFAULTS_NOTE = 'scheduler defaults otherwise (relay batch 500, relay poll 50 ms, timers poll 250 ms, Kafka topics of 3 partitions; Prometheus metrics on)';
const ROLES = ['api', 'relay', 'worker', 'timers'];
const TRACING_NOTE = () => (tracingOn() ? '; every job traced (BENCH_TRACING=1: OTLP http/protobuf to a receiver process)' : '');

/** All roles in this process on MariaDB + Kafka. */
export async function atsMysql(opts: CaseOptions): Promise<Driver> {
  const id = runId();
  const db = await createBenchDatabase(id);
  const prefix = `ats-bench-${id}.`;
  const raw: RawConfig = {
    mysqlUrl: db.url, kafkaBrokers: kafkaBrokers().join(','), topicPrefix: prefix, concurrency: opts.concurrency,
    // The benchmark's HTTP submits come from one address without a key: no per-address rate limit.
    logLevel: 'error', port: 0, rateLimit: 0, ...envSettings(),
  };
  const traced = await benchTracing(ROLES);
  const system = await compose(compileConfig(raw, { hostname: 'bench', pid: process.pid }), { registry: registry(), logger: createLogger('error'), tracing: traced?.tracing });
  await system.start();
  const reads = createPool({ uri: db.url, connectionLimit: 2, supportBigNumbers: true });
  return {
    settings: `one process, all roles; worker concurrency ${opts.concurrency}; bulk submit = TransitionService.submitMany (${opts.bulkSize} per call), one submit = submit(); ${DEFAULTS_NOTE}${TRACING_NOTE()}`,
    servers: ['mariadb', 'kafka'],
    processes: () => ({}),
    submitBulk: async (jobs) => (await system.transitions.submitMany(jobs.map(benchSpec))).map((r) => r.job.id),
    submitOne: async (job) => (await system.transitions.submit(benchSpec(job))).job.id,
    countFinished: () => mysqlCount(reads),
    times: async () => foldTimes((await reads.query(TIMES))[0] as never),
    async stop() {
      await reads.end();
      try {
        await system.stop();
      } finally {
        await traced?.stop();
        await db.drop();
        await deleteTopicsWithPrefix(prefix).catch(() => undefined);
      }
    },
  };
}

async function mysqlCount(pool: Pool): Promise<number> {
  const [rows] = await pool.query(FINISHED);
  return Number((rows as Array<{ n: number }>)[0]!.n);
}

/**
 * api, relay+timers and worker as three processes. Submits go over HTTP
 * (bulk: `POST /v1/jobs/batch`, one bulk call a request; one: `POST /v1/jobs`,
 * `httpConcurrency` requests in flight) or, with `submit: 'direct'`, through `submitMany` from this
 * process straight into MariaDB (a client library), as the relay's other
 * processes would see a remote api's commits: through its fallback poll.
 */
export function atsSplit(submit: 'http' | 'direct', httpConcurrency = 32) {
  return async (opts: CaseOptions): Promise<Driver> => {
    const id = runId();
    const db = await createBenchDatabase(id);
    const prefix = `ats-bench-${id}.`;
    const env = {
      MYSQL_URL: db.url, KAFKA_BROKERS: kafkaBrokers().join(','), ATS_TOPIC_PREFIX: prefix, ATS_RATE_LIMIT: '0',
      ATS_WORKER_CONCURRENCY: String(opts.concurrency), ATS_HANDLERS: 'bench/handlers.ts', PORT: '0',
    };
    const roles: RoleProcess[] = [];
    let direct: { transitions: TransitionService; close(): Promise<void> } | null = null;
    const reads = createPool({ uri: db.url, connectionLimit: 2, supportBigNumbers: true });
    try {
      // The api migrates the database first; the others then find it done.
      roles.push(await startRole('api', 'api', env));
      roles.push(...(await Promise.all([startRole('relay', 'relay,timers', env), startRole('worker', 'worker', env)])));
      if (submit === 'direct') direct = await directSubmitter(db.url);
    } catch (err) {
      await Promise.all(roles.map((r) => r.stop()));
      await reads.end();
      await db.drop();
      throw err;
    }
    const url = roles[0]!.url!;
    const post = async (job: BenchJob): Promise<string> => {
      const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: httpBody(job) });
      const body = (await res.json()) as { id?: string };
      if (res.status !== 201 || !body.id) throw new Error(`POST /v1/jobs answered ${res.status}: ${JSON.stringify(body)}`);
      return body.id;
    };
    return {
      settings: `processes apart: api, relay+timers, worker (each \`ats start --role ...\`); worker concurrency ${opts.concurrency}; ` +
        (submit === 'http'
          ? `bulk submits over HTTP, POST /v1/jobs/batch (${opts.bulkSize} per request); one submit = POST /v1/jobs, ${httpConcurrency} requests in flight`
          : `bulk submit = submitMany (${opts.bulkSize} per call) from the benchmark process straight into MariaDB; the relay process sees those commits through its 50 ms poll`) +
        `; ${DEFAULTS_NOTE}`,
      servers: ['mariadb', 'kafka'],
      processes: () => Object.fromEntries(roles.map((r) => [r.name, r.pid])),
      submitBulk: async (jobs) => {
        if (direct) return (await direct.transitions.submitMany(jobs.map(benchSpec))).map((r) => r.job.id);
        return postJobsBatch(url, jobs.map(httpItem));
      },
      submitOne: async (job) => (direct ? (await direct.transitions.submit(benchSpec(job))).job.id : post(job)),
      countFinished: () => mysqlCount(reads),
      times: async () => foldTimes((await reads.query(TIMES))[0] as never),
      peaks: () => Object.fromEntries(roles.map((r) => [r.name, r.peakMiB()])),
      async stop() {
        await reads.end();
        await direct?.close();
        await Promise.all(roles.map((r) => r.stop()));
        await db.drop();
        await deleteTopicsWithPrefix(prefix).catch(() => undefined);
      },
    } as Driver;
  };
}

async function directSubmitter(url: string): Promise<{ transitions: TransitionService; close(): Promise<void> }> {
  const store = await createMysqlStore({ url });
  const transitions = new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds() });
  return { transitions, close: () => store.close() };
}

/** `POST /v1/jobs/batch` to the api at `url`; the created jobs' ids in order, or throws if the request or any item was refused. */
export async function postJobsBatch(url: string, items: readonly unknown[]): Promise<string[]> {
  const res = await fetch(`${url}/v1/jobs/batch`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jobs: items }),
  });
  const body = (await res.json()) as { results?: Array<{ status: number; id?: string }> };
  const ids = body.results?.map((r) => (r.status === 201 ? r.id : undefined));
  if (res.status !== 200 || !ids || ids.length !== items.length || ids.some((i) => !i)) {
    throw new Error(`POST /v1/jobs/batch answered ${res.status}: ${JSON.stringify(body).slice(0, 300)}`);
  }
  return ids as string[];
}

/** The embedded default: SQLite file + in-process log, all roles in this process. */
export async function atsEmbedded(opts: CaseOptions): Promise<Driver> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-bench-'));
  const raw: RawConfig = { dataDir: dir, concurrency: opts.concurrency, logLevel: 'error', port: 0, rateLimit: 0, ...envSettings() };
  const traced = await benchTracing(ROLES);
  const system: System = await compose(compileConfig(raw, { hostname: 'bench', pid: process.pid }), { registry: registry(), logger: createLogger('error'), tracing: traced?.tracing });
  await system.start();
  const reads = new Database(join(dir, 'ats.sqlite'), { readonly: true });
  return {
    settings: `one process, all roles, SQLite (WAL, synchronous=NORMAL, answers after a shared fdatasync of the log) + in-process log; worker concurrency ${opts.concurrency}; bulk submit = submitMany (${opts.bulkSize} per call); scheduler defaults otherwise (Prometheus metrics on)${TRACING_NOTE()}`,
    servers: [],
    processes: () => ({}),
    submitBulk: async (jobs) => (await system.transitions.submitMany(jobs.map(benchSpec))).map((r) => r.job.id),
    submitOne: async (job) => (await system.transitions.submit(benchSpec(job))).job.id,
    countFinished: async () => Number((reads.prepare(FINISHED).get() as { n: number }).n),
    times: async () => foldTimes(reads.prepare(TIMES).all() as never),
    async stop() {
      reads.close();
      try {
        await system.stop();
      } finally {
        await traced?.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
