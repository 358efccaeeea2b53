/**
 * `ats start` and the signals that stop it: a signal within REPEAT_SIGNAL_MS
 * of the first (npm forwards to its child the Ctrl+C or SIGTERM the whole
 * process group got) counts as the first, and the stop finishes (exit 0); a
 * second signal after that gives the shutdown up (exit 1).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, it } from 'node:test';
import { REPEAT_SIGNAL_MS } from './start.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A handler module whose `t.hang` runs until the process ends, whatever its signal says. */
const HANDLERS = "export function register(registry) { registry.register('t.hang', () => new Promise(() => {})); }\n";

interface Started {
  child: ChildProcess;
  api: string;
  stdout(): string;
  exited: Promise<number | null>;
}

/** `ats start` on a fresh data dir, once it said it is ready. */
async function start(extra: Record<string, string> = {}): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-start-signals-'));
  dirs.push(dir);
  const handlers = join(dir, 'handlers.mjs');
  writeFileSync(handlers, HANDLERS);
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: dir, ATS_HANDLERS: handlers, LOG_LEVEL: 'info', ...extra };
  delete env.MYSQL_URL;
  delete env.KAFKA_BROKERS;
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ['--conditions=ats-source', '--import', 'tsx', 'cli/main.ts', 'start'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))).finally(() => clearTimeout(killer));
  const deadline = Date.now() + 45_000;
  let port: string | undefined;
  while (!(port = /ats ready: open http:\/\/localhost:(\d+)\/ui/.exec(out)?.[1])) {
    assert.ok(Date.now() < deadline && child.exitCode === null, `not ready: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, api: `http://127.0.0.1:${port}`, stdout: () => out, exited };
}

/** Submits a `t.hang` job and waits until it runs. */
async function hangingJob(s: Started): Promise<void> {
  const r = await fetch(`${s.api}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 't.hang', payload: {} }) });
  assert.equal(r.status, 201);
  const { id } = (await r.json()) as { id: string };
  for (const deadline = Date.now() + 20_000; ;) {
    const job = (await (await fetch(`${s.api}/v1/jobs/${id}`)).json()) as { state: string };
    if (job.state === 'running') return;
    assert.ok(Date.now() < deadline, `the job is ${job.state}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

it('the same signal twice within REPEAT_SIGNAL_MS is one: the shutdown finishes, exit 0', { timeout: 90_000 }, async () => {
  // A handler holding the shutdown for its grace (1.5 s): the repeat comes while the stop is under way.
  const s = await start({ ATS_SHUTDOWN_GRACE_MS: '1500' });
  await hangingJob(s);
  s.child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 50));
  s.child.kill('SIGINT');
  assert.equal(await s.exited, 0, s.stdout());
  assert.match(s.stdout(), /ats: shutting down/);
  assert.doesNotMatch(s.stdout(), /second signal/);
  // A stop it decided: no line of an unplanned exit (cli/start.ts, watchUnplannedExit).
  assert.doesNotMatch(s.stdout(), /the process is exiting/);
});

it('a second signal later than REPEAT_SIGNAL_MS gives the shutdown up: exit 1', { timeout: 90_000 }, async () => {
  const s = await start({ ATS_SHUTDOWN_GRACE_MS: '20000' });
  await hangingJob(s);
  s.child.kill('SIGTERM');
  // Timed from when the process took the first (a loaded machine may take it late).
  while (!/ats: shutting down/.test(s.stdout())) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, REPEAT_SIGNAL_MS + 500));
  s.child.kill('SIGTERM');
  assert.equal(await s.exited, 1, s.stdout());
  // The stop was still waiting on the worker, whose handler had its grace to finish.
  assert.match(s.stdout(), /second signal; exiting without finishing the shutdown while still waiting on worker \(\d+ ms\)/);
  // Given up, it exits by its own decision too: no line of an unplanned exit.
  assert.doesNotMatch(s.stdout(), /the process is exiting/);
});
