/**
 * `ats start` when starting the roles fails after the stores opened (here: the
 * api's port is taken): one clear line and exit code 1 within seconds, like
 * an unreachable database, so a supervisor sees a failed start and retries.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

const root = fileURLToPath(new URL('..', import.meta.url));

/** `ats start` with these settings and no MySQL/Kafka: its exit code and stderr. */
async function startWith(extra: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-start-fail-'));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: dir, LOG_LEVEL: 'error', ...extra };
    delete env.MYSQL_URL;
    delete env.KAFKA_BROKERS;
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'start'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    return { code, stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

it('exits 1 with "cannot start" and no stack trace when the api port is taken', { timeout: 60_000 }, async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as { port: number }).port;
  try {
    const started = Date.now();
    const { code, stderr } = await startWith({ PORT: String(port) });
    assert.equal(code, 1, stderr);
    assert.ok(Date.now() - started < 30_000, `exited after ${Date.now() - started} ms`);
    assert.match(stderr, /^ats: cannot start: .*EADDRINUSE/m);
    assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
  } finally {
    taken.close();
  }
});

it('exits 2 (a bad setting) naming ATS_HANDLERS when a handler module does not exist', { timeout: 60_000 }, async () => {
  const { code, stderr } = await startWith({ ATS_HANDLERS: './no/such/handlers.ts' });
  assert.equal(code, 2, stderr);
  assert.match(stderr, /^ats: ATS_HANDLERS \(--handlers\): \.\/no\/such\/handlers\.ts does not exist/m);
  assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
});

it('exits 2 naming ATS_HANDLERS when a handler module exports neither register(registry) nor handlers', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-handlers-'));
  try {
    const file = join(dir, 'no-register.mjs');
    writeFileSync(file, 'export const somethingElse = 1;\n');
    const { code, stderr } = await startWith({ ATS_HANDLERS: file });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /^ats: ATS_HANDLERS \(--handlers\): .*no-register\.mjs exports neither register\(registry\) nor handlers/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('exits 2 naming HOST and ATS_AUTH when bound to another interface than loopback with no API key', { timeout: 60_000 }, async () => {
  const { code, stderr } = await startWith({ HOST: '0.0.0.0' });
  assert.equal(code, 2, stderr);
  assert.match(stderr, /^ats: HOST \(--host\) is 0\.0\.0\.0, not loopback, and no API key exists: create one with `ats keys create .*`, or set ATS_AUTH=off/m);
  assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
});
