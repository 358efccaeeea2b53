/**
 * Fault injection, whole system: api, relay, two workers and timers as child
 * processes (`ats start --role ...`) on a PRIVATE mariadbd and a PRIVATE Kafka
 * broker, both started here (the shared services are never touched). While
 * ~3,000 jobs flow in over HTTP (each with an Idempotency-Key, retried until
 * accepted; every fifth fails its first attempt), three faults hit in turn:
 *
 *   1. the broker stops for ~10 s and starts again (same data);
 *   2. mariadbd is SIGKILLed for ~7 s and starts again on the same datadir;
 *   3. the relay and one worker are SIGKILLed.
 *
 * The test is the supervisor: a role process that exits is restarted after
 * a second, and every exit is recorded with its code. After each fault it
 * waits for recovery (the first job done after the fault ended, and every
 * job accepted before it done). At the end: every accepted job is done, no
 * job succeeded twice, no job's event `seq` has a gap, no role exited 0 on
 * its own, each role worked again after each fault, the api answered every
 * submit within 5 s and never with a 500 (an unreachable database is a 503).
 * The recovery table is printed.
 *
 * FAULTS_JOBS, FAULTS_KAFKA_PORT (19200; the controller takes the next port)
 * and FAULTS_MYSQL_PORT (13306) change the size and the ports.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createPool, type Pool, type RowDataPacket } from 'mysql2/promise';
import { FAULT_JOB_TYPE } from '../helpers/fault-handlers.js';
import { createPrivateKafka, type PrivateKafka } from '../helpers/kafka-server.js';
import { createPrivateMariadb, type PrivateMariadb } from '../helpers/mariadb-server.js';
import { withDatabase } from '../helpers/mysql.js';
import { freePort } from '../helpers/ports.js';
import { startRole, type RoleProcess } from '../helpers/processes.js';

const JOBS = Number(process.env.FAULTS_JOBS ?? 3000);
const KAFKA_PORT = Number(process.env.FAULTS_KAFKA_PORT ?? 19200);
const MYSQL_PORT = Number(process.env.FAULTS_MYSQL_PORT ?? 13306);
const BROKER_DOWN_MS = Number(process.env.FAULTS_BROKER_DOWN_MS ?? 10_000);
const DB_DOWN_MS = Number(process.env.FAULTS_DB_DOWN_MS ?? 7_000);
/** Submits per second while the faults run. */
const RATE = 25;
/**
 * Jobs held back while the faults run: a third is released as each fault
 * ends, so work arrives after every fault even when long outages used up the
 * paced share (the rest goes out unpaced after the last one).
 */
const RESERVE = Math.floor(JOBS / 5);
const LANES = 8;
const RECOVERY_CAP_MS = 60_000;
const DRAIN_CAP_MS = 90_000;
const RESTART_DELAY_MS = 1000;
const HANDLERS = fileURLToPath(new URL('../helpers/fault-handlers.ts', import.meta.url));
const ROLES = [['api', 'api'], ['relay', 'relay'], ['worker-1', 'worker'], ['worker-2', 'worker'], ['timers', 'timers']] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Exit { name: string; code: number | null; signal: string | null; atMs: number; byTest: boolean }

/** One role, restarted whenever its process exits (as systemd or Kubernetes would). */
class Supervised {
  proc!: RoleProcess;
  incarnation = 0;
  startedAt = 0;
  /** Whether the current process logged "ats ready" (its output buffer keeps only a tail). */
  private isReady = false;
  private killing = false;

  constructor(readonly name: string, readonly role: string, private readonly sup: Supervisor) {
    this.spawn();
  }

  /** The worker id of the current process (`worker-1.3`): STARTED events name it. */
  get id(): string {
    return `${this.name}.${this.incarnation}`;
  }

  ready(): boolean {
    return this.isReady;
  }

  async kill(): Promise<void> {
    this.killing = true;
    await this.proc.kill();
  }

  private spawn(): void {
    this.incarnation++;
    this.startedAt = Date.now();
    const proc = startRole(this.id, this.role, this.sup.env);
    this.proc = proc;
    this.isReady = false;
    const id = this.id;
    proc.child.stdout!.on('data', (d: Buffer) => {
      if (!this.isReady && d.toString().includes('ats ready')) this.isReady = true;
      this.sup.record(id, d);
    });
    proc.child.stderr!.on('data', (d: Buffer) => this.sup.record(id, d));
    proc.child.once('exit', (code, signal) => {
      this.sup.exits.push({ name: this.id, code, signal, atMs: Date.now() - this.sup.t0, byTest: this.killing });
      this.sup.outputs.push(`--- ${this.id} (exit ${code ?? signal})\n${proc.output().slice(-3000)}`);
      this.killing = false;
      if (!this.sup.stopping) setTimeout(() => { if (!this.sup.stopping) this.spawn(); }, RESTART_DELAY_MS);
    });
  }
}

class Supervisor {
  readonly roles = new Map<string, Supervised>();
  readonly exits: Exit[] = [];
  readonly outputs: string[] = [];
  stopping = false;
  readonly t0 = Date.now();

  /** Every line the roles wrote, when FAULTS_LOG_DIR is set (one file per process). */
  private readonly logDir = process.env.FAULTS_LOG_DIR;

  constructor(readonly env: Record<string, string>) {
    if (this.logDir) mkdirSync(this.logDir, { recursive: true });
  }

  record(id: string, d: Buffer): void {
    if (this.logDir) appendFileSync(join(this.logDir, `${id}.log`), d);
  }

  add(name: string, role: string): Supervised {
    const s = new Supervised(name, role, this);
    this.roles.set(name, s);
    return s;
  }

  get(name: string): Supervised {
    return this.roles.get(name)!;
  }

  async waitReady(names: readonly string[], timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const waiting = names.filter((n) => !this.get(n).ready());
      if (waiting.length === 0) return;
      if (Date.now() > deadline) assert.fail(`not ready after ${timeoutMs} ms: ${waiting.join(', ')}\n${this.tail()}`);
      await sleep(100);
    }
  }

  tail(): string {
    const live = [...this.roles.values()].map((r) => `--- ${r.id} (running)\n${r.proc.output().slice(-3000)}`);
    return [...this.outputs.slice(-6), ...live].join('\n');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.roles.values()].map((r) => r.proc.kill()));
  }
}

interface Fault {
  name: string;
  start: number;
  end: number;
  /** ms from the end of the fault to the first job done after it. */
  firstDoneMs: number | null;
  /** ms from the end of the fault until every job accepted before the end was done. */
  drainedMs: number | null;
}

let mariadb: PrivateMariadb | undefined;
let kafka: PrivateKafka | undefined;
let sup: Supervisor | undefined;
let pool: Pool;
let apiUrl = '';
const accepted = new Map<number, { id: string; at: number }>();
/** HTTP answers (status or network error) per phase: "flow" or the fault in progress or recovering. */
const answers = new Map<string, number>();
let phase = 'flow';
const note = (answer: string) => {
  const key = `${phase}: ${answer}`;
  answers.set(key, (answers.get(key) ?? 0) + 1);
};
const rejected: string[] = [];
const faults: Fault[] = [];
let runCompleted = false;

/** A query on the private server, retried while it is down or restarting. */
async function q<T = RowDataPacket[]>(sql: string, params: unknown[] = [], timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const [rows] = await pool.query(sql, params);
      return rows as T;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

const count = async (sql: string, params: unknown[] = []) => Number((await q<Array<{ n: number | string }>>(sql, params))[0]!.n);

before(async () => {
  mariadb = createPrivateMariadb(MYSQL_PORT);
  kafka = await createPrivateKafka(KAFKA_PORT);
  await Promise.all([mariadb.start(), kafka.start()]);
  const database = `ats_faults_${randomBytes(4).toString('hex')}`;
  pool = createPool({ uri: mariadb.url, connectionLimit: 4, connectTimeout: 1000 });
  await pool.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  await pool.end();
  const url = withDatabase(mariadb.url, database);
  pool = createPool({ uri: url, connectionLimit: 4, connectTimeout: 1000 });
  const port = await freePort();
  apiUrl = `http://127.0.0.1:${port}`;
  const prefix = `faults-${randomBytes(3).toString('hex')}.`;
  sup = new Supervisor({
    MYSQL_URL: url, KAFKA_BROKERS: kafka.brokers, ATS_TOPIC_PREFIX: prefix, ATS_WORKER_GROUP: 'workers',
    ATS_HANDLERS: HANDLERS, LOG_LEVEL: 'info', PORT: String(port), HOST: '127.0.0.1',
    ATS_LEASE_MS: '3000', ATS_HEARTBEAT_MS: '1000', ATS_PUBLISHED_TIMEOUT_MS: '10000', ATS_TIMERS_POLL_MS: '100',
    ATS_RELAY_POLL_MS: '50', ATS_WORKER_CONCURRENCY: '20', ATS_SHUTDOWN_GRACE_MS: '1000',
  });
  // The api first: it migrates the database before the others race to.
  sup.add('api', 'api');
  await sup.waitReady(['api']);
  for (const [name, role] of ROLES.slice(1)) sup.add(name, role);
  await sup.waitReady(ROLES.map(([n]) => n));
});

after(async () => {
  await sup?.stop();
  await pool?.end().catch(() => undefined);
  await kafka?.destroy().catch((err) => console.error(err));
  await mariadb?.destroy();
});

/** POST one job until it is accepted (201/200); the same key every time makes a retry safe. */
async function submit(n: number, deadline: number): Promise<void> {
  const body = JSON.stringify({
    type: FAULT_JOB_TYPE, payload: { n, failOnce: n % 5 === 0 }, queue: 'faults', maxAttempts: 5,
    backoff: { kind: 'fixed', delayMs: 200 }, timeoutMs: 10_000,
  });
  while (Date.now() < deadline) {
    let answer: string;
    try {
      const res = await fetch(`${apiUrl}/v1/jobs`, {
        method: 'POST', body, signal: AbortSignal.timeout(5000),
        headers: { 'content-type': 'application/json', 'idempotency-key': `faults-${n}` },
      });
      answer = String(res.status);
      const text = await res.text();
      if (res.status === 201 || res.status === 200) {
        accepted.set(n, { id: (JSON.parse(text) as { id: string }).id, at: Date.now() });
        note(answer);
        return;
      }
      if (res.status >= 400 && res.status < 500) {
        rejected.push(`job ${n}: ${res.status} ${text.slice(0, 200)}`);
        note(answer);
        return;
      }
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      answer = e.cause?.code ?? e.name;
    }
    note(answer);
    await sleep(250);
  }
  rejected.push(`job ${n}: not accepted before the deadline`);
}

/** Waits until a job was done after `f.end` and every job created up to `f.end` is done. */
async function waitRecovered(f: Fault): Promise<void> {
  for (;;) {
    if (f.firstDoneMs === null) {
      const [row] = await q<Array<{ at: number | null }>>("SELECT MIN(at) AS at FROM job_events WHERE type = 'SUCCEEDED' AND at > ?", [f.end]);
      if (row?.at != null) f.firstDoneMs = Number(row.at) - f.end;
    }
    const open = await count("SELECT COUNT(*) AS n FROM jobs WHERE state <> 'done' AND created_at <= ?", [f.end]);
    if (open === 0 && f.firstDoneMs !== null) {
      f.drainedMs = Date.now() - f.end;
      return;
    }
    if (Date.now() - f.end > RECOVERY_CAP_MS) return;
    await sleep(250);
  }
}

async function fault(name: string, inject: () => Promise<void>): Promise<Fault> {
  const f: Fault = { name, start: Date.now(), end: 0, firstDoneMs: null, drainedMs: null };
  faults.push(f);
  phase = name;
  await inject();
  f.end = Date.now();
  await waitRecovered(f);
  phase = 'flow';
  return f;
}

it(`${JOBS} jobs through a broker stop, a database kill and role kills`, { timeout: 420_000 }, async () => {
  const s = sup!;
  const t0 = Date.now();
  let paced = true;
  let next = 0;
  const submitDeadline = Date.now() + 300_000;
  const lanes = Array.from({ length: LANES }, async () => {
    for (let n = next++; n < JOBS; n = next++) {
      const due = t0 + (n / RATE) * 1000;
      while (paced && (Date.now() < due || n >= JOBS - RESERVE + Math.floor(RESERVE / 3) * faults.filter((f) => f.end > 0).length)) {
        await sleep(100);
      }
      await submit(n, submitDeadline);
    }
  });

  try {
    while (accepted.size < Math.min(300, JOBS / 4)) await sleep(100);
    await fault(`Kafka broker stopped ${BROKER_DOWN_MS / 1000} s`, async () => {
      await kafka!.stop();
      await sleep(BROKER_DOWN_MS);
      await kafka!.start();
    });
    await fault(`mariadbd SIGKILLed ${DB_DOWN_MS / 1000} s`, async () => {
      await mariadb!.kill();
      await sleep(DB_DOWN_MS);
      await mariadb!.start();
    });
    await fault('relay + worker-1 SIGKILLed', async () => {
      const relay = s.get('relay');
      const worker = s.get('worker-1');
      const was = [relay.incarnation, worker.incarnation];
      await Promise.all([relay.kill(), worker.kill()]);
      // Down until the supervisor's replacements are ready.
      const deadline = Date.now() + 60_000;
      while (!(relay.incarnation > was[0]! && relay.ready() && worker.incarnation > was[1]! && worker.ready())) {
        if (Date.now() > deadline) assert.fail(`relay/worker-1 not back within 60 s\n${s.tail()}`);
        await sleep(100);
      }
    });
  } finally {
    paced = false;
  }
  await Promise.all(lanes);

  // Drain: every accepted job done and the outbox empty.
  const drainStart = Date.now();
  for (;;) {
    const open = await count("SELECT COUNT(*) AS n FROM jobs WHERE state <> 'done'");
    const unpublished = await count('SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL');
    if (open === 0 && unpublished === 0) break;
    if (Date.now() - drainStart > DRAIN_CAP_MS) {
      const states = await q("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state");
      console.log(`faults test: not drained after ${DRAIN_CAP_MS} ms: ${JSON.stringify(states)}, ${unpublished} unpublished\n${s.tail()}`);
      break;
    }
    await sleep(250);
  }
  runCompleted = true;
  console.log(`faults test: ${accepted.size} accepted in ${Date.now() - t0} ms; answers ${JSON.stringify(Object.fromEntries(answers))}`);
  console.log(`faults test: exits ${JSON.stringify(s.exits)}`);
  console.log(await faultTable());
  assert.deepEqual(rejected, [], 'every submit was accepted in the end');
  assert.equal(accepted.size, JOBS);
});

/** The recovery table (markdown): downtime, recovery, and per fault window the jobs lost and succeeded twice. */
async function faultTable(): Promise<string> {
  const lostRows = await q<Array<{ id: string; created_at: number }>>("SELECT id, created_at FROM jobs WHERE state <> 'done'");
  const lostAt = new Map(lostRows.map((r) => [r.id, Number(r.created_at)]));
  const acceptedLost = [...accepted.values()].filter((a) => lostAt.has(a.id)).map((a) => lostAt.get(a.id)!);
  const dups = await q<Array<{ job_id: string; second: number }>>(
    "SELECT job_id, MAX(at) AS second FROM job_events WHERE type = 'SUCCEEDED' GROUP BY job_id HAVING COUNT(*) > 1");
  const within = (t: number, i: number) => t >= faults[i]!.start && (i + 1 >= faults.length || t < faults[i + 1]!.start);
  const fmt = (ms: number | null) => (ms === null ? `not within ${RECOVERY_CAP_MS / 1000} s` : `${(ms / 1000).toFixed(1)} s`);
  const lines = [
    '| fault | downtime | first job done after | backlog drained after | jobs lost | duplicates |',
    '|---|---|---|---|---|---|',
    ...faults.map((f, i) => `| ${f.name} | ${((f.end - f.start) / 1000).toFixed(1)} s | ${fmt(f.firstDoneMs)} | ${fmt(f.drainedMs)} | `
      + `${acceptedLost.filter((t) => within(t, i)).length} | ${dups.filter((d) => within(Number(d.second), i)).length} |`),
  ];
  return `faults test: recovery (lost = accepted, not done at the end, created in the fault's window; duplicates = second SUCCEEDED in it)\n${lines.join('\n')}`;
}

it('every accepted job exists and is done (none lost)', async () => {
  assert.ok(runCompleted, 'the run completed');
  const ids = [...accepted.values()].map((a) => a.id);
  const states = new Map<string, string>();
  for (let i = 0; i < ids.length; i += 500) {
    const part = ids.slice(i, i + 500);
    for (const r of await q<Array<{ id: string; state: string }>>('SELECT id, state FROM jobs WHERE id IN (?)', [part])) states.set(r.id, r.state);
  }
  const missing = ids.filter((id) => !states.has(id));
  const notDone = ids.filter((id) => states.has(id) && states.get(id) !== 'done').map((id) => `${id}: ${states.get(id)}`);
  assert.deepEqual(missing, [], 'every 201/200 id exists');
  assert.deepEqual(notDone.slice(0, 20), [], `${notDone.length} accepted jobs are not done`);
  assert.equal(await count('SELECT COUNT(*) AS n FROM jobs'), accepted.size, 'no job beyond the accepted ones (a retried submit made none)');
});

it('no job succeeded twice, and no attempt was started twice', async () => {
  assert.ok(runCompleted, 'the run completed');
  const twice = await q<Array<{ job_id: string; n: number }>>(
    "SELECT job_id, COUNT(*) AS n FROM job_events WHERE type = 'SUCCEEDED' GROUP BY job_id HAVING COUNT(*) > 1");
  assert.deepEqual(twice.map((r) => `${r.job_id} x${r.n}`), [], 'one SUCCEEDED per job');
  const starts = await q<Array<{ job_id: string; data: string }>>("SELECT job_id, data FROM job_events WHERE type = 'STARTED'");
  const seen = new Set<string>();
  const again: string[] = [];
  for (const r of starts) {
    const key = `${r.job_id}#${(JSON.parse(r.data) as { attempt: number }).attempt}`;
    if (seen.has(key)) again.push(key);
    seen.add(key);
  }
  assert.deepEqual(again, [], 'one STARTED per (job, attempt)');
});

it("no gap in any job's event seq", async () => {
  assert.ok(runCompleted, 'the run completed');
  const rows = await q<Array<{ job_id: string; lo: number; hi: number; n: number }>>(
    'SELECT job_id, MIN(seq) AS lo, MAX(seq) AS hi, COUNT(*) AS n FROM job_events GROUP BY job_id');
  const first = Math.min(...rows.map((r) => Number(r.lo)));
  const gaps = rows.filter((r) => Number(r.lo) !== first || Number(r.hi) - Number(r.lo) + 1 !== Number(r.n))
    .map((r) => `${r.job_id}: seq ${r.lo}..${r.hi}, ${r.n} events`);
  assert.deepEqual(gaps, [], 'seq runs from the first value without a gap');
  assert.equal(rows.length, accepted.size, 'every job has events');
});

it('each role recovered: no exit 0 of its own, restarted when it exited, worked after each fault', async () => {
  assert.ok(runCompleted, 'the run completed');
  const s = sup!;
  const ownExits = s.exits.filter((e) => !e.byTest);
  assert.deepEqual(ownExits.filter((e) => e.code === 0), [], 'a role that loses a dependency never exits 0');
  for (const r of s.roles.values()) assert.ok(r.ready() && r.proc.child.exitCode === null, `${r.id} runs at the end`);
  // Both worker lineages claimed work after every fault (a worker whose consumer died would not).
  for (const f of faults) {
    for (const w of ['worker-1', 'worker-2']) {
      const n = await count("SELECT COUNT(*) AS n FROM job_events WHERE type = 'STARTED' AND at > ? AND data LIKE ?", [f.end, `%"workerId":"${w}.%`]);
      assert.ok(n > 0, `${w} claimed no job after "${f.name}" ended`);
    }
  }
  // The relay published after every fault: jobs created after each fault's end were claimed.
  for (const f of faults) {
    const n = await count("SELECT COUNT(*) AS n FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE e.type = 'STARTED' AND j.created_at > ?", [f.end]);
    assert.ok(n > 0, `no job created after "${f.name}" ended was dispatched`);
  }
  for (const f of faults) assert.ok(f.drainedMs !== null, `backlog of "${f.name}" drained within ${RECOVERY_CAP_MS / 1000} s\n${s.tail()}`);
});

it('the api answered 503, never 500, while a dependency was down', () => {
  assert.ok(runCompleted, 'the run completed');
  const fiveHundreds = [...answers].filter(([k]) => k.endsWith(': 500'));
  assert.deepEqual(fiveHundreds, [], `answers: ${JSON.stringify(Object.fromEntries(answers))}`);
});

it('the api answered every submit within 5 s, also while the broker was down', () => {
  assert.ok(runCompleted, 'the run completed');
  // Submits need only the database: a relay stuck publishing must not hold them up.
  const timeouts = [...answers].filter(([k]) => k.endsWith(': TimeoutError'));
  assert.deepEqual(timeouts, [], `answers: ${JSON.stringify(Object.fromEntries(answers))}`);
});
