/**
 * One scheduler per embedded data folder: a second `ats start` on a folder a
 * running scheduler holds exits 2 naming ATS_DATA_DIR, the folder and the
 * holder's pid, and the first goes on serving; `ats keys` still works on the
 * folder meanwhile. A holder killed (SIGKILL) leaves nothing that blocks the
 * next start, which says it took the folder over; a clean stop (SIGTERM)
 * releases it. Real processes, as `npm start` runs them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, it } from 'node:test';
import { startRole, startUntilReady, waitForReady, type RoleProcess } from '../tests/helpers/processes.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dirs: string[] = [];
const running: RoleProcess[] = [];
after(async () => {
  for (const p of running) await p.kill();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ats-data-lock-'));
  dirs.push(dir);
  return dir;
}

/** The environment of a scheduler on `dir`: the embedded store and log (whatever the test command exports), any free port. */
function envOn(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: dir, LOG_LEVEL: 'info', MYSQL_URL: '', KAFKA_BROKERS: '' };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

/** `ats start` (every role) on `dir`, once it said it is ready, with its API's URL. */
async function startOn(dir: string, name: string): Promise<{ p: RoleProcess; api: string }> {
  const p = startRole(name, 'api,relay,worker,timers', envOn(dir) as Record<string, string>);
  running.push(p);
  await waitForReady(p);
  const port = /ats ready: open http:\/\/localhost:(\d+)\/ui/.exec(p.output())?.[1];
  assert.ok(port, p.output());
  return { p, api: `http://127.0.0.1:${port}` };
}

/** Submits a `demo.echo` job through `api` (with `key`, once one exists) and waits until it is done: the scheduler serves and runs jobs. */
async function echoRuns(api: string, key?: string): Promise<void> {
  const auth: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  const r = await fetch(`${api}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify({ type: 'demo.echo', payload: { hi: 1 } }) });
  assert.equal(r.status, 201);
  const { id } = (await r.json()) as { id: string };
  for (const deadline = Date.now() + 20_000; ;) {
    const job = (await (await fetch(`${api}/v1/jobs/${id}`, { headers: auth })).json()) as { state: string };
    if (job.state === 'done') return;
    assert.ok(Date.now() < deadline, `the job is ${job.state}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `ats ARGS...` with `env`: its exit code and output (killed after 30 s: null). */
async function ats(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c))).finally(() => clearTimeout(timer));
  return { code, stdout, stderr };
}

const escaped = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

it('a second start on the folder a running scheduler holds exits 2 naming ATS_DATA_DIR, the folder and the holder\'s pid; the first goes on serving', { timeout: 120_000 }, async () => {
  const dir = dataDir();
  const first = await startOn(dir, 'first');
  // Ready, then SIGTERM, if it starts: exit 0 then, where a refusal is 2.
  const second = await startUntilReady(envOn(dir), 60_000);
  assert.equal(second.code, 2, `${second.stderr}\n${second.stdout}`);
  assert.match(second.stderr, new RegExp(
    `^ats: ATS_DATA_DIR \\(--data-dir\\): ${escaped(dir)} is in use by another scheduler \\(pid ${first.p.child.pid}\\b[^)]*\\): stop it, or set ATS_DATA_DIR to another folder$`, 'm'), second.stderr);
  assert.doesNotMatch(second.stderr, /^\s+at /m, 'no stack trace');
  assert.doesNotMatch(second.stdout, /ats ready/);
  assert.equal(first.p.child.exitCode, null, 'the first still runs');
  await echoRuns(first.api);
  assert.equal(await first.p.stop(), 0, first.p.output());
});

it('`ats keys` works on the folder while a scheduler holds it', { timeout: 120_000 }, async () => {
  const dir = dataDir();
  const first = await startOn(dir, 'first');
  const made = await ats(['keys', 'create', '--scopes', 'read,submit', '--name', 'ops'], envOn(dir));
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout, /^ats_/);
  const listed = await ats(['keys', 'ls'], envOn(dir));
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /\bops\b/);
  // The running scheduler sees the key made beside it.
  await echoRuns(first.api, made.stdout.trim());
  assert.equal(await first.p.stop(), 0, first.p.output());
});

it('a scheduler killed (SIGKILL) does not block the next start, which says it took the folder over from the dead pid', { timeout: 120_000 }, async () => {
  const dir = dataDir();
  const first = await startOn(dir, 'first');
  const pid = first.p.child.pid;
  await first.p.kill();
  const next = await startOn(dir, 'next');
  assert.match(next.p.output(), new RegExp(`took over ${escaped(dir)}.*\\bpid ${pid}\\b`), next.p.output());
  await echoRuns(next.api);
  assert.equal(await next.p.stop(), 0, next.p.output());
});

it('a clean stop (SIGTERM) releases the folder: the next start takes it with nothing to take over', { timeout: 120_000 }, async () => {
  const dir = dataDir();
  const first = await startOn(dir, 'first');
  assert.equal(await first.p.stop(), 0, first.p.output());
  const next = await startOn(dir, 'next');
  assert.doesNotMatch(next.p.output(), /took over/, next.p.output());
  await echoRuns(next.api);
  assert.equal(await next.p.stop(), 0, next.p.output());
});
