/**
 * A database blip while a worker writes an outcome: the worker's MariaDB
 * connection is killed (KILL, from an admin connection) while its SUCCEEDED
 * write waits on the job's row lock. The worker writes the outcome again and
 * the job ends done on its only attempt, instead of LEASE_EXPIRED → dead.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { createConnection, type Connection } from 'mysql2/promise';
import { createMemoryLog } from '../../adapters/memory/index.js';
import { createMysqlStore } from '../../adapters/mysql/index.js';
import { compileConfig } from '../../cli/config.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import type { EventLog, JobStore } from '../../engine/ports.js';
import { Relay } from '../../engine/relay.js';
import { mathRandom, systemClock, ulidIds } from '../../engine/system.js';
import { Timers } from '../../engine/timers.js';
import { TransitionService } from '../../engine/transitions.js';
import { Waker } from '../../engine/wake.js';
import { Worker } from '../../engine/worker.js';
import { createTestDatabase, requireMysql, type TestDatabase } from '../helpers/mysql.js';
import { FAST, isState, waitForJob } from '../helpers/system.js';

let db: TestDatabase;
let admin: Connection;
let store: JobStore;
let log: EventLog;
let transitions: TransitionService;
let relay: Relay;
let timers: Timers;
let worker: Worker;
const kills: number[] = [];

/** Takes the job's row lock, so the worker's write of it blocks (and can be found, and killed). */
async function lockJobRow(jobId: string): Promise<void> {
  await admin.query('START TRANSACTION');
  await admin.query('SELECT id FROM jobs WHERE id = ? FOR UPDATE', [jobId]);
}

/** KILLs the connection whose locking read of a job waits: the worker's. */
async function killBlockedWriter(): Promise<number> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const [rows] = await admin.query(
      `SELECT ID AS id FROM information_schema.PROCESSLIST
        WHERE DB = ? AND ID <> CONNECTION_ID() AND COMMAND = 'Query' AND INFO LIKE '%FROM jobs%FOR UPDATE%'`,
      [db.name],
    );
    const id = (rows as Array<{ id: number }>)[0]?.id;
    if (id !== undefined) {
      await admin.query(`KILL ${Number(id)}`);
      return Number(id);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the outcome write never blocked on the row lock');
}

before(async () => {
  await requireMysql();
  db = await createTestDatabase();
  admin = await createConnection({ uri: db.url });
  const registry = new HandlerRegistry().register('test.ok', async (_p, ctx) => ({ attempt: ctx.attempt }));
  const clock = systemClock;
  const logger = silentLogger;
  store = await createMysqlStore({ url: db.url, clock });
  await store.migrate();
  log = createMemoryLog();
  await log.ensureTopics();
  const waker = new Waker();
  transitions = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds(), onCommit: () => waker.notify() });
  // The worker's transitions: its first outcome write meets a killed connection.
  const wrapped = Object.create(transitions) as TransitionService;
  let armed = true;
  wrapped.applyMany = async (items) => {
    const outcome = items.find((it) => it.event.type === 'SUCCEEDED');
    if (!armed || !outcome) return transitions.applyMany(items);
    armed = false;
    await lockJobRow(outcome.jobId);
    const write = transitions.applyMany(items);
    write.catch(() => undefined);
    try {
      kills.push(await killBlockedWriter());
    } finally {
      await admin.query('ROLLBACK');
    }
    return write;
  };
  const { relay: relayOpts, timers: timersOpts, worker: workerOpts } = compileConfig(FAST, { hostname: 'test', pid: process.pid });
  relay = new Relay({ store, log, transitions, clock, logger, waker }, relayOpts);
  timers = new Timers({ store, transitions, clock, logger }, timersOpts);
  worker = new Worker({ log, transitions: wrapped, clock, logger, registry }, workerOpts);
  relay.start();
  timers.start();
  await worker.start();
});
after(async () => {
  await worker?.stop();
  await relay?.stop();
  await timers?.stop();
  await log?.close();
  await store?.close();
  await admin?.end();
  await db?.drop();
});

it('a SUCCEEDED whose connection is killed mid-write is written again: done on attempt 1', async () => {
  const r = await transitions.submit({
    type: 'test.ok', payload: {}, queue: 'default', maxAttempts: 1,
    backoff: { kind: 'fixed', delayMs: 100 }, timeoutMs: 30_000, priority: 0,
  });
  assert.ok(r.ok);
  // FAST leases last 2 s: an outcome left unwritten is LEASE_EXPIRED (→ dead, one attempt) well within 10 s.
  const job = await waitForJob(store, r.job.id, isState('done', 'dead'), 10_000);
  assert.equal(kills.length, 1, 'the worker’s connection was killed once');
  assert.equal(job.snapshot.value, 'done', `history: ${(await store.getEvents(r.job.id)).map((e) => e.type)}`);
  assert.equal(job.snapshot.context.attempt, 1);
  assert.equal(worker.counters.outcomeRetries >= 1, true);
});
