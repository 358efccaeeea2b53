/**
 * A stop while the roles start: `ats start` taking SIGTERM while its worker
 * still joins its lanes (a Kafka group join held by a busy member can take
 * the consumer's ready timeout, 30 s) gives the join up and exits 0 as after
 * any stop, keeping what the API took meanwhile; and `System.stop()` during
 * `start()` lets the role starting then finish, then starts no other.
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
import { verifyJob } from '../engine/verify.js';
import { compose, StartGivenUp } from './compose.js';
import { compileConfig } from './config.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = (path: string) => JSON.stringify(pathToFileURL(join(root, path)).href);

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
    const script = join(dir, 'start.mts');
    writeFileSync(script, STUCK_JOIN_START);
    const env: NodeJS.ProcessEnv = {
      ...process.env, PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: dir, LOG_LEVEL: 'info', ATS_QUEUES: 'default', ATS_SHUTDOWN_GRACE_MS: '3000',
    };
    delete env.MYSQL_URL;
    delete env.KAFKA_BROKERS;
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, ['--conditions=ats-source', '--import', 'tsx', script], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))).finally(() => clearTimeout(killer));
    let port: string | undefined;
    for (const deadline = Date.now() + 45_000; !(port = /^joining (\d+)$/m.exec(out)?.[1]);) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `no join began: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // The API already answers while the worker joins: what it takes then is kept.
    const r = await fetch(`http://127.0.0.1:${port}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'demo.echo', payload: 1 }) });
    assert.equal(r.status, 201);
    const { id } = (await r.json()) as { id: string };
    child.kill('SIGTERM');
    assert.equal(await exited, 0, out);
    assert.match(out, /^join given up: shutdown$/m);
    assert.doesNotMatch(out, /ats ready/, 'not ready after the signal');
    assert.doesNotMatch(out, /shutdown did not finish in time/);
    const store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    try {
      const job = await store.getJob(id);
      assert.ok(job && ['pending', 'published'].includes(job.snapshot.value), `the job is ${job?.snapshot.value}`);
      assert.deepEqual(await verifyJob(store, id), { jobId: id, ok: true, problems: [] });
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('System.stop() during start(): the role starting then finishes first, no role starts after it, and start() rejects with StartGivenUp', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-stop-during-start-'));
  try {
    const config = compileConfig({ dataDir: dir, port: 0, host: '127.0.0.1', logLevel: 'silent', advisor: 'advise' }, { hostname: 't', pid: 1 });
    const system = await compose(config, { registry: new HandlerRegistry(), logger: silentLogger });
    const advisor = system.advisor!;
    const started: string[] = [];
    let releaseAdvisor!: () => void;
    const advisorGate = new Promise<void>((resolve) => (releaseAdvisor = resolve));
    const ownAdvisorStart = advisor.start.bind(advisor);
    advisor.start = async () => {
      started.push('advisor');
      await advisorGate;
      await ownAdvisorStart();
    };
    for (const [name, role] of [['relay', system.relay!], ['timers', system.timers!], ['worker', system.worker!]] as const) {
      const own = role.start.bind(role) as () => unknown;
      (role as { start: () => unknown }).start = () => {
        started.push(name);
        return own();
      };
    }
    const starting = system.start();
    for (let i = 0; i < 200 && !started.includes('advisor'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(started, ['advisor']);
    const stopping = system.stop();
    let stopEnded = false;
    void stopping.finally(() => (stopEnded = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(stopEnded, false, 'the stop waits for the role starting');
    releaseAdvisor();
    await assert.rejects(starting, StartGivenUp);
    await stopping;
    assert.deepEqual(started, ['advisor'], 'no role started after the stop');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
