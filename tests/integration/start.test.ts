/**
 * The one-command start, as a newcomer runs it: `npm start` with no
 * scheduler settings (only a free PORT and a temp ATS_DATA_DIR, so the
 * default ./data is never touched, plus a lease of ten minutes, which a
 * restart after a crash must not wait for).
 * It must say where to click, run jobs, survive a SIGKILL mid-job on the same
 * data dir, and refuse bad configuration fast and clearly.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { SETTINGS } from '../../cli/config.js';
import { freePort } from '../helpers/ports.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** This process's environment without any scheduler setting (`npm test` exports MYSQL_URL and KAFKA_BROKERS). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const s of Object.values(SETTINGS)) delete env[s.env];
  delete env.NODE_TEST_CONTEXT;
  return { ...env, npm_config_update_notifier: 'false', ...extra };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface NpmStart {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; ms: number }>;
  /** Signal the whole group (npm, its shell, node) and wait until none is left. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * `npm start` in its own process group: npm runs node under a shell, so a
 * signal to npm alone would leave the scheduler running.
 */
function npmStart(env: Record<string, string>): NpmStart {
  const started = Date.now();
  const child = spawn('npm', ['start'], { cwd: root, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; ms: number }>((resolve) => child.once('exit', (code) => resolve({ code, ms: Date.now() - started })));
  const groupAlive = () => {
    try {
      process.kill(-child.pid!, 0);
      return true;
    } catch {
      return false;
    }
  };
  return {
    child, exited, stdout: () => out, stderr: () => err,
    async kill(signal) {
      if (groupAlive()) process.kill(-child.pid!, signal);
      await exited;
      for (let i = 0; groupAlive() && i < 200; i++) await sleep(50);
      assert.ok(!groupAlive(), 'the scheduler process outlived npm');
    },
  };
}

/** The log lines of `npm start`'s stdout (npm's own "> ..." banner removed). */
const logLines = (stdout: string) => stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('>'));

async function waitForReady(p: NpmStart, deadlineMs = 90_000): Promise<string> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const ready = logLines(p.stdout()).find((l) => l.includes('ats ready'));
    if (ready) return ready;
    if (p.child.exitCode !== null) assert.fail(`npm start exited (${p.child.exitCode}):\n${p.stdout()}\n${p.stderr()}`);
    if (Date.now() > end) assert.fail(`npm start not ready within ${deadlineMs} ms:\n${p.stdout()}\n${p.stderr()}`);
    await sleep(100);
  }
}

interface ApiJob {
  id: string;
  state: string;
  attempt: number;
  result: unknown;
  events: Array<{ type: string; to: string; data: { attempt?: number; holderGone?: boolean } }>;
}

describe('npm start: the embedded default', { timeout: 300_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ats-start-test-'));
  let port = 0;
  let api = '';
  let running: NpmStart | null = null;
  let echoId = '';
  // A lease of ten minutes: the job killed mid-attempt must not wait for it after the restart.
  const env = () => ({ PORT: String(port), ATS_DATA_DIR: dataDir, ATS_LEASE_MS: '600000' });

  const submit = async (type: string, payload: unknown): Promise<ApiJob> => {
    const res = await fetch(`${api}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type, payload }) });
    assert.equal(res.status, 201, await res.clone().text());
    return (await res.json()) as ApiJob;
  };
  const get = async (id: string): Promise<ApiJob> => (await fetch(`${api}/v1/jobs/${id}`)).json() as Promise<ApiJob>;
  const waitFor = async (id: string, state: string, ms: number): Promise<ApiJob> => {
    const end = Date.now() + ms;
    for (;;) {
      const job = await get(id);
      if (job.state === state) return job;
      if (Date.now() > end) assert.fail(`job ${id} is ${job.state}, not ${state}, after ${ms} ms: ${JSON.stringify(job.events)}`);
      await sleep(100);
    }
  };

  before(async () => {
    port = await freePort();
    api = `http://127.0.0.1:${port}`;
  });

  after(async () => {
    await running?.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('the first log line says where to click, and a submitted job ends done', async () => {
    running = npmStart(env());
    await waitForReady(running);
    const first = logLines(running.stdout())[0]!;
    assert.match(first, new RegExp(`http://localhost:${port}/ui`), `first log line: ${first}`);
    assert.ok(existsSync(join(dataDir, 'ats.sqlite')), 'the store is in ATS_DATA_DIR');
    const job = await submit('demo.echo', { hello: 'world' });
    echoId = job.id;
    const done = await waitFor(job.id, 'done', 30_000);
    assert.deepEqual(done.result, { hello: 'world' });
  });

  test('SIGKILL mid-job, start again on the same data dir: the attempt ends at the restart, not its lease, and the job completes on attempt 2', async () => {
    assert.ok(running && echoId, 'needs the first test');
    const job = await submit('demo.sleep', { ms: 4000 });
    await waitFor(job.id, 'running', 30_000);
    await running.kill('SIGKILL');

    running = npmStart(env());
    await waitForReady(running);
    const done = await waitFor(job.id, 'done', 60_000);
    assert.equal(done.attempt, 2);
    const expired = done.events.filter((e) => e.type === 'LEASE_EXPIRED');
    assert.equal(expired.length, 1, JSON.stringify(done.events));
    assert.equal(expired[0]!.data.attempt, 1);
    assert.equal(expired[0]!.data.holderGone, true, 'ended by the restart, its process known gone');
    assert.match(running.stdout(), /embedded restart: the attempts of jobs found running ended/);
    assert.equal(done.events.filter((e) => e.type === 'STARTED').length, 2);

    const earlier = await get(echoId);
    assert.equal(earlier.state, 'done', 'the job from before the crash is still there');
    assert.deepEqual(earlier.result, { hello: 'world' });
  });
});

describe('npm start: configuration errors', { timeout: 120_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ats-start-config-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  const startWith = async (env: Record<string, string>) => {
    const p = npmStart({ PORT: String(await freePort()), ATS_DATA_DIR: dataDir, ...env });
    const timer = setTimeout(() => void p.kill('SIGKILL'), 60_000);
    const { code, ms } = await p.exited;
    clearTimeout(timer);
    return { code, ms, stderr: p.stderr() };
  };

  test('MySQL not reachable: exits non-zero within 15 s, naming MySQL and the host', async () => {
    const r = await startWith({ MYSQL_URL: 'mysql://root@127.0.0.1:1/ats' });
    assert.notEqual(r.code, 0);
    assert.notEqual(r.code, null, 'it exited by itself');
    assert.ok(r.ms < 15_000, `took ${r.ms} ms`);
    assert.match(r.stderr, /MySQL/);
    assert.match(r.stderr, /127\.0\.0\.1:1/);
    assert.doesNotMatch(r.stderr, /^\s+at /m, 'a message, not a stack trace');
  });

  test('MYSQL_URL that is not a URL: exit 2 naming MYSQL_URL', async () => {
    const r = await startWith({ MYSQL_URL: 'not-a-url' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /MYSQL_URL.*not a URL/);
  });

  test('ATS_ROLES=worker without Kafka or MySQL: exit 2 saying what is missing', async () => {
    const r = await startWith({ ATS_ROLES: 'worker' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ATS_ROLES.*worker.*needs (KAFKA_BROKERS|MYSQL_URL)/);
  });
});
