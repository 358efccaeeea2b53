/**
 * An upgrade in place, as a user makes one between releases, on both stores
 * (a SQLite file, a MariaDB database): a database migrated by an older build
 * and holding what that build wrote (jobs in every state with their events,
 * outbox rows published and not, then schedules, limits, API keys, audit
 * entries, workers and progress, then a workflow instance), each written at
 * the schema of the release that brought its table, is then opened by this
 * build: it migrates to the latest schema at start, reads everything back,
 * and runs every live job, the schedule and the workflow to their end.
 *
 * The older rows are written by hand with that schema's columns (the job
 * machine is the same one, version 1, whose snapshots then carried no
 * `machine`; a running job had no `due_at` before 0004); rows of the later
 * tables are made by this build on a scratch store and copied with the
 * columns the older schema had.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createConnection, createPool, type Pool, type RowDataPacket } from 'mysql2/promise';
import { createMachine } from 'xstate';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig, type RawConfig } from '../../cli/config.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import type { JobRecord } from '../../engine/ports.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import type { JobEvent } from '../../machines/job.machine.js';
import { start, step, type PersistedJob } from '../../machines/lifecycle.js';
import { makeKey } from '../../tests/helpers/keys.js';
import { mysqlUrl, requireMysql, withDatabase } from '../../tests/helpers/mysql.js';
import { waitForJob } from '../../tests/helpers/system.js';
import { migrateMysql, MYSQL_MIGRATIONS_DIR } from '../mysql/migrate.js';
import { migrateSqlite, SQLITE_MIGRATIONS_DIR } from '../sqlite/migrate.js';
import { loadMigrations } from './migrations.js';

const clock = { now: () => Date.now() };
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tmp = (prefix: string): string => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};

/** A folder holding the migrations of `dir` numbered below `version`: the schema of an older release. */
function migrationsBefore(dir: string, version: number): string {
  const out = tmp('ats-upgrade-mig-');
  for (const file of readdirSync(dir)) if (/^\d{4}_/.test(file) && Number(file.slice(0, 4)) < version) cpSync(join(dir, file), join(out, file));
  return out;
}

type Row = Record<string, unknown>;

/** The database being upgraded, reached below the store, as the older build's rows are written. */
interface Target {
  /** Migrates with the migrations numbered below `version`. */
  migrateBefore(version: number): Promise<void>;
  columns(table: string): Promise<string[]>;
  query(sql: string, params?: unknown[]): Promise<Row[]>;
  /** The settings of a process on this database. */
  raw: RawConfig;
  latest: number[];
  close(): Promise<void>;
  drop(): Promise<void>;
}

async function insert(t: Target, table: string, row: Row): Promise<void> {
  const cols = Object.keys(row);
  await t.query(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`, cols.map((c) => row[c]));
}

/** Copies `rows` (of this build's schema) into `table` of the target, keeping the columns the target's schema has. */
async function copyRows(t: Target, table: string, rows: Row[]): Promise<void> {
  const have = new Set(await t.columns(table));
  for (const r of rows) await insert(t, table, Object.fromEntries(Object.entries(r).filter(([c]) => have.has(c))));
}

function sqliteTarget(): Target {
  const dataDir = tmp('ats-upgrade-sqlite-');
  const db = new Database(join(dataDir, 'ats.sqlite'));
  db.pragma('journal_mode = WAL');
  return {
    migrateBefore: (v) => migrateSqlite(db, clock, migrationsBefore(SQLITE_MIGRATIONS_DIR, v)),
    columns: async (table) => (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((r) => r.name),
    query: async (sql, params = []) => {
      const s = db.prepare(sql);
      return s.reader ? (s.all(...params) as Row[]) : (s.run(...params), []);
    },
    raw: { dataDir },
    latest: loadMigrations(SQLITE_MIGRATIONS_DIR).map((m) => m.version),
    close: async () => void db.close(),
    drop: async () => undefined,
  };
}

async function mysqlTarget(): Promise<Target> {
  const name = `ats_upgrade_${randomBytes(5).toString('hex')}`;
  const admin = async (sql: string) => {
    const c = await createConnection({ uri: withDatabase(mysqlUrl(), '') });
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  const url = withDatabase(mysqlUrl(), name);
  const pool: Pool = createPool({ uri: url, connectionLimit: 2 });
  return {
    migrateBefore: (v) => migrateMysql(pool, clock, migrationsBefore(MYSQL_MIGRATIONS_DIR, v)),
    columns: async (table) => {
      const [rows] = await pool.query<RowDataPacket[]>(
        'SELECT column_name AS c FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position', [table]);
      return rows.map((r) => String(r.c));
    },
    query: async (sql, params = []) => {
      const [rows] = await pool.query(sql, params);
      return Array.isArray(rows) ? (rows as Row[]) : [];
    },
    raw: { mysqlUrl: url },
    latest: loadMigrations(MYSQL_MIGRATIONS_DIR).map((m) => m.version),
    close: () => pool.end(),
    drop: () => admin(`DROP DATABASE IF EXISTS \`${name}\``),
  };
}

const FAST: RawConfig = {
  roles: 'api,relay,worker,timers', port: 0, leaseMs: 2000, heartbeatMs: 500, relayPollMs: 50, timersPollMs: 100,
  publishedTimeoutMs: 2000, shutdownGraceMs: 1000, logLevel: 'silent',
};

/** A workflow that waits 300 ms, then ends. */
const waiting = createMachine({ id: 'wait', initial: 'waiting', states: { waiting: { after: { 300: 'over' } }, over: { type: 'final' } }, output: () => ({ waited: true }) });

function registry(): HandlerRegistry {
  return new HandlerRegistry()
    .register('up.echo', async (payload) => ({ echoed: payload }))
    .workflow('up.wait', waiting);
}

async function composed(raw: RawConfig): Promise<System> {
  const config = compileConfig({ ...FAST, ...raw }, { hostname: 'test', pid: process.pid });
  return compose(config, { registry: registry(), logger: silentLogger });
}

let seq = 0;
/** A job id of the older build's (a ULID: 26 characters of Crockford's base 32), made in `at`'s millisecond. */
const jobId = (at: number): string => `${at.toString(32).toUpperCase().padStart(10, '0')}${String(seq++).padStart(16, '0')}`.replace(/[ILOU]/g, 'X');

/** A job the older build (schema 0001) wrote, stepped through `events`: its row, its events and its snapshot. */
function oldJob(at: number, events: (s: PersistedJob) => JobEvent[], o: { key?: string; runAt?: number } = {}) {
  const id = jobId(at);
  const input = { at, maxAttempts: 3, backoff: DEFAULT_BACKOFF, ...(o.runAt !== undefined ? { runAt: o.runAt } : {}) };
  let snap = start(input).next;
  const rows: Row[] = [{ job_id: id, seq: 1, type: 'SUBMITTED', from_state: null, to_state: snap.value, at, data: JSON.stringify(input) }];
  for (const e of events(snap)) {
    const r = step(snap, e);
    assert.ok(r.ok, `${e.type} in ${snap.value}`);
    rows.push({ job_id: id, seq: rows.length + 1, type: e.type, from_state: snap.value, to_state: r.next.value, at: e.at, data: JSON.stringify(e) });
    snap = r.next;
  }
  const c = snap.context;
  const { machine: _machine, ...stored } = snap;
  const waitingNow = snap.value === 'retrying' || (snap.value === 'pending' && c.dispatchedFor !== c.attempt + 1);
  const job: Row = {
    id, type: 'up.echo', queue: 'default', state: snap.value, version: rows.length, attempt: c.attempt,
    // The older projection: a running job's lease end was in lease_until only (0004 copies it to due_at).
    due_at: waitingNow ? c.runAt : null, lease_until: snap.value === 'running' ? c.leaseUntil : null,
    priority: 0, timeout_ms: 30_000, idempotency_key: o.key ?? null, request_hash: o.key ? 'a'.repeat(64) : null,
    payload: JSON.stringify({ n: seq }), snapshot: JSON.stringify(stored),
    result: snap.value === 'done' ? JSON.stringify(c.result) : null, last_error: c.lastError ? JSON.stringify(c.lastError) : null,
    created_at: at, updated_at: c.updatedAt,
  };
  return { id, job, events: rows, snap };
}

const dispatchRow = (id: string, attempt: number, dispatch: number, at: number, publishedAt: number | null): Row => ({
  topic: 'ats.dispatch', msg_key: id, payload: JSON.stringify({ jobId: id, attempt, type: 'up.echo', queue: 'default', priority: 0, dispatch }),
  headers: JSON.stringify({ 'ats-kind': 'dispatch' }), created_at: at, published_at: publishedAt,
});

/** Rows this build writes for the later tables, made on a scratch embedded store. */
async function laterRows(): Promise<{ tables: Map<string, Row[]>; key: string; workflowId: string }> {
  // Composed (the store migrated) but not started: no role runs the schedule or the timer.
  const system = await composed({ dataDir: tmp('ats-upgrade-scratch-') });
  try {
    const store = system.store;
    const now = Date.now();
    await system.schedules.create('default', { name: 'up-every-second', cron: '* * * * * *', job: {
      type: 'up.echo', payload: { from: 'schedule' }, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0,
    } });
    await store.putLimit('up-key', { concurrency: 1, rate: null }, now);
    const key = await makeKey(store, 'default', ['submit', 'read', 'operate', 'admin'], 'upgrade');
    await store.recordAudit({ at: now, keyId: key.record.id, tenant: 'default', action: 'key.create', target: key.record.id });
    await store.upsertWorker({ id: 'old-worker', host: 'old', pid: 1, queues: ['default'], types: ['up.echo'], concurrency: 4, startedAt: now - 60_000, lastSeenAt: now - 60_000 });
    const started = await system.workflows.start({ tenant: 'default', name: 'up.wait', input: { n: 1 } });
    assert.ok(started.ok);
    const db = (store as unknown as { db: Database.Database }).db;
    const tables = new Map<string, Row[]>();
    for (const t of ['schedules', 'limits', 'api_keys', 'audit_log', 'workers', 'workflows', 'workflow_events', 'workflow_timers']) {
      tables.set(t, db.prepare(`SELECT * FROM ${t}`).all() as Row[]);
    }
    return { tables, key: key.key, workflowId: started.workflow.id };
  } finally {
    await system.stop();
  }
}

async function api(url: string, key: string, path: string, method = 'GET'): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${key}`, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) }, ...(method === 'POST' ? { body: '{}' } : {}) });
  return { status: res.status, body: await res.json() };
}

async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(v)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function upgrade(t: Target): Promise<void> {
  const later = await laterRows();
  const t0 = Date.now() - 10 * 60_000;
  const at = (s: number) => t0 + s * 1000;

  // The first release (0001): jobs in every state, their events, outbox rows.
  await t.migrateBefore(2);
  const jobs = {
    delayed: oldJob(at(1), () => [], { runAt: at(5), key: 'k1' }),
    dispatched: oldJob(at(2), (s) => [{ type: 'DISPATCH', at: s.context.runAt }]),
    published: oldJob(at(3), () => [{ type: 'DISPATCH', at: at(3) }, { type: 'PUBLISHED', at: at(4), attempt: 1 }]),
    running: oldJob(at(4), () => [
      { type: 'DISPATCH', at: at(4) }, { type: 'STARTED', at: at(5), attempt: 1, leaseUntil: at(35), workerId: 'old-worker' },
    ]),
    retrying: oldJob(at(5), () => [
      { type: 'DISPATCH', at: at(5) }, { type: 'STARTED', at: at(6), attempt: 1, leaseUntil: at(36), workerId: 'old-worker' },
      { type: 'FAILED', at: at(7), attempt: 1, rand: 0.5, error: { message: 'boom', name: 'Error', retryable: true } },
    ]),
    done: oldJob(at(6), () => [
      { type: 'DISPATCH', at: at(6) }, { type: 'STARTED', at: at(7), attempt: 1, leaseUntil: at(37), workerId: 'old-worker' },
      { type: 'SUCCEEDED', at: at(8), attempt: 1, result: { old: true } },
    ]),
    dead: oldJob(at(7), () => [
      { type: 'DISPATCH', at: at(7) }, { type: 'STARTED', at: at(8), attempt: 1, leaseUntil: at(38), workerId: 'old-worker' },
      { type: 'FAILED', at: at(9), attempt: 1, rand: 0.5, error: { message: 'no', retryable: false } },
    ]),
    cancelled: oldJob(at(8), () => [{ type: 'CANCEL', at: at(9), reason: 'not wanted' }]),
  };
  assert.deepEqual(Object.values(jobs).map((j) => j.snap.value), ['pending', 'pending', 'published', 'running', 'retrying', 'done', 'dead', 'cancelled']);
  for (const j of Object.values(jobs)) {
    await insert(t, 'jobs', j.job);
    for (const e of j.events) await insert(t, 'job_events', e);
  }
  // The dispatch of `dispatched` not yet relayed; the one of `published`, relayed (0002 deletes it).
  await insert(t, 'outbox', dispatchRow(jobs.dispatched.id, 1, 1, at(2), null));
  await insert(t, 'outbox', dispatchRow(jobs.published.id, 1, 1, at(3), at(4)));

  // Up to 0012: schedules, limits and a keyed job, keys and the audit log, workers, progress.
  await t.migrateBefore(13);
  const limited = oldJob(at(10), (s) => [{ type: 'DISPATCH', at: s.context.runAt }]);
  await insert(t, 'jobs', {
    ...limited.job, concurrency_key: 'up-key',
    trace_context: JSON.stringify({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }),
  });
  for (const e of limited.events) await insert(t, 'job_events', e);
  await insert(t, 'outbox', { ...dispatchRow(limited.id, 1, 1, at(10), null), message_count: null });
  await insert(t, 'job_counts', { queue: 'default', type: 'up.echo', state: 'pending', shard: 1, n: 1 });
  await insert(t, 'job_progress', { job_id: jobs.running.id, type: 'up.echo', queue: 'default', attempt: 1, value: '50', at: at(6) });
  for (const table of ['schedules', 'limits', 'api_keys', 'audit_log', 'workers']) await copyRows(t, table, later.tables.get(table)!);

  // Up to 0015: a workflow instance waiting on its timer.
  await t.migrateBefore(16);
  for (const table of ['workflows', 'workflow_events', 'workflow_timers']) await copyRows(t, table, later.tables.get(table)!);
  await t.close();

  // This build starts on it: it migrates, then serves.
  const system = await composed(t.raw);
  try {
    const { url } = await system.start();
    const store = system.store;
    const ledger = 'db' in store
      ? (store as unknown as { db: Database.Database }).db.prepare('SELECT version FROM schema_migrations').all() as Row[]
      : ((await (store as unknown as { pool: Pool }).pool.query('SELECT version FROM schema_migrations'))[0] as Row[]);
    assert.deepEqual(ledger.map((r) => Number(r.version)).sort((a, b) => a - b), t.latest, 'every migration applied');
    for (const j of Object.values(jobs)) {
      const read = await store.getJob(j.id);
      assert.equal(read?.tenant, 'default', `${j.snap.value}: the default tenant's`);
      assert.equal(read?.snapshot.machine, 1, 'an unversioned snapshot reads as machine 1');
      // The roles already run: a live job may have moved on since.
      const events = (await store.getEvents(j.id)).slice(0, j.events.length);
      assert.deepEqual(events.map((e) => [e.seq, e.type, e.from, e.to, e.at]), j.events.map((e) => [e.seq, e.type, e.from_state, e.to_state, e.at]), `${j.snap.value}: every event kept`);
    }
    assert.equal((await store.findByIdempotencyKey('default', 'k1', 'default'))?.id, jobs.delayed.id, 'the idempotency key still found');
    assert.equal((await store.getLimit('up-key'))?.concurrency, 1);
    assert.equal((await store.getProgress(jobs.running.id))?.value, 50);

    // Through the API, with the key made before tenants.
    const got = await api(url!, later.key, `/v1/jobs/${jobs.done.id}`);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.deepEqual(got.body.result, { old: true });
    assert.equal((await api(url!, later.key, '/v1/schedules/up-every-second')).status, 200);
    assert.equal((await api(url!, later.key, `/v1/workflows/${later.workflowId}`)).status, 200);
    assert.equal((await api(url!, later.key, `/v1/jobs/${jobs.dead.id}/redrive`, 'POST')).status, 200);

    // Every live job runs to its end.
    const live = [jobs.delayed, jobs.dispatched, jobs.published, jobs.running, jobs.retrying, jobs.dead, limited];
    for (const j of live) await waitForJob(store, j.id, (r: JobRecord) => r.snapshot.value === 'done', 60_000, `${j.snap.value} job done`);
    assert.equal((await store.getJob(jobs.cancelled.id))?.snapshot.value, 'cancelled');
    assert.deepEqual((await store.getJob(jobs.done.id))?.snapshot.context.result, { old: true });

    // The schedule fires, its job runs; the workflow's timer fires, the instance ends.
    const fired = await until('a tick of the schedule', () => store.getSchedule('default', 'up-every-second'), (s) => s !== null && s.lastJobId !== null);
    await waitForJob(store, fired!.lastJobId!, (r) => r.snapshot.value === 'done', 60_000, 'the scheduled job done');
    await until('the workflow', () => store.getWorkflow(later.workflowId), (w) => w?.state.status === 'done');
    assert.deepEqual(
      (await store.jobCounts()).map((c) => JSON.stringify(c)).sort(),
      (await store.recountJobs()).map((c) => JSON.stringify(c)).sort(), 'the counters (backfilled by 0003, moved to tenants by 0013) are a recount\'s, once every job ended');
  } finally {
    await system.stop();
  }
}

describe('upgrade in place from the first release\'s schema', () => {
  it('SQLite: migrates at start, reads everything back, and runs every live job, schedule and workflow to its end', { timeout: 180_000 }, async () => {
    await upgrade(sqliteTarget());
  });

  it('MariaDB: the same', { timeout: 180_000 }, async (t) => {
    if (!(await requireMysql())) return t.skip('MariaDB not reachable');
    const target = await mysqlTarget();
    try {
      await upgrade(target);
    } finally {
      await target.drop();
    }
  });
});

