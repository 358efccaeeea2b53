/**
 * `ats watch` against a real scheduler in this process (compose: every role
 * on a fresh SQLite file, the demo handlers) that requires API keys: the
 * key the watch runs with is revoked while it watches, the server closes its
 * stream with 4401, and the command ends with ATS_ERR_UNAUTHORIZED and exit 1
 * (README: a key the server refuses is an error, exit 1). And `--job ID` over
 * the stream: a job that does not exist ends the watch with
 * ATS_ERR_JOB_NOT_FOUND, exit 1, as polling ends it; one that exists is
 * watched until Ctrl-C. A job that had already ended when the watch started
 * has its end printed at once, over the stream and when polling (through a
 * proxy that refuses the stream's upgrade), and is watched on as after an end
 * seen live; deleted while watched, it ends the watch with
 * ATS_ERR_JOB_NOT_FOUND, exit 1, either way.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HandlerRegistry, registerDemoHandlers } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import { capturing } from '../../tests/helpers/capture-output.js';
import { spawnAts } from '../../tests/helpers/cli.js';
import { makeKey, type MadeKey } from '../../tests/helpers/keys.js';
import { AtsClient } from '../client.js';
import { compose, type System } from '../compose.js';
import { configFrom } from '../start.js';
import { watchCommand } from './watch.js';
import { closeLocal, listenLocal } from '../../tests/helpers/local-server.js';

let system: System;
let url = '';
let key: MadeKey;
const dataDir = mkdtempSync(join(tmpdir(), 'ats-cli-watch-test-'));

before(async () => {
  const config = configFrom({ ATS_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', ATS_RELAY_POLL_MS: '20', ATS_TIMERS_POLL_MS: '100' }, []);
  system = await compose(config, { registry: registerDemoHandlers(new HandlerRegistry()), logger: silentLogger });
  url = (await system.start()).url!.replace('localhost', '127.0.0.1');
  key = await makeKey(system.store, 'default'); // a key exists: from now on the API requires one
});

/** The API at `target` without its stream: requests are passed on, every WebSocket upgrade answered 404 (`ats watch` polls). */
async function withoutStream(target: string): Promise<string> {
  const server = createServer((req, res) => {
    const on = request(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    on.on('error', () => res.destroy());
    req.pipe(on);
  });
  server.on('upgrade', (_req, socket) => void socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'));
  proxies.push(server);
  return listenLocal(server);
}
const proxies: Array<ReturnType<typeof createServer>> = [];

after(async () => {
  for (const p of proxies) await closeLocal(p);
  await system?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('ats watch --job over the stream', { timeout: 60_000 }, () => {
  test('a job that does not exist: ATS_ERR_JOB_NOT_FOUND on stderr, exit 1, as when polling (not a silent wait for ever)', async () => {
    const mine = await makeKey(system.store, 'default');
    const missing = '01J00000000000000000000999';
    const r = await capturing(missing, async () => {
      const gaveUp = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 20_000).unref());
      const code = await Promise.race([watchCommand(['--job', missing], { ATS_URL: url, ATS_API_KEY: mine.key }), gaveUp]);
      assert.notEqual(code, 'hung', 'the watch of a job that does not exist went on');
      return code as number;
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^ATS_ERR_JOB_NOT_FOUND: /m);
    assert.doesNotMatch(r.stderr, /polling/, 'over the stream, not polling');
  });

  test('a job that exists: its transitions print, and the watch goes on until Ctrl-C (exit 0)', async () => {
    const mine = await makeKey(system.store, 'default');
    const client = new AtsClient({ url, apiKey: mine.key });
    // Dead after its one attempt, and again after each redrive: transitions for as long as the test asks.
    const job = await client.submit({ type: 'demo.fail', payload: { always: true }, maxAttempts: 1 });
    const watch = spawnAts(url, ['watch', '--job', job.id], { ATS_API_KEY: mine.key }, 50_000);
    let code: number | null | undefined;
    void watch.exited.then((e) => (code = e.code));
    try {
      // Live from its subscribe: redrive the job each time it is dead until a transition shows.
      const deadline = Date.now() + 30_000;
      while (!watch.stdout.includes(job.id) && code === undefined) {
        if (Date.now() > deadline) assert.fail(`the watch printed no transition:\n${watch.stderr}`);
        if ((await client.get(job.id)).state === 'dead') await client.redrive(job.id);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(code, undefined, `the watch of a job that exists ended (exit ${code}):\n${watch.stderr}`);
      watch.kill('SIGINT');
      const r = await watch.exited;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, new RegExp(`${job.id}\\s+demo\\.fail\\s+default\\s+`));
    } finally {
      watch.kill('SIGKILL');
    }
  });
});

describe('ats watch --job of a job that has already ended, and of one deleted while watched', { timeout: 60_000 }, () => {
  for (const way of ['stream', 'polling'] as const) {
    test(`${way}: its end is printed at once and it is watched on, as after an end seen live; its DELETE then ends the watch with ATS_ERR_JOB_NOT_FOUND, exit 1`, async () => {
      const mine = await makeKey(system.store, 'default');
      const client = new AtsClient({ url, apiKey: mine.key });
      const job = await client.submit({ type: 'demo.echo', payload: { way } });
      for (const deadline = Date.now() + 20_000; (await client.get(job.id)).state !== 'done';) {
        if (Date.now() > deadline) assert.fail('the job did not end');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const watchUrl = way === 'stream' ? url : await withoutStream(url);
      const r = await capturing(job.id, async (seen) => {
        const watching = watchCommand(['--job', job.id], { ATS_URL: watchUrl, ATS_API_KEY: mine.key });
        let ended: number | false = false;
        void watching.then((code) => (ended = code), () => (ended = -1));
        try {
          for (const deadline = Date.now() + 20_000; !seen.stdout.includes('-> done') && !ended;) {
            if (Date.now() > deadline) assert.fail(`the watch of a job that had already ended printed nothing:\n${seen.stderr}`);
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          // Watched on, as a job whose end the watch saw live is (a dead or cancelled one can be redriven).
          await new Promise((resolve) => setTimeout(resolve, 1500));
          assert.equal(ended, false, `the watch ended (exit ${ended}):\n${seen.stderr}`);
          await client.delete(job.id);
          const gaveUp = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 20_000).unref());
          const code = await Promise.race([watching, gaveUp]);
          assert.notEqual(code, 'hung', `the watch of a deleted job went on:\n${seen.stderr}`);
          return code as number;
        } finally {
          if (ended === false) process.emit('SIGINT');
        }
      });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^ATS_ERR_JOB_NOT_FOUND: /m);
      if (way === 'stream') assert.doesNotMatch(r.stderr, /polling/, 'over the stream, not polling');
      else assert.match(r.stderr, /polling the job every second/);
      // Its end, once, as the watch prints a transition.
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 1, r.stdout);
      assert.match(lines[0]!, new RegExp(`^\\S+  ${job.id}  demo\\.echo  default  running -> done\\s+SUCCEEDED`));
    });
  }
});

describe('ats watch and a revoked key', { timeout: 60_000 }, () => {
  test('the stream closed with 4401 ends the command: ATS_ERR_UNAUTHORIZED on stderr, exit 1, no polling', async () => {
    const queue = `q-${Math.random().toString(36).slice(2, 10)}`;
    const client = new AtsClient({ url, apiKey: key.key });
    const r = await capturing(queue, async (seen) => {
      const watching = watchCommand(['--queue', queue], { ATS_URL: url, ATS_API_KEY: key.key });
      let ended = false;
      void watching.finally(() => (ended = true));
      // Subscribed once a transition shows: submit jobs until one does (the watch is live from its subscribe).
      const deadline = Date.now() + 20_000;
      while (!seen.stdout.includes('SUBMITTED') && !ended) {
        if (Date.now() > deadline) assert.fail(`the watch printed no transition:\n${seen.stderr}`);
        await client.submit({ type: 'demo.echo', payload: null, queue });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(ended, false, `the watch ended before the key was revoked:\n${seen.stderr}`);
      assert.ok(await system.store.revokeKey(key.record.id, Date.now()));
      // The server re-checks open streams' keys every couple of seconds; the watch must end then, not wait for Ctrl-C.
      const gaveUp = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 30_000).unref());
      const code = await Promise.race([watching, gaveUp]);
      assert.notEqual(code, 'hung', `the watch went on after its key was revoked:\n${seen.stderr}`);
      return code as number;
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^ATS_ERR_UNAUTHORIZED: API key revoked/m);
    assert.doesNotMatch(r.stderr, /polling|resuming|retrying/, 'neither polled nor resumed');
    assert.match(r.stdout, new RegExp(`${queue}\\s+\\(new\\) -> pending\\s+SUBMITTED`));
  });
});
