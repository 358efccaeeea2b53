/**
 * Test fixture for the stream: an API instance with the stream plugin,
 * listening on a random port, with its own transition service (whose
 * commits wake the tail) and, given a log, a relay; and a WebSocket client
 * that records what it receives. Used by `server/stream/*.test.ts` and the
 * fan-out bench.
 */
import type { Anomaly } from '../../engine/advisor/types.js';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { monotonicFactory } from 'ulid';
import WebSocket from 'ws';
import { silentLogger } from '../../engine/logger.js';
import type { EventLog, JobSpec, JobStore, Logger, StreamEventRecord } from '../../engine/ports.js';
import { Relay } from '../../engine/relay.js';
import { TransitionService } from '../../engine/transitions.js';
import { Waker } from '../../engine/wake.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { buildApp, type AuthDeps } from '../../server/app.js';
import { TEST_DEFAULTS, testClock } from './app.js';
import { decodeStreamCursor } from '../../server/stream/cursor.js';
import type { StreamOptions } from '../../server/stream/options.js';
import { streamPlugin } from '../../server/stream/plugin.js';
import type { StreamEventMessage } from '../../server/stream/protocol.js';

export interface StreamInstance {
  app: FastifyInstance;
  /** `ws://127.0.0.1:<port>/v1/stream` */
  url: string;
  store: JobStore;
  transitions: TransitionService;
  relay: Relay | null;
  /** Wakes the stream's tail (what a commit of this instance does). */
  wake(): void;
  /** Sends an advisor anomaly to the clients (what the composition root wires the advisor to). */
  insight(anomaly: Anomaly): void;
  /** Stops the relay and closes the app (not the store nor the log: the caller owns them). */
  close(): Promise<void>;
}

/**
 * One API instance over `store`: its commits wake its stream at once (as
 * compose wires it); with a `log`, a relay also publishes its outbox there.
 */
export async function startStreamInstance(opts: {
  store: JobStore; log?: EventLog; options?: StreamOptions; logger?: Logger;
  /** Run a relay for this instance's commits (only with a `log`). @defaultValue true */
  relay?: boolean;
  /** Wake the stream on each commit of this instance. @defaultValue true */
  wakeOnCommit?: boolean;
  /** API keys (a client then connects with one: its tenant's events only). @defaultValue none: the open API */
  auth?: AuthDeps;
}): Promise<StreamInstance> {
  const { store, log } = opts;
  const ulid = monotonicFactory();
  const waker = new Waker();
  const stream = streamPlugin({ store, clock: testClock, logger: opts.logger ?? silentLogger, options: opts.options, ...(opts.auth ? { auth: opts.auth } : {}) });
  const transitions = new TransitionService({
    store, clock: testClock, random: { next: Math.random }, ids: { jobId: () => ulid() },
    onCommit: () => {
      waker.notify();
      if (opts.wakeOnCommit !== false) stream.wake();
    },
  });
  const relay = log && opts.relay !== false
    ? new Relay({ store, log, transitions, clock: testClock, logger: silentLogger, waker }, { batchSize: 500, pollMs: 50, errorBackoffMs: 100 })
    : null;
  const app = await buildApp({
    transitions, store, clock: testClock, checks: { database: () => store.ping() },
    limits: { bodyLimitBytes: 1024 * 1024 }, defaults: TEST_DEFAULTS, plugins: [stream], ...(opts.auth ? { auth: opts.auth } : {}),
  });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  relay?.start();
  return {
    app, store, transitions, relay, wake: () => stream.wake(), insight: (a) => stream.insight(a),
    url: `${address.replace(/^http/, 'ws')}/v1/stream`,
    close: once(async () => {
      await relay?.stop();
      await app.close();
    }),
  };
}

const once = (fn: () => Promise<void>) => {
  let done: Promise<void> | null = null;
  return () => (done ??= fn());
};

/** A job spec for tests. */
export const spec = (type: string, queue: string, extra: Partial<JobSpec> = {}): JobSpec => ({
  type, payload: { n: 1 }, queue, maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0, ...extra,
});

/** An event message as a client receives it. */
export type EventMsg = StreamEventMessage;

type Msg = { kind: string; [k: string]: unknown };

/** A WebSocket client that keeps every message it got. */
export class TestClient {
  readonly messages: Msg[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (raw) => {
      this.messages.push(JSON.parse(String(raw)) as Msg);
      this.notify();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) };
      this.notify();
    });
    ws.on('error', () => undefined);
  }

  static async connect(url: string, options: WebSocket.ClientOptions = {}): Promise<TestClient> {
    const ws = new WebSocket(url, options);
    const client = new TestClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Subscribes and resolves with the `subscribed` cursor. */
  async subscribe(filter: Record<string, unknown> = {}, cursor?: string): Promise<string> {
    const before = this.messages.length;
    this.send({ op: 'subscribe', filter, ...(cursor ? { cursor } : {}) });
    const m = await this.waitFor((ms) => ms.slice(before).find((x) => x.kind === 'subscribed' || x.kind === 'error'));
    assert.equal(m.kind, 'subscribed', `subscribe refused: ${JSON.stringify(m)}`);
    return m.cursor as string;
  }

  events(): EventMsg[] {
    return this.messages.filter((m): m is EventMsg & Msg => m.kind === 'event');
  }

  of(kind: string): Msg[] {
    return this.messages.filter((m) => m.kind === kind);
  }

  /** The last event's cursor (or undefined). */
  lastCursor(): string | undefined {
    return this.events().at(-1)?.cursor;
  }

  /** Resolves with `find(messages)` once it is not undefined; fails after `timeoutMs`. */
  async waitFor<T>(find: (messages: Msg[]) => T | undefined | false, timeoutMs = 15_000, what = 'the expected messages'): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find(this.messages);
      if (found !== undefined && found !== false) return found;
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`timed out waiting for ${what}; got ${this.messages.length} messages, last ${JSON.stringify(this.messages.at(-1))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.min(left, 200));
        function done() {
          clearTimeout(t);
          resolve();
        }
        this.waiters.push(done);
      });
    }
  }

  /** Waits for the close frame (or the drop). */
  async waitClosed(timeoutMs = 15_000): Promise<{ code: number; reason: string }> {
    return this.waitFor(() => this.closed ?? undefined, timeoutMs, 'the connection to close');
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.ws.terminate();
    return this.waitClosed().then(() => undefined);
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** `jobId#seq` of an event (received or stored): the identity a stream must not repeat nor skip. */
export const key = (e: { jobId: string; seq: number }): string => `${e.jobId}#${e.seq}`;

/** The id a stream cursor stands for. */
export const idOf = (cursor: string): number => decodeStreamCursor(cursor);

/** Every stored event of these jobs, as `jobId#seq`, in per-job seq order. */
export async function history(store: JobStore, jobIds: Iterable<string>): Promise<string[]> {
  const out: string[] = [];
  for (const id of jobIds) out.push(...(await store.getEvents(id)).map((e) => key({ jobId: id, seq: e.seq })));
  return out;
}

/** Asserts that per job the events came in seq order, each once, and that cursors only grew. */
export function assertOrdered(events: readonly EventMsg[]): void {
  const lastSeq = new Map<string, number>();
  let lastId = 0;
  for (const e of events) {
    const prev = lastSeq.get(e.jobId) ?? 0;
    assert.ok(e.seq > prev, `job ${e.jobId}: seq ${e.seq} after ${prev}`);
    lastSeq.set(e.jobId, e.seq);
    const id = idOf(e.cursor);
    assert.ok(id > lastId, `cursor ${id} after ${lastId}`);
    lastId = id;
  }
}

export type { StreamEventRecord };
