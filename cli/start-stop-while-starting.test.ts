/**
 * A stop while the roles start: `ats start` taking SIGTERM while its worker
 * still joins its lanes (a Kafka group join held by a busy member can take
 * the consumer's ready timeout, 30 s), or while another role's start waits on
 * a store that does not answer, gives that start up and exits 0 as after any
 * stop, keeping what the API took meanwhile; and `System.stop()` during
 * `start()` lets the role starting then finish (for STARTING_ROLE_WAIT_MS at
 * most), then starts no other, and stops one whose start ends later.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { HandlerRegistry } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';
import { TOPICS } from '../engine/ports.js';
import { verifyJob } from '../engine/verify.js';
import { compose, StartGivenUp, STARTING_ROLE_WAIT_MS } from './compose.js';
import { compileConfig } from './config.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = (path: string) => JSON.stringify(pathToFileURL(join(root, path)).href);

/**
 * `ats start` through `script` (written to `dir`), on SQLite in `dir` with
 * `env` added; its stdout and stderr joined in `output()`. Killed after 60 s.
 */
function startScript(dir: string, script: string, env: NodeJS.ProcessEnv) {
  const file = join(dir, 'start.mts');
  writeFileSync(file, script);
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: dir, LOG_LEVEL: 'info', ...env };
  delete childEnv.MYSQL_URL;
  delete childEnv.KAFKA_BROKERS;
  delete childEnv.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ['--conditions=ats-source', '--import', 'tsx', file], { cwd: root, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))).finally(() => clearTimeout(killer));
  return { child, exited, output: () => out };
}

/** The API port a started script says in the line `line` matches (its first group), within 45 s. */
async function portSaid(started: ReturnType<typeof startScript>, line: RegExp, missing: string): Promise<string> {
  let port: string | undefined;
  for (const deadline = Date.now() + 45_000; !(port = line.exec(started.output())?.[1]);) {
    assert.ok(Date.now() < deadline && started.child.exitCode === null, `${missing}: ${started.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return port;
}

/** A job submitted to the API at `port`: its id. */
async function submitOne(port: string): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'demo.echo', payload: 1 }) });
  assert.equal(r.status, 201);
  return ((await r.json()) as { id: string }).id;
}

/** The job is kept in the SQLite store in `dir`, waiting to run, and its history replays to it. */
async function assertKept(dir: string, id: string): Promise<void> {
  const store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
  try {
    const job = await store.getJob(id);
    assert.ok(job && ['pending', 'published'].includes(job.snapshot.value), `the job is ${job?.snapshot.value}`);
    assert.deepEqual(await verifyJob(store, id), { jobId: id, ok: true, events: job.version, problems: [] });
  } finally {
    await store.close();
  }
}

/**
 * `ats start` (startCommand) whose log's consume() of a dispatch lane never
 * ends a join unless its signal gives it up, as a Kafka group join held by a
 * busy member: it says `joining <api port>` at the first lane's join, and
 * `join given up: <kind>`.
 */
const STUCK_JOIN_START = `
import { compose } from ${source('cli/compose.ts')};
import { startCommand } from ${source('cli/start.ts')};
import { parseLane } from ${source('engine/lanes.ts')};
let said = false;
const code = await startCommand([], process.env, {
  compose: async (config, opts) => {
    const system = await compose(config, opts);
    const own = system.log.consume.bind(system.log);
    system.log.consume = (o) => {
      if (!parseLane(o.topic)) return own(o);
      if (!said) process.stdout.write('joining ' + system.app.server.address().port + '\\n');
      said = true;
      return new Promise((_resolve, reject) => o.signal?.addEventListener('abort', () => {
        process.stdout.write('join given up: ' + o.signal.reason?.kind + '\\n');
        reject(o.signal.reason);
      }));
    };
    return system;
  },
});
process.exit(code);
`;

test('SIGTERM while the worker still joins its lanes (a fixed queue list): the join is given up, the process exits 0, and a job submitted meanwhile is kept', { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-stop-while-starting-'));
  try {
    const started = startScript(dir, STUCK_JOIN_START, { ATS_QUEUES: 'default', ATS_SHUTDOWN_GRACE_MS: '3000' });
    const port = await portSaid(started, /^joining (\d+)$/m, 'no join began');
    // The API already answers while the worker joins: what it takes then is kept.
    const id = await submitOne(port);
    started.child.kill('SIGTERM');
    assert.equal(await started.exited, 0, started.output());
    assert.match(started.output(), /^join given up: shutdown$/m);
    assert.doesNotMatch(started.output(), /ats ready/, 'not ready after the signal');
    assert.doesNotMatch(started.output(), /shutdown did not finish in time/);
    await assertKept(dir, id);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * `ats start` whose store never answers `STUCK` (a store method a role's start awaits: the advisor's
 * `lastEventId`, the worker presence's `upsertWorker`, the limit directory's `defaultLimitKeys`) when
 * called from `STUCK_IN` (that role's source file), as a database that stops answering: it says
 * `stuck <api port>` at the first such call. (Other callers, such as the stream's tail, are answered.)
 */
const STUCK_STORE_START = `
import { compose } from ${source('cli/compose.ts')};
import { startCommand } from ${source('cli/start.ts')};
const code = await startCommand([], process.env, {
  compose: async (config, opts) => {
    const system = await compose(config, opts);
    const method = process.env.STUCK;
    const own = system.store[method].bind(system.store);
    system.store[method] = (...args) => {
      if (!new Error().stack.includes(process.env.STUCK_IN)) return own(...args);
      process.stdout.write('stuck ' + system.app.server.address().port + '\\n');
      return new Promise(() => {});
    };
    return system;
  },
});
process.exit(code);
`;

const STUCK_STARTS = [
  ['lastEventId', 'the advisor', 'engine/advisor/advisor.ts'],
  ['upsertWorker', 'the worker presence', 'engine/worker-presence.ts'],
  ['defaultLimitKeys', 'the limit directory', 'engine/limit-directory.ts'],
] as const;

for (const [stuck, role, file] of STUCK_STARTS) {
  test(`SIGTERM while ${role}'s start waits on a store that does not answer (${stuck}): the start is given up, the process exits 0 well before the deadline, and a job submitted meanwhile is kept`, { timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ats-stop-while-stuck-'));
    try {
      const started = startScript(dir, STUCK_STORE_START, {
        ATS_ADVISOR: 'advise',
        // The deadline (the grace plus 5 s) is far beyond the wait for the role starting: an exit 0 is not the deadline's.
        ATS_SHUTDOWN_GRACE_MS: '20000', STUCK: stuck, STUCK_IN: join(root, file),
      });
      const port = await portSaid(started, /^stuck (\d+)$/m, 'no start got stuck');
      // The API already answers while the role starts: what it takes then is kept.
      const id = await submitOne(port);
      started.child.kill('SIGTERM');
      // Well before the deadline (25 s from the signal): the stop waited for the role starting only STARTING_ROLE_WAIT_MS.
      const early = setTimeout(() => started.child.kill('SIGKILL'), STARTING_ROLE_WAIT_MS + 15_000).unref();
      const code = await started.exited.finally(() => clearTimeout(early));
      assert.equal(code, 0, started.output());
      assert.match(started.output(), /start of .* given up/);
      assert.doesNotMatch(started.output(), /ats ready/, 'not ready after the signal');
      assert.doesNotMatch(started.output(), /shutdown did not finish in time/);
      await assertKept(dir, id);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/**
 * A composition on SQLite in `dir` whose advisor's start waits for
 * `releaseAdvisor()`; `seen` records in order each role's start, the end of
 * the advisor's start (started, or failed on the store a stop closed
 * meanwhile) and the advisor's stops.
 */
async function composeWithAdvisorHeld(dir: string) {
  const config = compileConfig({ dataDir: dir, port: 0, host: '127.0.0.1', logLevel: 'silent', advisor: 'advise' }, { hostname: 't', pid: 1 });
  const system = await compose(config, { registry: new HandlerRegistry(), logger: silentLogger });
  const advisor = system.advisor!;
  const seen: string[] = [];
  let releaseAdvisor!: () => void;
  const advisorGate = new Promise<void>((resolve) => (releaseAdvisor = resolve));
  const ownAdvisorStart = advisor.start.bind(advisor);
  advisor.start = async () => {
    seen.push('advisor start');
    await advisorGate;
    try {
      await ownAdvisorStart();
    } finally {
      seen.push('advisor start ended');
    }
  };
  const ownAdvisorStop = advisor.stop.bind(advisor);
  advisor.stop = async () => {
    seen.push('advisor stop');
    await ownAdvisorStop();
  };
  for (const [name, role] of [['relay', system.relay!], ['timers', system.timers!], ['worker', system.worker!]] as const) {
    const own = role.start.bind(role) as () => unknown;
    (role as { start: () => unknown }).start = () => {
      seen.push(`${name} start`);
      return own();
    };
  }
  return { system, seen, releaseAdvisor };
}

test('System.stop() during a start that does not end: the stop waits for the role starting STARTING_ROLE_WAIT_MS at most, starts no other role, and stops that one once its start ends', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-stop-during-stuck-start-'));
  try {
    const { system, seen, releaseAdvisor } = await composeWithAdvisorHeld(dir);
    const starting = system.start();
    void starting.catch(() => undefined);
    for (let i = 0; i < 200 && !seen.includes('advisor start'); i++) await new Promise((r) => setTimeout(r, 10));
    const t0 = performance.now();
    // Ends though the advisor's start does not.
    await system.stop();
    const took = performance.now() - t0;
    assert.ok(took >= STARTING_ROLE_WAIT_MS - 50, `the stop waited ${took} ms for the role starting`);
    assert.deepEqual(seen, ['advisor start', 'advisor stop']);
    await assert.rejects(starting, StartGivenUp);
    // The start ends late: the advisor it started is stopped again, nothing of it runs on.
    releaseAdvisor();
    for (let i = 0; i < 200 && seen.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(seen, ['advisor start', 'advisor stop', 'advisor start ended', 'advisor stop'], 'no role started after the stop; the advisor is stopped once its start ended');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('System.stop() while the workflows join their topic: the stop gives the join up instead of leaving it joining after the stop', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-stop-during-workflows-join-'));
  try {
    const config = compileConfig({ dataDir: dir, port: 0, host: '127.0.0.1', logLevel: 'silent' }, { hostname: 't', pid: 1 });
    const system = await compose(config, { registry: new HandlerRegistry(), logger: silentLogger });
    // A join that ends only when its signal gives it up, as a Kafka group join held by a busy member.
    let joining = false;
    let givenUp = false;
    const own = system.log.consume.bind(system.log);
    system.log.consume = (o) => {
      if (o.topic !== TOPICS.workflows) return own(o);
      joining = true;
      return new Promise((_resolve, reject) => o.signal?.addEventListener('abort', () => {
        givenUp = true;
        reject(o.signal!.reason);
      }));
    };
    const starting = system.start();
    void starting.catch(() => undefined);
    for (let i = 0; i < 200 && !joining; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(joining, 'the workflows began their join');
    await system.stop();
    assert.equal(givenUp, true, 'the stop gave the join up');
    await assert.rejects(starting, StartGivenUp);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('System.stop() during start(): the role starting then finishes first, no role starts after it, and start() rejects with StartGivenUp', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-stop-during-start-'));
  try {
    const { system, seen, releaseAdvisor } = await composeWithAdvisorHeld(dir);
    const starting = system.start();
    for (let i = 0; i < 200 && !seen.includes('advisor start'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(seen, ['advisor start']);
    const stopping = system.stop();
    let stopEnded = false;
    void stopping.finally(() => (stopEnded = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(stopEnded, false, 'the stop waits for the role starting');
    assert.deepEqual(system.stopProgress().waitingOn.map((w) => w.part), ['start of advisor'], 'what the stop waits on');
    releaseAdvisor();
    await assert.rejects(starting, StartGivenUp);
    await stopping;
    assert.deepEqual(seen.filter((s) => s.endsWith(' start')), ['advisor start'], 'no role started after the stop');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
