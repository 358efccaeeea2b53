/**
 * `ats` as a child process where no scheduler is needed: `ats start --help`,
 * a client command against a server whose answers are not the API's, and one
 * whose stdout or stderr reader goes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { SETTINGS } from './config.js';
import { listenLocal } from '../tests/helpers/local-server.js';

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

describe('ats help', () => {
  test('ats help COMMAND prints that command\'s help, as ats COMMAND --help does (stdout, exit 0)', async () => {
    for (const [name, usage] of [['submit', /^usage: ats submit TYPE /], ['watch', /^usage: ats watch \[--job ID\]/], ['schedule', /^usage: ats schedule add /m]] as const) {
      const help = await ats(['help', name]);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, usage, name);
      assert.equal(help.stdout, (await ats([name, '--help'])).stdout, name);
    }
    const start = await ats(['help', 'start']);
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stdout, /^usage: ats start /);
  });

  test('ats help of a command that does not exist: the usage on stderr, exit 2; ats help alone: the usage, exit 0', async () => {
    const bogus = await ats(['help', 'frobnicate']);
    assert.equal(bogus.code, 2);
    assert.match(bogus.stderr, /unknown command "frobnicate"/);
    const alone = await ats(['help']);
    assert.equal(alone.code, 0);
    assert.match(alone.stdout, /^usage: ats <command> \[options\]/);
  });

  test('the usage\'s line for watch names each of its filters', async () => {
    const top = await ats(['--help']);
    assert.match(top.stdout, /^ {2}ats watch \[--job ID\] \[--type T\] \[--queue Q\] \[--state S,\.\.\.\]/m);
  });
});

describe('an answer that is not the API\'s', () => {
  let server: Server;
  let url = '';
  after(() => server?.close());

  test('a JSON answer of the wrong shape: "unexpected answer from <url>", exit 1, no stack trace', async () => {
    server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    url = await listenLocal(server);
    const ID = '01J00000000000000000000001';
    for (const args of [
      ['get', ID], ['ls'], ['workers'], ['submit', 'demo.echo'], ['cancel', ID], ['redrive', ID], ['delete', ID], ['workflow', 'start', 'w'], ['workflow', 'verify', ID], ['verify', ID],
      ['limits', 'set', 'k', '--concurrency', '1'], ['schedule', 'add', 's', '--cron', '* * * * *', '--type', 'demo.echo'],
    ]) {
      const r = await ats([...args, '--url', url]);
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^ats: unexpected answer from ${url.replace(/\./g, '\\.')}: \\S`), args[0]);
      assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
    }
  });

  test('a read or a delete answered 200 with JSON of another shape: "unexpected answer from <url>" naming what is missing, exit 1, --json too', async () => {
    // Lists that are no lists, of items that are not the API's; a 200 with a body where a delete is answered 204.
    const bodies = ['{}', '[]', 'null', '{"items":"x"}',
      JSON.stringify(Object.fromEntries(['jobs', 'workflows', 'events', 'schedules', 'limits', 'workers', 'types'].map((k) => [k, 'x']))),
      JSON.stringify({ ...Object.fromEntries(['jobs', 'workflows', 'events', 'schedules', 'limits', 'workers', 'types'].map((k) => [k, [{}]])), mode: 'off' })];
    let body = '';
    const local = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
    const at = await listenLocal(local);
    after(() => local.close());
    const ID = '01J00000000000000000000001';
    const reads = [['ls'], ['workers'], ['insights'], ['schedule', 'ls'], ['limits', 'ls'], ['workflow', 'ls'], ['workflow', 'history', ID]];
    const commands = [...reads, ...reads.map((a) => [...a, '--json']), ['schedule', 'rm', 's'], ['limits', 'rm', 'k'], ['delete', ID], ['delete', ID, '--json']];
    for (body of bodies) {
      const results = await Promise.all(commands.map((args) => ats([...args, '--url', at])));
      results.forEach((r, i) => {
        const what = `${commands[i]!.join(' ')} answered ${body}: ${r.stderr}`;
        assert.equal(r.code, 1, what);
        assert.equal(r.stdout, '', what);
        assert.match(r.stderr, new RegExp(`^ats: unexpected answer from ${at.replace(/\./g, '\\.')}: .*\\(not an ats server\\?\\)`), what);
        assert.doesNotMatch(r.stderr, /Cannot read|is not a function|is not iterable|undefined|^\s+at /m, what);
      });
    }
  });
});

describe('a filter\'s name the API would refuse', () => {
  test('ats ls and ats watch refuse --type and --queue alike (and workflow ls --name): exit 2 naming the option, nothing sent', async () => {
    let requests = 0;
    const server = createServer((_req, res) => {
      requests++;
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"code":"ATS_ERR_ROUTE_NOT_FOUND","message":"No route"}');
    });
    const url = await listenLocal(server);
    after(() => server.close());
    const runs = [];
    for (const bad of ['bad type', 'caf\u00e9', 'a/b', 'x'.repeat(201)]) {
      for (const args of [['ls', '--type', bad], ['ls', '--queue', bad], ['watch', '--type', bad], ['watch', '--queue', bad], ['workflow', 'ls', '--name', bad]]) {
        runs.push(ats([...args, '--url', url]).then((r) => ({ args, r })));
      }
    }
    for (const { args, r } of await Promise.all(runs)) {
      const option = args.at(-2)!;
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^ats: ${option} must be 1 to \\d+ of A-Z a-z 0-9 \\. _ : -, got "`), args.join(' '));
      assert.match(r.stderr, /^usage: ats /m);
    }
    assert.equal(requests, 0, 'nothing sent');
    // Names the API takes are taken (the answer, a 404 here, is the server's).
    const good = await ats(['ls', '--type', 'demo.echo', '--queue', 'q:1_-', '--url', url]);
    assert.equal(good.code, 1, good.stderr);
    assert.match(good.stderr, /^ATS_ERR_ROUTE_NOT_FOUND/);
  });
});

/** The `n`th job a stand-in server lists (from 1), with its history: ids and times grow with `n`. */
const job = (n: number) => {
  const id = `01J${String(n).padStart(23, '0')}`;
  const at = new Date(1_700_000_000_000 + n).toISOString();
  return {
    id, type: 'demo.echo', queue: 'default', state: 'pending', version: 1, attempt: 0, maxAttempts: 3, payload: null, result: null,
    lastError: null, runAt: at, createdAt: at, updatedAt: at,
    events: [{ seq: 1, type: 'SUBMITTED', from: null, to: 'pending', at, data: {} }],
  };
};

describe('a reader that stops reading', () => {
  let server: Server;
  after(() => server?.close());

  test('ats watch | head -1: the pipe closed, the watch ends quietly (exit 0), not with an EPIPE stack trace', async () => {
    // No stream route (the watch polls); every list of the jobs holds one job more, each with its history.
    let made = 0;
    server = createServer((req, res) => {
      const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (req.url === '/healthz') return json(200, { status: 'ok' });
      if (req.url?.startsWith('/v1/jobs?')) {
        made++;
        return json(200, { jobs: Array.from({ length: made }, (_, i) => job(made - i)).map(({ events: _, ...j }) => j), nextCursor: null });
      }
      const one = /^\/v1\/jobs\/01J0*(\d+)$/.exec(req.url ?? '');
      if (one) return json(200, job(Number(one[1])));
      json(404, { code: 'ATS_ERR_ROUTE_NOT_FOUND', message: 'No route' });
    });
    const url = await listenLocal(server);
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, ['cli/bin.mjs', 'watch', '--url', url], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    // The first line read, the reader goes (as `head -1` does).
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    clearTimeout(timer);
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stderr, /EPIPE|^\s+at /m, 'no stack trace');
  });
});

describe('a reader of stderr that stops reading', () => {
  const servers: Server[] = [];
  after(() => servers.forEach((s) => s.close()));

  /**
   * A server without a stream route (the watch polls, saying so on stderr) whose list of the jobs answers the
   * `n`th time (from 1) as `answer(n)` says: 200 with n jobs (a new one each time, each with its history), or 429
   * with Retry-After: 1 (the watch waits it out, saying so on stderr).
   */
  async function polled(answer: (n: number) => 'jobs' | 'limited'): Promise<string> {
    let lists = 0;
    const server = createServer((req, res) => {
      const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
      if (req.url === '/healthz') return json(200, { status: 'ok' });
      if (req.url?.startsWith('/v1/jobs?')) {
        lists++;
        if (answer(lists) === 'limited') return json(429, { code: 'ATS_ERR_RATE_LIMITED', message: 'Too many requests' }, { 'retry-after': '1' });
        return json(200, { jobs: Array.from({ length: lists }, (_, i) => job(lists - i)).map(({ events: _, ...j }) => j), nextCursor: null });
      }
      const one = /^\/v1\/jobs\/01J0*(\d+)$/.exec(req.url ?? '');
      if (one) return json(200, job(Number(one[1])));
      json(404, { code: 'ATS_ERR_ROUTE_NOT_FOUND', message: 'No route' });
    });
    servers.push(server);
    return listenLocal(server);
  }

  const childEnv = (): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    return env;
  };

  test('ats watch 2>&1 | head -1: the pipe of both closed, the next line on stderr ends the watch quietly (exit 0), not an uncaught EPIPE (exit 1)', async () => {
    // The first line is the watch's "polling" on stderr; then only stderr lines (a rate limit waited out every second).
    const url = await polled((n) => (n === 1 ? 'jobs' : 'limited'));
    const child = spawn('bash', ['-c', `"${process.execPath}" cli/bin.mjs watch --url "$0" 2>&1 | head -1; exit "\${PIPESTATUS[0]}"`, url], {
      cwd: root, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    clearTimeout(timer);
    assert.match(out, /polling/);
    assert.equal(code, 0, 'the exit code of ats');
  });

  test('stderr\'s reader gone but stdout\'s still reading: its lines are dropped, the watch goes on printing (Ctrl-C: exit 0)', async () => {
    // The first line on stderr ("polling"); then a rate limit waited out (a line on stderr), then a new job (a line on stdout).
    const url = await polled((n) => (n === 2 ? 'limited' : 'jobs'));
    const child = spawn(process.execPath, ['cli/bin.mjs', 'watch', '--url', url], { cwd: root, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const exit = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    await new Promise<void>((r) => child.stderr.once('data', () => r()));
    child.stderr.destroy();
    const first = await Promise.race([
      new Promise<string>((r) => child.stdout.once('data', (d) => r(String(d)))),
      exit.then((c) => `exited ${c} before printing a transition`),
    ]);
    assert.match(first, /01J0+\d+/, `a transition, printed after the line on stderr that found no reader; got: ${first}`);
    child.kill('SIGINT');
    const code = await exit;
    clearTimeout(timer);
    assert.equal(code, 0);
  });
});
