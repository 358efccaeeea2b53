/**
 * `ats submit --count N` against a real scheduler in this process (compose:
 * the API, relay, worker and timers on a fresh SQLite file, the demo
 * handlers), reached through a TCP proxy that can make the API unreachable
 * while the batches go in: the submits wait the outage out and send the
 * batch again without making a job twice; a failure that is not waited out
 * ends the run saying how many jobs went in before it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { HandlerRegistry, registerDemoHandlers } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import { startTcpProxy, type TcpProxy } from '../../tests/helpers/tcp-proxy.js';
import { ApiError, AtsClient } from '../client.js';
import { compose, type System } from '../compose.js';
import { configFrom } from '../start.js';
import { Progress } from './progress.js';
import { NodeWebSocket } from './stream.js';
import { submitMany } from './submit-many.js';

let system: System;
let proxy: TcpProxy;
/** The API itself, not through the proxy. */
let apiUrl = '';
const dataDir = mkdtempSync(join(tmpdir(), 'ats-cli-submit-many-test-'));
const quiet = { write: () => true, isTTY: false };
const randomQueue = () => `q-${Math.random().toString(36).slice(2, 10)}`;

before(async () => {
  const config = configFrom({ ATS_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', ATS_RELAY_POLL_MS: '20', ATS_TIMERS_POLL_MS: '100' }, []);
  system = await compose(config, { registry: registerDemoHandlers(new HandlerRegistry()), logger: silentLogger });
  apiUrl = (await system.start()).url!.replace('localhost', '127.0.0.1');
  proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(apiUrl).port) });
});

after(async () => {
  await proxy?.close();
  await system?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/**
 * The commands' client, through the proxy, with `onBatch` called for each
 * `POST /v1/jobs/batch` before it goes (it may answer in its place), and
 * few, short retries of its own: the command's waiting is what is tested.
 */
function clientWith(onBatch: (n: number, send: () => Promise<Response>, init: RequestInit) => Promise<Response>): AtsClient {
  let batches = 0;
  const wrapped: typeof fetch = async (input, init) => {
    if (String(input).endsWith('/v1/jobs/batch')) return onBatch(++batches, () => fetch(input, init), init ?? {});
    return fetch(input, init);
  };
  return new AtsClient({
    url: `http://127.0.0.1:${proxy.port}`, fetch: wrapped, WebSocket: NodeWebSocket, retries: 1, retryDelayMs: { min: 5, max: 20 },
  });
}

/** Every job of `queue`, read straight from the API (not through the proxy). */
async function jobsOf(queue: string): Promise<Array<{ id: string; idempotencyKey: string | null }>> {
  const direct = new AtsClient({ url: apiUrl });
  const jobs: Array<{ id: string; idempotencyKey: string | null }> = [];
  for await (const page of direct.list({ queue, limit: 500 })) jobs.push(...page.jobs.map((j) => ({ id: j.id, idempotencyKey: j.idempotencyKey })));
  return jobs;
}

describe('submit --count through an outage of the API', { timeout: 120_000 }, () => {
  afterEach(() => proxy.restore());

  test('a batch whose answer is lost as the API goes away is sent again once it is back: every job once, the run ends with its summary', async () => {
    const queue = randomQueue();
    const notices: string[] = [];
    const client = clientWith(async (n, send) => {
      if (n !== 2) return send();
      // The server takes the second batch (its jobs are written); then the API goes away before the answer is read.
      (await send()).body?.cancel();
      await proxy.cut();
      throw new TypeError('fetch failed', { cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) });
    });
    const waited = () => notices.filter((m) => /jobs submitted so far\)$/.test(m)).length;
    const summary = await submitMany(client, { type: 'demo.echo', payload: { n: 1 }, queue }, 50, {
      batchSize: 10, pollMs: 200, resendMs: 20, progress: new Progress(50, quiet),
      onNotice: (m) => {
        notices.push(m);
        // Back after the submits have waited a few times (the stream's reconnects say so too: not counted).
        if (waited() === 3) void proxy.restore();
      },
    });
    assert.equal(summary.total, 50);
    assert.equal(summary.submitted, 50);
    assert.equal(summary.done, 50, summary.text);
    assert.ok(waited() >= 3, notices.join('\n'));
    assert.match(notices.join('\n'), /^cannot reach the ats server at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\); still trying \(\d+ of 50 jobs submitted so far\)$/m);
    const jobs = await jobsOf(queue);
    assert.equal(jobs.length, 50, 'the batch sent again made no second job');
    assert.equal(new Set(jobs.map((j) => j.idempotencyKey)).size, 50);
  });

  test('a failure it does not wait out ends the run, saying how many jobs were submitted before it', async () => {
    const queue = randomQueue();
    // The third batch names a type the server does not know (as if a deployment without its handler took over):
    // the server refuses each of its jobs, and the run stops there.
    const client = clientWith(async (n, send, init) => {
      if (n !== 3) return send();
      const body = JSON.parse(String(init.body)) as { jobs: Array<{ type: string }> };
      for (const j of body.jobs) j.type = 'demo.unknown';
      init.body = JSON.stringify(body);
      return send();
    });
    await assert.rejects(
      submitMany(client, { type: 'demo.echo', payload: null, queue }, 50, { batchSize: 10, concurrency: 1, pollMs: 200, progress: new Progress(50, quiet) }),
      (e: unknown) => e instanceof ApiError && e.status === 422 && e.code === 'ATS_ERR_UNKNOWN_JOB_TYPE'
        && / \(20 of 50 jobs submitted before the run stopped\)$/.test(e.message),
    );
    assert.equal((await jobsOf(queue)).length, 20);
  });

  test('a lane waiting out a rate limit stops waiting as soon as another lane fails', async () => {
    const queue = randomQueue();
    const client = clientWith(async (n, send, init) => {
      // The first batch is rate limited for a minute; the second is refused for good.
      if (n === 1) {
        return new Response(JSON.stringify({ code: 'ATS_ERR_RATE_LIMITED', message: 'too many requests' }), {
          status: 429, headers: { 'content-type': 'application/json', 'retry-after': '60' },
        });
      }
      const body = JSON.parse(String(init.body)) as { jobs: Array<{ type: string }> };
      for (const j of body.jobs) j.type = 'demo.unknown';
      init.body = JSON.stringify(body);
      return send();
    });
    const run = submitMany(client, { type: 'demo.echo', payload: null, queue }, 20, { batchSize: 10, concurrency: 2, pollMs: 200, progress: new Progress(20, quiet) });
    run.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 15_000)));
    const ended = await Promise.race([run.then(() => 'resolved', (e: unknown) => e), hung]);
    clearTimeout(timer);
    assert.notEqual(ended, 'hung', 'the rate-limited lane went on waiting its minute');
    assert.ok(ended instanceof ApiError && ended.status === 422 && / \(0 of 20 jobs submitted before the run stopped\)$/.test(ended.message), String(ended));
  });
});
