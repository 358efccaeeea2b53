/**
 * `watch()`: the WebSocket stream (`GET /v1/stream`, protocol v1) as an async
 * iterator of transitions that survives disconnects. Each connection
 * subscribes with the filter and the cursor of the last event received, so a
 * drop (slow consumer 4000, server restart 1001, network) costs no event and
 * repeats none: the server replays exactly what came after the cursor. At
 * `maxQueued` unread events the watch pauses (drops its connection) and
 * resumes from the last event read once the reader has caught up.
 *
 * Runs on any WebSocket with the standard API: the browser's, Node 22's, or
 * the `ws` package (loaded on demand when there is no global one), which also
 * tells the HTTP status of a refused upgrade.
 */
import { ApiError, networkReason, StreamRefusedError, StreamUnavailableError, toApiError, UnreachableError } from './errors.js';
import { timerMs, unsendableHeader } from './http.js';
import type { StreamEventMessage, StreamFilter, StreamInsightMessage, StreamProgressMessage, StreamStatsMessage, StreamWorkflowMessage } from './types.js';

/** The part of the standard WebSocket API the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string, ...rest: never[]) => WebSocketLike;

export interface WatchOptions {
  /** Start after this cursor (an event's `cursor`); without one the watch is live from now. */
  cursor?: string | undefined;
  /** Aborting it ends the watch (the iterator finishes). */
  signal?: AbortSignal | undefined;
  /**
   * Deliver events to this callback, in order, instead of queueing them for
   * the iterator (then do not iterate).
   */
  onEvent?: ((event: StreamEventMessage) => void) | undefined;
  /**
   * A filter of workflow transitions (`workflows`, `workflowId`,
   * `workflowName`) gets `workflow` messages instead of job events: they go
   * here, in order, and a reconnect resumes after the last one (the iterator
   * then yields nothing).
   */
  onWorkflow?: ((message: StreamWorkflowMessage) => void) | undefined;
  /** Ask for job counts every `statsEveryMs` (whole ms, 250 to 3,600,000; 0 stops them) and receive them here. */
  statsEveryMs?: number | undefined;
  onStats?: ((stats: StreamStatsMessage) => void) | undefined;
  /** The advisor's anomalies of the types and queues the filter wants, live (docs/advisor.md). */
  onInsight?: ((insight: StreamInsightMessage) => void) | undefined;
  /**
   * The progress running jobs report (`ctx.progress`), live, for the jobs the
   * filter wants (a filter on `states` must name `running`). The latest value
   * of a job, at most about one message per poll of the server; never
   * replayed after a reconnect (`get` reads the latest).
   */
  onProgress?: ((progress: StreamProgressMessage) => void) | undefined;
  /** `subscribed` each time a connection holds, `disconnected` when one drops (a reconnect follows). */
  onConnection?: ((state: 'subscribed' | 'disconnected') => void) | undefined;
  /** Reconnects and the server's `error` messages, as text. */
  onNotice?: ((message: string) => void) | undefined;
  /** Reconnect pause, doubling from min to max; each finite, above 0. @defaultValue { minMs: 250, maxMs: 5000 } */
  reconnect?: { minMs: number; maxMs: number } | undefined;
  /**
   * Keep trying when the first connection fails too (else `ready` rejects and
   * the iterator throws). @defaultValue false
   */
  retryFirstConnect?: boolean | undefined;
  /** Ping period (finite, above 0); a connection silent for a whole period is dropped and resumed. @defaultValue 15000 */
  keepAliveMs?: number | undefined;
  /** How long a connection may take to be subscribed (finite, above 0). @defaultValue 10000 */
  connectTimeoutMs?: number | undefined;
  /**
   * Most events waiting in the iterator: at this many the watch closes its
   * connection and, once they are read, resubscribes from the last one read
   * (nothing missed or repeated). Finite, above 0. @defaultValue 10000
   */
  maxQueued?: number | undefined;
}

/** A running watch: iterate it for events; `close()` (or `break`) ends it. */
export interface Watch extends AsyncIterableIterator<StreamEventMessage> {
  /**
   * Resolves with the start cursor once first subscribed; rejects (unless
   * `retryFirstConnect`) with StreamUnavailableError, UnreachableError, or the
   * ApiError of a refused subscribe. Closed before it was subscribed, it
   * rejects with the signal's reason (closed by `signal`) or an `AbortError`.
   */
  readonly ready: Promise<string>;
  /**
   * Where a new watch would resume: the cursor of the last event handed out
   * (read from the iterator, or given to `onEvent`), else the start.
   */
  cursor(): string | undefined;
  close(): void;
}

export interface StreamDeps {
  baseUrl: string;
  /** Sent on the upgrade request when the socket is `ws` (browsers cannot set headers). */
  headers: Record<string, string>;
  webSocket: () => Promise<WebSocketConstructor>;
  /**
   * Whether the server takes the key, asked over REST when a socket failed
   * before it opened without telling why (a standard WebSocket cannot show
   * the upgrade's HTTP status): the server's 401 or 403 error if it refuses
   * the key, else null (another answer, or none).
   */
  keyRefusal?: () => Promise<ApiError | null>;
}

/**
 * A browser's WebSocket cannot send an Authorization header: the key goes as
 * the subprotocol `ats.key.<key>` beside `ats.v1` (the one the server picks,
 * so the key is never echoed back). Without a key, none.
 */
export function browserProtocols(headers: Record<string, string>): string[] {
  const m = /^Bearer (\S+)$/.exec(headers.authorization ?? '');
  return m ? ['ats.v1', `ats.key.${m[1]}`] : [];
}

/** `http://h:p/base` → `ws://h:p/base/v1/stream`. */
export const streamUrl = (baseUrl: string): string => baseUrl.replace(/^http/, 'ws').replace(/\/+$/, '') + '/v1/stream';

/** The WebSocket to use: the given one, else the global one, else the `ws` package. */
export async function resolveWebSocket(given?: WebSocketConstructor): Promise<WebSocketConstructor> {
  if (given) return given;
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) return global;
  // A variable, so a browser bundle does not try to include it.
  const name = 'ws';
  const mod = (await import(name)) as { default?: WebSocketConstructor; WebSocket?: WebSocketConstructor };
  const ctor = mod.WebSocket ?? mod.default;
  if (!ctor) throw new Error('no WebSocket: pass the WebSocket option or install the ws package');
  return ctor;
}

/** `unexplained`: the socket failed before it opened and could not say why (a refused key looks the same as a lost network). */
type Outcome = { kind: 'subscribed' } | { kind: 'failed'; error: Error; fatal: boolean; unexplained?: boolean };

/** A connection in progress or subscribed: `stop()` ends it, its timers and its pending connect. */
interface Connection {
  stop(): void;
}

const OPEN = 1;

/** The most of a refused upgrade's body read for its error. */
const MAX_ANSWER_CHARS = 64 * 1024;

/** The HTTP answer `ws` hands over when the server refuses the upgrade. */
interface UpgradeAnswer {
  statusCode?: number;
  headers: Record<string, string | string[] | undefined>;
  setEncoding(encoding: 'utf8'): void;
  on(event: 'data', f: (chunk: string) => void): void;
  once(event: 'end' | 'error' | 'close', f: () => void): void;
}

export function watch(deps: StreamDeps, filter: StreamFilter, opts: WatchOptions = {}): Watch {
  return new ResumingWatch(deps, filter, opts);
}

/** The close code of a stream whose key no longer works (revoked, or keys became required): docs/stream.md. */
export const KEY_REFUSED_CLOSE = 4401;

/** The default reconnect pauses (`reconnect`). */
export const RECONNECT_MS: Readonly<{ minMs: number; maxMs: number }> = { minMs: 250, maxMs: 5000 };

/** What a close with KEY_REFUSED_CLOSE ends the watch with. */
const keyRefused = (reason: string): ApiError => new ApiError(401, 'ATS_ERR_UNAUTHORIZED', reason || 'the API key no longer works');

/** What `ready` rejects with when the watch is closed before it was first subscribed (unless closed by its signal). */
function closedBeforeSubscribed(): Error {
  const e = new Error('the watch was closed before it was subscribed');
  e.name = 'AbortError';
  return e;
}

class ResumingWatch implements Watch {
  readonly ready: Promise<string>;
  private settleReady: { resolve(cursor: string): void; reject(e: unknown): void } | null = null;
  /** Has a connection ever been subscribed? From then on every failure is retried but a refused key or cursor. */
  private subscribedOnce = false;
  /** The cursor of the last event received (or of the subscription): where the next connection resumes. */
  private received: string | undefined;
  /** The cursor of the last event handed out (or of the subscription, with nothing queued): `cursor()`. */
  private handed: string | undefined;
  private closed = false;
  /** The queue reached `maxQueued`: no connection until the reader has drained it. */
  private paused = false;
  /**
   * Reconnects in a row that did not hold: the next pause doubles with each.
   * A subscription confirmed and then dropped at once (a replay whose read
   * fails: 1011) counts as one; one that got a transition, or stayed up for
   * `reconnect.maxMs`, ends the run.
   */
  private failures = 0;
  private conn: Connection | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly queue: StreamEventMessage[] = [];
  private readonly maxQueued: number;
  private waiting: { resolve(r: IteratorResult<StreamEventMessage>): void; reject(e: unknown): void } | null = null;
  private error: unknown = null;
  private detachSignal: () => void = () => undefined;

  constructor(private readonly deps: StreamDeps, private readonly filter: StreamFilter, private readonly opts: WatchOptions) {
    this.received = this.handed = opts.cursor;
    this.maxQueued = Math.max(1, opts.maxQueued ?? 10_000);
    this.ready = new Promise<string>((resolve, reject) => (this.settleReady = { resolve, reject }));
    this.ready.catch(() => undefined); // a rejection nobody awaited must not crash the process
    const signal = opts.signal;
    if (signal?.aborted) {
      this.close(signal.reason);
      return;
    }
    if (signal) {
      const onAbort = () => this.close(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      this.detachSignal = () => signal.removeEventListener('abort', onAbort);
    }
    this.open();
  }

  cursor(): string | undefined {
    return this.handed;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<StreamEventMessage>> {
    if (this.queue.length) return Promise.resolve({ value: this.take(), done: false });
    if (this.error) return Promise.reject(this.error);
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  async return(): Promise<IteratorResult<StreamEventMessage>> {
    this.close();
    return { value: undefined, done: true };
  }

  close(reason?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.detachSignal();
    clearTimeout(this.timer);
    this.conn?.stop();
    this.conn = null;
    this.resolveReady(null, reason ?? closedBeforeSubscribed());
    this.wake();
  }

  /** The next queued event, handed out: its cursor is now `cursor()`. A drained queue ends a pause. */
  private take(): StreamEventMessage {
    const e = this.queue.shift()!;
    this.handed = e.cursor;
    if (this.paused && this.queue.length === 0 && !this.closed) {
      this.paused = false;
      this.failures = 0;
      this.open();
    }
    return e;
  }

  private wake(): void {
    const w = this.waiting;
    if (!w) return;
    if (this.queue.length) {
      this.waiting = null;
      w.resolve({ value: this.take(), done: false });
    } else if (this.error) {
      this.waiting = null;
      w.reject(this.error);
    } else if (this.closed) {
      this.waiting = null;
      w.resolve({ value: undefined, done: true });
    }
  }

  private resolveReady(cursor: string | null, error?: unknown): void {
    const s = this.settleReady;
    if (!s) return;
    this.settleReady = null;
    if (cursor !== null) s.resolve(cursor);
    else s.reject(error);
  }

  /** Ends the watch with an error the iterator throws (and `ready` rejects with, if still pending). */
  private fail(error: unknown): void {
    if (this.closed) return;
    this.error = error;
    this.close(error);
  }

  /** Starts a connection and acts on how it went. */
  private open(): void {
    void this.connect().then((o) => this.settled(o));
  }

  private settled(o: Outcome): void {
    if (this.closed) return;
    if (o.kind === 'subscribed') {
      this.subscribedOnce = true;
      this.resolveReady(this.received ?? '');
      return;
    }
    if (!o.fatal && o.unexplained && this.deps.keyRefusal) {
      // The key may have been revoked while the watch was away: ask, or it would be retried forever.
      void this.deps.keyRefusal().then(
        (refusal) => (refusal ? this.fail(refusal) : this.retryOrFail(o)),
        () => this.retryOrFail(o),
      );
      return;
    }
    this.retryOrFail(o);
  }

  private retryOrFail(o: Extract<Outcome, { kind: 'failed' }>): void {
    if (this.closed) return;
    // A refused key is refused again on every retry: 401 and 403 end the watch.
    const refused = o.error instanceof ApiError && (o.error.status === 401 || o.error.status === 403);
    if (o.fatal || refused || (!this.subscribedOnce && !this.opts.retryFirstConnect)) return this.fail(o.error);
    const why = o.error instanceof ApiError && o.error.status ? `${o.error.code}: ${o.error.message}` : o.error.message;
    this.opts.onNotice?.(this.subscribedOnce ? `stream: reconnect failed (${why}); retrying` : `stream: cannot subscribe (${why}); retrying`);
    this.scheduleReconnect();
  }

  /** One connection: resolves when subscribed, or when it failed (or was stopped) before that. */
  private async connect(): Promise<Outcome> {
    let Ctor: WebSocketConstructor;
    try {
      Ctor = await this.deps.webSocket();
    } catch (error) {
      return { kind: 'failed', error: error as Error, fatal: true };
    }
    if (this.closed) return { kind: 'failed', error: closedBeforeSubscribed(), fatal: true };
    const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
    const url = streamUrl(this.deps.baseUrl);
    const isWs = typeof (Ctor.prototype as { terminate?: unknown }).terminate === 'function';
    // A key no header can carry: named, as a REST call names it, not "cannot reach the server".
    const unsendable = unsendableHeader(this.deps.headers);
    if (unsendable) return { kind: 'failed', error: unsendable, fatal: true };
    let ws: WebSocketLike;
    try {
      ws = isWs
        ? new (Ctor as unknown as new (u: string, o: object) => WebSocketLike)(url, { headers: this.deps.headers, handshakeTimeout: timerMs(timeoutMs) })
        : new (Ctor as unknown as new (u: string, p: string[]) => WebSocketLike)(url, browserProtocols(this.deps.headers));
    } catch (error) {
      // The socket cannot be made at all (a URL without a scheme, a page on https opening ws:): every try
      // would throw the same.
      return { kind: 'failed', error: new UnreachableError(this.deps.baseUrl, (error as Error)?.message ?? String(error), { cause: error }), fatal: true };
    }
    return new Promise((resolve) => {
      const conn = {
        opened: false, settled: false, subscribed: false, subscribedAt: 0, ended: false, status: 0, answer: null as ApiError | null, error: null as unknown, heard: true,
      };
      const settle = (o: Outcome) => {
        if (conn.settled) return;
        conn.settled = true;
        clearTimeout(deadline);
        resolve(o);
      };
      /** Stops this connection's timers; it is no longer the watch's. */
      const end = () => {
        conn.ended = true;
        clearInterval(keepAlive);
        clearTimeout(deadline);
        if (this.conn === handle) this.conn = null;
      };
      const handle: Connection = {
        stop: () => {
          abandon(ws, 1000);
          end();
          settle({ kind: 'failed', error: closedBeforeSubscribed(), fatal: true });
        },
      };
      this.conn = handle;
      // The upgrade and the subscribe confirmation, together, within timeoutMs.
      const deadline = setTimeout(() => {
        // A server that does not answer in time is not one without a stream: told as unreachable (timed out), not to be polled instead.
        conn.error ??= Object.assign(new Error(`no answer within ${timeoutMs} ms`), { name: 'TimeoutError' });
        drop(1006, 'not subscribed in time');
      }, timerMs(timeoutMs));
      const keepAlive = setInterval(() => {
        if (ws.readyState !== OPEN) return;
        if (!conn.heard) return drop(1006, 'no answer to a ping');
        conn.heard = false;
        ws.send(JSON.stringify({ op: 'ping' }));
      }, timerMs(this.opts.keepAliveMs ?? 15_000));
      (keepAlive as { unref?(): void }).unref?.();

      const onClosed = (code: number, reason: string) => {
        if (conn.ended) return;
        end();
        // A key refused before the subscription held (checked while it was being confirmed) is refused as after.
        if (!conn.settled && code === KEY_REFUSED_CLOSE) return settle({ kind: 'failed', error: keyRefused(reason), fatal: true });
        if (!conn.settled) {
          return settle({ kind: 'failed', error: this.failure(conn.status, conn.answer, conn.error, code), fatal: false, unexplained: !isWs && !conn.status && !conn.opened });
        }
        if (conn.subscribed) {
          // Up for as long as the longest pause: it held, and the next drop's pause starts from minMs again.
          if (Date.now() - conn.subscribedAt >= this.reconnectPauses().maxMs) this.failures = 0;
          this.onDropped(code, reason);
        }
      };
      /** Give up on this socket now (no close handshake to wait for). */
      const drop = (code: number, reason: string) => {
        abandon(ws, 4001);
        onClosed(code, reason);
      };
      if (isWs) {
        (ws as unknown as { on(e: string, f: (...a: never[]) => void): void }).on(
          'unexpected-response',
          (_req: unknown, res: UpgradeAnswer) => {
            conn.status = res.statusCode ?? 0;
            // The answer's body names the error (401 ATS_ERR_UNAUTHORIZED, 429 ATS_ERR_TOO_MANY_STREAMS, ...).
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              if (body.length < MAX_ANSWER_CHARS) body += chunk;
            });
            const done = () => {
              const retryAfter = res.headers['retry-after'];
              conn.answer = toApiError(conn.status, body, null, typeof retryAfter === 'string' ? retryAfter : null);
              drop(1006, `HTTP ${conn.status}`);
            };
            res.once('end', done);
            res.once('error', done);
            res.once('close', done);
          },
        );
      }
      ws.onerror = (ev) => {
        conn.error = (ev as { error?: unknown }).error ?? ev;
      };
      ws.onopen = () => {
        conn.opened = true;
        ws.send(JSON.stringify({ op: 'subscribe', filter: this.filter, ...(this.received ? { cursor: this.received } : {}) }));
      };
      ws.onclose = (ev) => onClosed(ev.code, ev.reason);
      ws.onmessage = (ev) => {
        if (conn.ended) return;
        conn.heard = true;
        let msg: { kind?: string; cursor?: unknown; code?: string; message?: string };
        try {
          msg = JSON.parse(String(ev.data)) as typeof msg;
        } catch {
          this.opts.onNotice?.('stream: ignored a message that is not JSON');
          return;
        }
        if (msg.kind === 'event' && typeof msg.cursor === 'string') {
          this.failures = 0;
          this.received = msg.cursor;
          this.deliver(msg as StreamEventMessage);
        } else if (msg.kind === 'workflow' && typeof msg.cursor === 'string') {
          if (this.closed) return;
          this.failures = 0;
          this.received = msg.cursor;
          if (this.queue.length === 0) this.handed = msg.cursor;
          this.opts.onWorkflow?.(msg as StreamWorkflowMessage);
        } else if (msg.kind === 'subscribed' && typeof msg.cursor === 'string') {
          if (conn.subscribed) return;
          conn.subscribed = true;
          conn.subscribedAt = Date.now();
          this.received = msg.cursor;
          if (this.queue.length === 0) this.handed = msg.cursor;
          if (this.opts.statsEveryMs !== undefined) ws.send(JSON.stringify({ op: 'stats', everyMs: this.opts.statsEveryMs }));
          this.opts.onConnection?.('subscribed');
          settle({ kind: 'subscribed' });
        } else if (msg.kind === 'stats') {
          this.opts.onStats?.(msg as StreamStatsMessage);
        } else if (msg.kind === 'insight') {
          this.opts.onInsight?.(msg as StreamInsightMessage);
        } else if (msg.kind === 'progress') {
          if (!this.closed) this.opts.onProgress?.(msg as StreamProgressMessage);
        } else if (msg.kind === 'error') {
          const code = (msg.code ?? 'ATS_ERR_VALIDATION') as ApiError['code'];
          const error = new ApiError(code === 'ATS_ERR_STORE_UNAVAILABLE' ? 503 : 400, code, msg.message ?? 'stream error');
          if (conn.subscribed) return this.opts.onNotice?.(`stream: ${error.code}: ${error.message}`);
          // Before the subscription holds, an error is the subscribe refused. Once the watch has been
          // subscribed it is tried again (the server said so for a cursor it could not check, and a watch
          // keeps going for as long as it runs); before that only a store that is unavailable is. A cursor
          // refused (beyond every event the server issued: its database reset, or restored from an older
          // backup) is refused again on every try: it ends the watch, resumed or not.
          abandon(ws, 1000);
          end();
          const badCursor = code === 'ATS_ERR_BAD_CURSOR';
          const ending = badCursor && this.subscribedOnce
            ? new ApiError(error.status, code, `${error.message}: the watch cannot resume from its last cursor (the server's events were reset or restored from an older backup?); start a new watch without a cursor`)
            : error;
          settle({ kind: 'failed', error: ending, fatal: badCursor || (!this.subscribedOnce && code !== 'ATS_ERR_STORE_UNAVAILABLE') });
        }
      };
    });
  }

  private deliver(e: StreamEventMessage): void {
    if (this.closed) return;
    if (this.opts.onEvent) {
      this.handed = e.cursor;
      return this.opts.onEvent(e);
    }
    this.queue.push(e);
    this.wake();
    if (this.queue.length >= this.maxQueued && !this.paused) this.pause();
  }

  /**
   * The reader is `maxQueued` events behind: drop the connection rather than
   * buffer without bound (the server's own guard against slow consumers
   * would otherwise never apply). `take()` resumes from the last event once
   * the queue is drained.
   */
  private pause(): void {
    this.paused = true;
    clearTimeout(this.timer);
    this.conn?.stop();
    this.conn = null;
    this.opts.onConnection?.('disconnected');
    this.opts.onNotice?.(`stream: ${this.queue.length} events not read yet; paused until they are`);
  }

  private failure(status: number, answer: ApiError | null, error: unknown, code: number): Error {
    if (status === 404) return new StreamUnavailableError(status, `the server has no stream (HTTP ${status} on /v1/stream)`);
    // The server's answer to a GET of /v1/stream without its Upgrade: a proxy in front of it does not pass WebSocket
    // upgrades on (nginx without its WebSocket settings). No stream this way, as without the route; not a refused subscribe.
    if (status === 400 && answer?.code === 'ATS_ERR_VALIDATION') {
      return new StreamUnavailableError(status, `the stream's upgrade reached the server as a plain GET (HTTP 400 on /v1/stream: ${answer.message}): `
        + 'a proxy in front of it does not pass WebSocket upgrades on');
    }
    // The server's own error (a refused key, too many streams, not ready); a proxy's page says nothing more than its status.
    if (answer && !answer.code.startsWith('HTTP_')) return new StreamRefusedError(answer);
    if (status) return new StreamUnavailableError(status, `the stream's upgrade was refused (HTTP ${status} on /v1/stream)`);
    const reason = error ? networkReason(error) : '';
    if (reason && reason !== '[object Event]' && reason !== 'error') return new UnreachableError(this.deps.baseUrl, reason, { cause: error });
    return new StreamUnavailableError(0, `the stream closed before subscribing (close code ${code})`);
  }

  /** A subscribed connection ended: resume from the last cursor unless closed. */
  private onDropped(code: number, reason: string): void {
    if (this.closed || this.paused) return;
    // The key was revoked (or keys became required): connecting again with it cannot succeed.
    if (code === KEY_REFUSED_CLOSE) return this.fail(keyRefused(reason));
    this.opts.onConnection?.('disconnected');
    this.opts.onNotice?.(`stream: disconnected (${code}${reason ? ` ${reason}` : ''}); resuming from the last cursor`);
    this.scheduleReconnect();
  }

  private reconnectPauses(): { minMs: number; maxMs: number } {
    return this.opts.reconnect ?? RECONNECT_MS;
  }

  private scheduleReconnect(): void {
    const { minMs, maxMs } = this.reconnectPauses();
    const pause = Math.min(maxMs, minMs * 2 ** this.failures);
    this.failures++;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closed && !this.paused) this.open();
    }, timerMs(pause));
  }
}

/** Detach a socket's handlers and end it without waiting for the close handshake. */
function abandon(ws: WebSocketLike, code: number): void {
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  // ws reports an aborted handshake as an 'error' event: without a listener that would throw.
  (ws as { on?(event: string, f: () => void): void }).on?.('error', () => undefined);
  const terminate = (ws as { terminate?(): void }).terminate;
  try {
    if (typeof terminate === 'function') terminate.call(ws);
    else ws.close(code === 1000 ? 1000 : 4001);
  } catch {
    // Already closing.
  }
}
