/**
 * `ats watch` and cursors, against a small fake server: a watch whose
 * reconnect is refused ATS_ERR_BAD_CURSOR (the server's database reset, or
 * restored from an older backup) ends with that error, exit 1, instead of
 * retrying for ever; and `--cursor` on a server without a stream route is an
 * error (polling cannot replay from a cursor), not a silent poll from now.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { after, test } from 'node:test';
import { WebSocketServer } from 'ws';
import { capturing } from '../../tests/helpers/capture-output.js';
import { watchCommand } from './watch.js';
import { listenLocalStream } from '../../tests/helpers/local-server.js';

const JOB = '01J0000000000000000000CUR1';
const cursor = (id: number) => Buffer.from(`v1:${id}`, 'utf8').toString('base64url');

/**
 * The API (health and an empty job list, each request counted) and, with
 * `stream`, the stream: the first connection subscribes, sends one event of
 * JOB and closes with 1001 (a restart); every later subscribe is refused ATS_ERR_BAD_CURSOR.
 */
async function fakeServer({ stream }: { stream: boolean }) {
  const seen = { lists: 0, subscribes: [] as Array<string | undefined> };
  const wss = new WebSocketServer({ noServer: true });
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { op: string; cursor?: string };
      if (msg.op !== 'subscribe') return;
      seen.subscribes.push(msg.cursor);
      if (seen.subscribes.length > 1) {
        return void ws.send(JSON.stringify({ kind: 'error', code: 'ATS_ERR_BAD_CURSOR', message: 'The stream cursor is beyond every event this server has issued' }));
      }
      ws.send(JSON.stringify({ kind: 'subscribed', cursor: cursor(7) }));
      ws.send(JSON.stringify({
        kind: 'event', cursor: cursor(8), jobId: JOB, seq: 1, type: 'SUBMITTED', from: null, to: 'pending',
        at: new Date(0).toISOString(), data: {}, jobType: 'demo.echo', queue: 'default',
      }));
      setTimeout(() => ws.close(1001, 'server going away'), 20);
    });
  });
  const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const server = createServer((req, res) => {
    if (req.url === '/healthz') return json(res, 200, { status: 'ok' });
    if (req.url?.startsWith('/v1/jobs?')) {
      seen.lists++;
      return json(res, 200, { jobs: [], nextCursor: null });
    }
    json(res, 404, { code: 'ATS_ERR_ROUTE_NOT_FOUND', message: 'No route' });
  });
  const { url, close } = await listenLocalStream(server, wss, () => stream);
  closers.push(close);
  return { url, seen };
}

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers) await close();
});

/** Runs the command with stderr captured, and stdout lines naming JOB; 'running' if it has not ended after `ms`. */
function run(args: string[], url: string, ms: number): Promise<{ code: number | 'running'; stdout: string; stderr: string }> {
  return capturing(JOB, async () => {
    const running = new Promise<'running'>((r) => setTimeout(() => r('running'), ms).unref());
    const code = await Promise.race([watchCommand(args, { ATS_URL: url }), running]);
    if (code === 'running') process.emit('SIGINT'); // ends a watch that went on (exit 0)
    return code;
  });
}

test('a reconnect refused ATS_ERR_BAD_CURSOR ends ats watch: the error on stderr, exit 1, no endless retries', async () => {
  const fake = await fakeServer({ stream: true });
  const r = await run([], fake.url, 4_000);
  assert.equal(r.code, 1, `exit ${r.code}; stderr:\n${r.stderr}`);
  assert.match(r.stdout, new RegExp(`${JOB}\\s+demo\\.echo\\s+default\\s+\\(new\\) -> pending`));
  assert.match(r.stderr, /^ATS_ERR_BAD_CURSOR: The stream cursor is beyond every event this server has issued: the watch cannot resume/m);
  assert.deepEqual(fake.seen.subscribes, [undefined, cursor(8)], 'one reconnect, from the last cursor, and none after its refusal');
});

test('--cursor on a server without a stream route: an error saying polling cannot replay from it, exit 1, no polling', async () => {
  const fake = await fakeServer({ stream: false });
  const r = await run(['--cursor', cursor(8)], fake.url, 3_000);
  assert.equal(r.code, 1, `exit ${r.code}; stderr:\n${r.stderr}`);
  assert.match(r.stderr, /^ATS_ERR_STREAM_UNAVAILABLE: .* has no stream route: --cursor needs the stream/m);
  assert.doesNotMatch(r.stderr, /polling the/);
  assert.equal(fake.seen.lists, 0, 'no job list read');
});

test('without --cursor, the same server is polled, as before', async () => {
  const fake = await fakeServer({ stream: false });
  const r = await run([], fake.url, 1_500);
  assert.equal(r.code, 'running', r.stderr);
  assert.match(r.stderr, /has no stream route; polling the 100 newest jobs every second/);
  assert.ok(fake.seen.lists >= 1);
});
