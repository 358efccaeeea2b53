/**
 * WebSocket stream fan-out: one API instance on MariaDB, C clients subscribed with no filter, in a child process so that their
 * parsing does not take the server's CPU. J jobs are submitted and moved
 * through STARTED and SUCCEEDED (3 transitions each, batches of 500 per
 * transaction). Measured, as events delivered in total across the clients
 * per second:
 *   live:   the tail is kept asleep while the run commits (not woken by
 *           commits, a long poll), then one `wake()` wakes it: from that wake-up
 *           until every client has every event, i.e. the tail's reads, one
 *           serialization per event and the sends to C sockets;
 *   replay: C fresh clients subscribing with the cursor before the first
 *           event, each replaying the whole run from the table.
 * The commit time is printed for context (it is not part of either figure).
 *
 *   node --import tsx bench/stream-fanout.ts
 *   BENCH_CLIENTS=50 BENCH_JOBS=2000 node --import tsx bench/stream-fanout.ts
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { createMysqlStore } from '../adapters/mysql/index.js';
import type { JobStore } from '../engine/ports.js';
import { spec, startStreamInstance } from '../tests/helpers/stream.js';
import { encodeStreamCursor } from '../server/stream/cursor.js';
import { createTestDatabase } from '../tests/helpers/mysql.js';

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 50);
const JOBS = Number(process.env.BENCH_JOBS ?? 2000);
const BATCH = 500;

type ToChild = { url: string; clients: number; cursor?: string };
type FromChild = { kind: 'subscribed' } | { kind: 'counts'; counts: number[] } | { kind: 'done'; at: number };

// ---------------------------------------------------------------- clients (child process)

function runClients(): void {
  let target = Infinity;
  let counts: number[] = [];
  let finished = false;
  const check = () => {
    if (!finished && counts.length > 0 && counts.every((n) => n >= target)) {
      finished = true;
      process.send!({ kind: 'done', at: Date.now() } satisfies FromChild);
    }
  };
  process.on('message', async (m: ToChild | { target: number } | { report: true }) => {
    if ('target' in m) {
      target = m.target;
      return check();
    }
    if ('report' in m) return void process.send!({ kind: 'counts', counts } satisfies FromChild);
    counts = new Array(m.clients).fill(0);
    const prefix = Buffer.from('{"kind":"event"');
    await Promise.all(counts.map((_, i) => new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(m.url);
      ws.on('error', reject);
      ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', filter: {}, ...(m.cursor ? { cursor: m.cursor } : {}) })));
      ws.on('message', (data: Buffer) => {
        if (data.subarray(0, prefix.length).equals(prefix)) {
          counts[i]!++;
          if (counts[i]! >= target) check();
        } else if (data.includes('"subscribed"')) resolve();
      });
    })));
    process.send!({ kind: 'subscribed' } satisfies FromChild);
  });
}

// ---------------------------------------------------------------- server (this process)

function startClients(msg: ToChild): Promise<{ child: ChildProcess; next(kind: FromChild['kind']): Promise<FromChild> }> {
  const child = fork(fileURLToPath(import.meta.url), ['--clients'], { execArgv: ['--import', 'tsx'] });
  const waiting = new Map<string, (m: FromChild) => void>();
  const early = new Map<string, FromChild>();
  child.on('message', (m: FromChild) => {
    const w = waiting.get(m.kind);
    if (w) {
      waiting.delete(m.kind);
      w(m);
    } else early.set(m.kind, m);
  });
  const next = (kind: FromChild['kind']) => new Promise<FromChild>((resolve) => {
    const got = early.get(kind);
    if (got) {
      early.delete(kind);
      resolve(got);
    } else waiting.set(kind, resolve);
  });
  child.send(msg);
  return next('subscribed').then(() => ({ child, next }));
}

/** Submit J jobs, then STARTED and SUCCEEDED for each, in batches of 500 per transaction. */
async function commitRun(instance: Awaited<ReturnType<typeof startStreamInstance>>): Promise<void> {
  const ids: string[] = [];
  for (let i = 0; i < JOBS; i += BATCH) {
    const batch = await instance.transitions.submitMany(Array.from({ length: Math.min(BATCH, JOBS - i) }, () => spec('bench.stream', 'bench')));
    ids.push(...batch.map((r) => r.job.id));
  }
  for (const event of [
    { type: 'STARTED' as const, attempt: 1, leaseUntil: Date.now() + 600_000, workerId: 'bench' },
    { type: 'SUCCEEDED' as const, attempt: 1, result: { ok: true } },
  ]) {
    for (let i = 0; i < ids.length; i += BATCH) await instance.transitions.applyMany(ids.slice(i, i + BATCH).map((jobId) => ({ jobId, event })));
  }
}

async function countEvents(store: JobStore): Promise<number> {
  let n = 0;
  for (let after = 0, page; (page = await store.readEventsAfter(after, 5000)).length > 0; after = page.at(-1)!.id) n += page.length;
  return n;
}

async function main(): Promise<void> {
  const db = await createTestDatabase();
  const store = await createMysqlStore({ url: db.url, poolSize: 10 });
  await store.migrate();
  const instance = await startStreamInstance({ store, relay: false, wakeOnCommit: false, options: { pollMs: 600_000, idlePollMs: 600_000 } });
  try {
    const live = await startClients({ url: instance.url, clients: CLIENTS });
    const c0 = Date.now();
    await commitRun(instance);
    const commitMs = Date.now() - c0;
    const total = await countEvents(store);
    live.child.send({ target: total });
    const t0 = Date.now();
    instance.wake(); // the wake-up a commit would give
    const done = (await live.next('done')) as { at: number };
    const liveMs = Math.max(1, done.at - t0);
    live.child.kill();

    const replay = await startClients({ url: instance.url, clients: CLIENTS, cursor: encodeStreamCursor(0) });
    // Replays start at subscribe; the clock starts once all are subscribed (the rate is a lower bound).
    const r0 = Date.now();
    replay.child.send({ target: total });
    const rdone = (await replay.next('done')) as { at: number };
    const replayMs = Math.max(1, rdone.at - r0);
    replay.child.kill();

    const result = {
      clients: CLIENTS, jobs: JOBS, eventsPerClient: total, commitMs,
      live: { ms: liveMs, deliveredPerSec: Math.round((CLIENTS * total) / (liveMs / 1000)) },
      replay: { ms: replayMs, deliveredPerSec: Math.round((CLIENTS * total) / (replayMs / 1000)) },
    };
    console.log(`stream fan-out: ${CLIENTS} clients x ${total} events (${JOBS} jobs x 3 transitions; committing them took ${commitMs} ms)`);
    console.log(`  live:   ${result.live.deliveredPerSec.toLocaleString('en')} events/s delivered in total (${liveMs} ms from the wake-up to the last client done)`);
    console.log(`  replay: ${result.replay.deliveredPerSec.toLocaleString('en')} events/s delivered in total (${replayMs} ms, each client replaying from the table)`);
    console.log(JSON.stringify(result));
  } finally {
    await instance.close();
    await store.close();
    await db.drop();
  }
}

if (process.argv.includes('--clients')) runClients();
else await main();
