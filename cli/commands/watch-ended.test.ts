/**
 * `ats watch --job ID` over the stream, of a job that moves and ends right
 * around the start of the watch, against a small fake server that keeps the
 * job's events with their stream positions and serves them as the real one
 * does: `GET /v1/jobs/:id` answers the job with its history and the stream
 * cursor of its newest event (`streamCursor`), a subscribe with a cursor is
 * sent every event of the job after it, and one without is live from the
 * position its stream has delivered up to, which lags the commits (the real
 * stream delivers another process's commit within its poll). The watch must
 * print the job's transitions in their order, each once, each with its
 * cursor in --json, the end it read at the start first.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { after, test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { capturing } from '../../tests/helpers/capture-output.js';
import { listenLocalStream } from '../../tests/helpers/local-server.js';
import { watchCommand } from './watch.js';

const cursor = (id: number) => Buffer.from(`v1:${id}`, 'utf8').toString('base64url');
const position = (c: string) => Number(Buffer.from(c, 'base64url').toString('utf8').slice(3));
const at = (seq: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, seq)).toISOString();

/** The job's history: submitted, run, dead, then redriven (seq 4); seq n is the stream's event 10 + n. */
const HISTORY = [
  { seq: 1, type: 'SUBMITTED', from: null, to: 'pending' },
  { seq: 2, type: 'STARTED', from: 'pending', to: 'running' },
  { seq: 3, type: 'FAILED', from: 'running', to: 'dead' },
  { seq: 4, type: 'REDRIVE', from: 'dead', to: 'pending' },
].map((e) => ({ ...e, at: at(e.seq), data: {} }));
const idOf = (seq: number) => 10 + seq;

/**
 * The API and its stream. `committed` seqs are in the table; the stream has
 * delivered up to `delivered` (an event id). On the first read of the job,
 * `onFirstRead` runs before the answer (a transition committing around the
 * subscribe).
 */
async function fakeServer({ job: JOB, committed, onFirstRead }: { job: string; committed: number; onFirstRead: (fake: { commit(seq: number): void }) => void }) {
  const state = { committed, delivered: idOf(committed), reads: 0, subscribes: [] as Array<string | undefined> };
  const subs: Array<{ ws: WebSocket; position: number }> = [];
  const message = (seq: number) => JSON.stringify({ kind: 'event', cursor: cursor(idOf(seq)), jobId: JOB, jobType: 'demo.echo', queue: 'default', ...HISTORY[seq - 1]! });
  /** The stream delivers what is committed up to its newest event, to each subscription past its position. */
  const deliver = () => {
    state.delivered = idOf(state.committed);
    for (const s of subs) {
      for (let seq = 1; seq <= state.committed; seq++) if (idOf(seq) > s.position) s.ws.send(message(seq));
      s.position = Math.max(s.position, state.delivered);
    }
  };
  const fake = { commit: (seq: number) => void (state.committed = seq) };
  const wss = new WebSocketServer({ noServer: true });
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { op: string; cursor?: string };
      if (msg.op !== 'subscribe') return;
      state.subscribes.push(msg.cursor);
      const from = msg.cursor === undefined ? state.delivered : position(msg.cursor);
      ws.send(JSON.stringify({ kind: 'subscribed', cursor: cursor(from) }));
      // A replay: every committed event after the cursor; then live.
      const sub = { ws, position: from };
      if (msg.cursor !== undefined) {
        for (let seq = 1; seq <= state.committed; seq++) if (idOf(seq) > sub.position) ws.send(message(seq));
        sub.position = Math.max(sub.position, idOf(state.committed));
      }
      subs.push(sub);
    });
  });
  const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const server = createServer((req, res) => {
    if (req.url === '/healthz') return json(res, 200, { status: 'ok' });
    if (req.url === `/v1/jobs/${JOB}`) {
      if (++state.reads === 1) onFirstRead(fake);
      const events = HISTORY.slice(0, state.committed);
      const last = events.at(-1)!;
      json(res, 200, {
        id: JOB, type: 'demo.echo', queue: 'default', state: last.to, attempt: 1, maxAttempts: 1, payload: null, result: null, lastError: null,
        runAt: at(0), createdAt: at(1), updatedAt: last.at, version: last.seq, events, streamCursor: cursor(idOf(last.seq)),
      });
      // The stream catches up a moment after the read was answered.
      setTimeout(deliver, 100);
      return;
    }
    json(res, 404, { code: 'ATS_ERR_ROUTE_NOT_FOUND', message: 'No route' });
  });
  const { url, close } = await listenLocalStream(server, wss);
  closers.push(close);
  return { url, state, fake, deliver };
}

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers) await close();
});

type Line = { kind?: string; seq: number; to: string; cursor?: string };
/** The command's JSON lines. (Each test watches a job of its own: the runner's report of an earlier one may come while a later one captures.) */
const printed = (stdout: string): Line[] => stdout.split('\n').filter((l) => l.startsWith('{"')).map((l) => JSON.parse(l) as Line);

/** Runs `ats watch --job JOB --json` until it printed seq `until` (then Ctrl-C), calling `tick` as it waits; the lines it printed. */
async function watch(url: string, JOB: string, until: number, tick: (seqs: number[]) => void) {
  const r = await capturing(JOB, async (seen) => {
    const watching = watchCommand(['--job', JOB, '--json'], { ATS_URL: url });
    let ended: number | undefined;
    void watching.then((code) => (ended = code), () => (ended = -1));
    try {
      const seqs = () => printed(seen.stdout).map((l) => l.seq);
      for (const deadline = Date.now() + 20_000; !seqs().includes(until) && ended === undefined;) {
        if (Date.now() > deadline) assert.fail(`the watch did not print seq ${until}:\n${seen.stdout}\n${seen.stderr}`);
        tick(seqs());
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Long enough for a late duplicate to come.
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      if (ended === undefined) process.emit('SIGINT');
    }
    return watching;
  });
  assert.equal(r.code, 0, r.stderr);
  return printed(r.stdout);
}

test('a job that ran and died around the subscribe: its end read at the start first, with its cursor, then each later transition once, in order', async () => {
  // Pending (seq 1) when the watch starts; started and died (seq 2, 3) just as it starts, before the job's first read
  // answered and before the stream delivered them; redriven (seq 4) once the watch has printed the end.
  const server = await fakeServer({ job: '01J0000000000000000000END1', committed: 1, onFirstRead: (f) => (f.commit(2), f.commit(3)) });
  let redriven = false;
  const lines = await watch(server.url, '01J0000000000000000000END1', 4, (seqs) => {
    if (!redriven && seqs.includes(3) && server.state.subscribes.length > 0) {
      redriven = true;
      setTimeout(() => (server.fake.commit(4), server.deliver()), 200);
    }
  });
  assert.deepEqual(lines.map((l) => `${l.seq} ${l.to}`), ['3 dead', '4 pending'], `in order, each once:\n${JSON.stringify(lines)}`);
  assert.deepEqual(lines.map((l) => l.cursor), [cursor(idOf(3)), cursor(idOf(4))], 'every line with its cursor, the end read at the start too');
  // One shape for every line: the end read at the start is a stream event's line too (`kind: "event"`), so a reader
  // that picks the events (`jq 'select(.kind == "event")'`) does not drop it.
  assert.deepEqual(lines.map((l) => l.kind), ['event', 'event'], `every line a stream event's, the end read at the start too:\n${JSON.stringify(lines)}`);
  assert.deepEqual(server.state.subscribes, [cursor(idOf(3))], 'subscribed from the cursor the read gave');
});

test('a job not ended at the start: each transition after the read once, in order, none the read already held', async () => {
  // Pending when read; started (seq 2) between the read and the subscribe, and the stream has not delivered it yet.
  const server = await fakeServer({ job: '01J0000000000000000000END2', committed: 1, onFirstRead: (f) => setTimeout(() => f.commit(2), 0) });
  let died = false;
  const lines = await watch(server.url, '01J0000000000000000000END2', 3, (seqs) => {
    if (!died && seqs.includes(2)) {
      died = true;
      server.fake.commit(3);
      server.deliver();
    }
  });
  assert.deepEqual(lines.map((l) => `${l.seq} ${l.to}`), ['2 running', '3 dead'], JSON.stringify(lines));
  assert.ok(lines.every((l) => typeof l.cursor === 'string'));
});
