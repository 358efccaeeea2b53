/**
 * SIGTERM ends a real `ats start` process within the shutdown grace period
 * plus a few seconds, whatever its clients hold open: idle kept-alive
 * connections, requests whose body never finishes, a stray `Upgrade` request
 * on an ordinary route, and an open WebSocket on /v1/stream.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import WebSocket from 'ws';
import { SETTINGS } from '../../cli/config.js';
import { freePort } from '../helpers/ports.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const GRACE_MS = 2000;
/** "Within the grace period plus a few seconds." */
const EXIT_WITHIN_MS = GRACE_MS + 5000;

/** This process's environment without any scheduler setting (the test command exports MYSQL_URL and KAFKA_BROKERS). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const s of Object.values(SETTINGS)) delete env[s.env];
  delete env.NODE_TEST_CONTEXT;
  return { ...env, ...extra };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rawSocket(port: number, text: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(text);
      resolve(s);
    });
    s.on('error', () => undefined);
    s.once('error', reject);
  });
}

interface Started {
  port: number;
  output(): string;
  /** SIGTERM, then the exit and how long it took (SIGKILL after a long bound, so a hang fails instead of hanging). */
  terminate(): Promise<{ code: number | null; signal: NodeJS.Signals | null; took: number }>;
  kill(): void;
}

async function startAts(dataDir: string, extra: Record<string, string> = {}): Promise<Started> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'start'], {
    cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
    env: cleanEnv({ PORT: String(port), ATS_DATA_DIR: dataDir, ATS_SHUTDOWN_GRACE_MS: String(GRACE_MS), LOG_LEVEL: 'info', ...extra }),
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })));
  for (let i = 0; !out.includes('ats ready'); i++) {
    if (child.exitCode !== null || i > 600) {
      child.kill('SIGKILL');
      assert.fail(`ats start did not get ready:\n${out}`);
    }
    await sleep(100);
  }
  return {
    port,
    output: () => out,
    async terminate() {
      const started = Date.now();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_WITHIN_MS + 10_000);
      const r = await exited;
      clearTimeout(timer);
      return { ...r, took: Date.now() - started };
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

describe('ats start: SIGTERM with clients holding connections', { timeout: 120_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ats-shutdown-'));
  const sockets: Socket[] = [];
  after(() => {
    for (const s of sockets) s.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test(`exits within ${EXIT_WITHIN_MS} ms`, async (t) => {
    const ats = await startAts(dataDir);
    try {
      const { port } = ats;
      // Idle kept-alive connections: each served one request and stays open.
      for (let i = 0; i < 3; i++) {
        const s = await rawSocket(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        sockets.push(s);
        await new Promise((r) => s.once('data', r));
      }
      // Half-finished requests: headers sent, the body never completes.
      for (let i = 0; i < 3; i++) {
        sockets.push(await rawSocket(port, 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"type":"demo.echo",'));
      }
      // A stray upgrade on an ordinary route, whose client never closes.
      sockets.push(await rawSocket(port, 'GET /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'));
      // An open WebSocket stream.
      const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream`);
      await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
      ws.on('error', () => undefined);
      // A job in flight, so the worker has something to finish.
      const r = await fetch(`http://127.0.0.1:${port}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'demo.sleep', payload: { ms: 500 } }) });
      assert.equal(r.status, 201);
      await sleep(300);

      const { code, signal, took } = await ats.terminate();
      t.diagnostic(`SIGTERM to exit: ${took} ms`);
      assert.ok(took < EXIT_WITHIN_MS, `SIGTERM took ${took} ms to end the process (signal ${signal}); output:\n${ats.output().slice(-3000)}`);
      assert.equal(signal, null, 'it exited by itself');
      assert.equal(code, 0, ats.output().slice(-3000));
      assert.match(ats.output(), /shutting down/);
    } finally {
      ats.kill();
    }
  });

  test('a handler that ignores its abort signal does not hold the process past the deadline', async (t) => {
    const module = join(dataDir, 'stuck-handler.mjs');
    writeFileSync(module, 'export function register(registry) { registry.register("test.stuck", () => new Promise(() => {})); }\n');
    const ats = await startAts(join(dataDir, 'stuck'), { ATS_HANDLERS: module });
    try {
      const api = `http://127.0.0.1:${ats.port}`;
      const r = await fetch(`${api}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'test.stuck', payload: {} }) });
      assert.equal(r.status, 201);
      const { id } = (await r.json()) as { id: string };
      for (let i = 0; ; i++) {
        const job = (await (await fetch(`${api}/v1/jobs/${id}`)).json()) as { state: string };
        if (job.state === 'running') break;
        if (i > 200) assert.fail(`the stuck job is ${job.state}, not running`);
        await sleep(50);
      }
      const { signal, took } = await ats.terminate();
      t.diagnostic(`SIGTERM to exit with a stuck handler: ${took} ms`);
      assert.ok(took < EXIT_WITHIN_MS, `SIGTERM took ${took} ms to end the process (signal ${signal}); output:\n${ats.output().slice(-3000)}`);
      assert.equal(signal, null, 'it exited by itself');
    } finally {
      ats.kill();
    }
  });
});
