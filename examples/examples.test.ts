/**
 * The README's examples are real: examples/handlers.ts and examples/client.ts
 * type-check under `strict` through the package's own entry points
 * (`ai-task-scheduler/handlers`, `ai-task-scheduler/client`), and run — a
 * scheduler started with `ATS_HANDLERS=./examples/handlers.ts`, the client
 * example against it, its output checked.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { SETTINGS } from '../cli/config.js';
import { freePort } from '../tests/helpers/ports.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** This process's environment without any scheduler setting (`npm test` exports MYSQL_URL and KAFKA_BROKERS). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const s of Object.values(SETTINGS)) delete env[s.env];
  delete env.ATS_URL;
  delete env.NODE_TEST_CONTEXT;
  return { ...env, ...extra };
}

function run(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => child.once('exit', (code) => {
    clearTimeout(timer);
    resolve({ code, out });
  }));
}

test('the examples type-check under strict, importing the package by name', async () => {
  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  const r = await run([tsc, '--noEmit', '--strict', '--target', 'ES2022', '--module', 'NodeNext', '--moduleResolution', 'NodeNext',
    '--allowImportingTsExtensions', '--customConditions', 'ats-source', '--skipLibCheck', '--types', 'node', '--lib', 'ES2023,DOM',
    'examples/handlers.ts', 'examples/client.ts'], process.env);
  assert.equal(r.code, 0, r.out);
});

test('the README shows the example files as they are', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  for (const file of ['examples/handlers.ts', 'examples/client.ts']) {
    const text = readFileSync(join(root, file), 'utf8');
    // From the first import on: the file's header comment says how to run it, the README says it around the block.
    const body = text.slice(text.search(/^import /m));
    assert.ok(blocks.includes(body), `README.md has a ts block with ${file} from its first import on`);
  }
});

describe('the examples run', { timeout: 180_000 }, () => {
  let server: ChildProcess | null = null;
  let serverOut = '';
  let url = '';
  const dataDir = mkdtempSync(join(tmpdir(), 'ats-examples-'));

  before(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    server = spawn(process.execPath, ['--conditions=ats-source', '--import', 'tsx', 'cli/main.ts', 'start'], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
      env: cleanEnv({ PORT: String(port), HOST: '127.0.0.1', ATS_DATA_DIR: dataDir, ATS_HANDLERS: './examples/handlers.ts', LOG_LEVEL: 'info' }),
    });
    server.stdout!.on('data', (d) => (serverOut += d));
    server.stderr!.on('data', (d) => (serverOut += d));
    const end = Date.now() + 60_000;
    for (;;) {
      if (server.exitCode !== null) assert.fail(`the server exited early:\n${serverOut}`);
      // Ready, not only alive: /healthz answers 200 already while the process starts.
      if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) break;
      if (Date.now() > end) assert.fail(`the server did not start:\n${serverOut}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  after(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('examples/client.ts: the bad payload refused, the email sent, the result printed', async () => {
    const r = await run(['--conditions=ats-source', '--import', 'tsx', 'examples/client.ts'], cleanEnv({ ATS_URL: url }));
    assert.equal(r.code, 0, `${r.out}\nserver:\n${serverOut}`);
    const lines = r.out.trim().split('\n');
    assert.equal(lines.length, 3, r.out);
    assert.equal(lines[0], 'refused: 400 ATS_ERR_INVALID_PAYLOAD: body/payload/to must match format "email" (the payload schema of email.send)');
    const id = /^submitted ([0-9A-Z]{26})$/.exec(lines[1]!)?.[1];
    assert.ok(id, lines[1]);
    assert.equal(lines[2], `done: {"sent":true,"messageId":"example-${id}"}`);
    // The handler ran in the server, with its typed payload.
    const logged = serverOut.split('\n').flatMap((l) => {
      try {
        return [JSON.parse(l) as { msg?: string; to?: string; jobId?: string }];
      } catch {
        return [];
      }
    });
    assert.ok(
      logged.some((l) => l.msg === 'email.send: sending (example transport: log only)' && l.to === 'ada@example.com' && l.jobId === id),
      serverOut,
    );
  });
});
