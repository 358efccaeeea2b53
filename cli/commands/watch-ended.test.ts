/**
 * `ats watch --job ID` over the stream, of a job whose end the first read of
 * the job (`endedAtStart`) finds, against a small fake server that says when
 * each transition comes. A job whose first transition the stream delivered
 * before that read is followed by the stream to its end (it delivers one
 * job's transitions in order, none skipped): the read prints nothing, and the
 * job's lines come in its order, each once, the end after the transitions
 * that led to it. (A job none of whose transitions the stream delivered
 * before the read has its end printed from it, then what the stream delivers
 * after, each once: cli/stream.test.ts.)
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { after, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { capturing } from '../../tests/helpers/capture-output.js';
import { listenLocalStream } from '../../tests/helpers/local-server.js';
import { watchCommand } from './watch.js';

const JOB = '01J0000000000000000000END1';
const cursor = (id: number) => Buffer.from(`v1:${id}`, 'utf8').toString('base64url');
const at = (seq: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, seq)).toISOString();

/** The job's history: submitted, run, dead, then redriven (seq 4). */
const HISTORY = [
  { seq: 1, type: 'SUBMITTED', from: null, to: 'pending' },
  { seq: 2, type: 'STARTED', from: 'pending', to: 'running' },
  { seq: 3, type: 'FAILED', from: 'running', to: 'dead' },
  { seq: 4, type: 'REDRIVE', from: 'dead', to: 'pending' },
].map((e) => ({ ...e, at: at(e.seq), data: {} }));

/** The job as `GET /v1/jobs/:id` answers it, ended dead (seq 1 to 3). */
const deadJob = {
  id: JOB, type: 'demo.echo', queue: 'default', state: 'dead', attempt: 1, maxAttempts: 1, payload: null, result: null, lastError: null,
  runAt: at(0), createdAt: at(1), updatedAt: at(3), version: 3, events: HISTORY.slice(0, 3),
};

/**
 * The API and its stream. The subscription holds from cursor 10; `early`
 * seqs are sent right after it, `late` ones when the job is read the second
 * time (the watch reads it again every 5 s): by then the first read has been
 * taken in. The first read is answered once `firstRead` resolves.
 */
async function fakeServer({ early, late, firstRead }: { early: number[]; late: number[]; firstRead: Promise<void> }) {
  const seen = { reads: 0 };
  const sockets: WebSocket[] = [];
  const send = (seqs: number[]) => {
    for (const seq of seqs) {
      const e = HISTORY[seq - 1]!;
      for (const ws of sockets) ws.send(JSON.stringify({ kind: 'event', cursor: cursor(10 + seq), jobId: JOB, jobType: 'demo.echo', queue: 'default', ...e }));
    }
  };
  const wss = new WebSocketServer({ noServer: true });
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      if ((JSON.parse(String(data)) as { op: string }).op !== 'subscribe') return;
      sockets.push(ws);
      ws.send(JSON.stringify({ kind: 'subscribed', cursor: cursor(10) }));
      send(early);
    });
  });
  const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const server = createServer((req, res) => {
    if (req.url === '/healthz') return json(res, 200, { status: 'ok' });
    if (req.url === `/v1/jobs/${JOB}`) {
      seen.reads++;
      if (seen.reads === 2) send(late);
      if (seen.reads === 1) return void firstRead.then(() => json(res, 200, deadJob));
      return json(res, 200, deadJob);
    }
    json(res, 404, { code: 'ATS_ERR_ROUTE_NOT_FOUND', message: 'No route' });
  });
  const { url, close } = await listenLocalStream(server, wss);
  closers.push(close);
  return { url, seen };
}

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers) await close();
});

/** Runs `ats watch --job JOB` until its stdout has `until` (then Ctrl-C); the lines it printed, as `from -> to`. */
async function watch(url: string, until: RegExp, whenPrinted: [RegExp, () => void]) {
  const r = await capturing(JOB, async (seen) => {
    const watching = watchCommand(['--job', JOB], { ATS_URL: url });
    let ended: number | undefined;
    void watching.then((code) => (ended = code), () => (ended = -1));
    try {
      for (const deadline = Date.now() + 20_000; !until.test(seen.stdout) && ended === undefined;) {
        if (Date.now() > deadline) assert.fail(`the watch did not print ${until}:\n${seen.stdout}\n${seen.stderr}`);
        if (whenPrinted[0].test(seen.stdout)) whenPrinted[1]();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      if (ended === undefined) process.emit('SIGINT');
    }
    return watching;
  });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split('\n').map((l) => /(\S+ -> \S+)/.exec(l.replace('(new)', 'new'))![1]);
}

test('a job whose first transition the stream delivered before the job was read: every transition, in order, once', async () => {
  let answer!: () => void;
  const firstRead = new Promise<void>((resolve) => (answer = resolve));
  const fake = await fakeServer({ early: [1], late: [2, 3, 4], firstRead });
  const lines = await watch(fake.url, /dead -> pending/, [/\(new\) -> pending/, answer]);
  assert.deepEqual(lines, ['new -> pending', 'pending -> running', 'running -> dead', 'dead -> pending']);
  assert.ok(fake.seen.reads >= 2, 'the transitions after the first were sent once the first read was taken in');
});
