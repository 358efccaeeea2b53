/**
 * `ats` as a child process where no scheduler is needed: `ats start --help`,
 * and a client command against a server whose answers are not the API's.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { SETTINGS } from './config.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** `ats ARGS...` with no scheduler setting in its environment: exit code and output. */
async function ats(args: string[], extra: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const s of Object.values(SETTINGS)) delete env[s.env];
  delete env.ATS_URL;
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ['cli/bin.mjs', ...args], { cwd: root, env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

describe('ats start --help', () => {
  test('prints every setting, its flag and environment variable, and exits 0 without starting', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await ats(['start', flag]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, /^usage: ats start \[--flag value \| --flag=value\] \.\.\./);
      for (const s of Object.values(SETTINGS)) assert.match(r.stdout, new RegExp(`^ {2}${s.flag} .*\\$${s.env}`, 'm'), s.flag);
      assert.match(r.stdout, /^ {2}--port .*\$PORT.*default 3000/m);
    }
  });
});

describe('an answer that is not the API\'s', () => {
  let server: Server;
  let url = '';
  after(() => server?.close());

  test('a JSON answer of the wrong shape: "unexpected answer from <url>", exit 1, no stack trace', async () => {
    server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const ID = '01J00000000000000000000001';
    for (const args of [
      ['get', ID], ['ls'], ['workers'], ['submit', 'demo.echo'], ['cancel', ID], ['redrive', ID], ['workflow', 'start', 'w'],
      ['limits', 'set', 'k', '--concurrency', '1'], ['schedule', 'add', 's', '--cron', '* * * * *', '--type', 'demo.echo'],
    ]) {
      const r = await ats([...args, '--url', url]);
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^ats: unexpected answer from ${url.replace(/\./g, '\\.')}: \\S`), args[0]);
      assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
    }
  });
});
