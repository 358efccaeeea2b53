/**
 * `watch()`: the WebSocket stream (`GET /v1/stream`, protocol v1) as an async
 * iterator of transitions that survives disconnects. Each connection
 * subscribes with the filter and the cursor of the last event received, so a
 * drop (slow consumer 4000, server restart 1001, network) costs no event and
 * repeats none: the server replays exactly what came after the cursor.
 *
 * Runs on any WebSocket with the standard API: the browser's, Node 22's, or
 * the `ws` package (loaded on demand when there is no global one), which also
 * tells the HTTP status of a refused upgrade.
 */
import { ApiError, networkReason, StreamUnavailableError, UnreachableError } from './errors.js';
import type { StreamEventMessage, StreamFilter, StreamStatsMessage } from './types.js';

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
  /** Ask for job counts every `statsEveryMs` (≥ 250) and receive them here. */
  statsEveryMs?: number | undefined;
  onStats?: ((stats: StreamStatsMessage) => void) | undefined;
  /** `subscribed` each time a connection holds, `disconnected` when one drops (a reconnect follows). */
  onConnection?: ((state: 'subscribed' | 'disconnected') => void) | undefined;
  /** Reconnects and the server's `error` messages, as text. */
  onNotice?: ((message: string) => void) | undefined;
  /** Reconnect pause, doubling from min to max. @defaultValue { minMs: 250, maxMs: 5000 } */
  reconnect?: { minMs: number; maxMs: number } | undefined;
  /**
   * Keep trying when the first connection fails too (else `ready` rejects and
   * the iterator throws). @defaultValue false
   */
  retryFirstConnect?: boolean | undefined;
  /** Ping period; a connection silent for a whole period is dropped and resumed. @defaultValue 15000 */
  keepAliveMs?: number | undefined;
  /** How long a connection may take to be subscribed. @defaultValue 10000 */
  connectTimeoutMs?: number | undefined;
}

/** A running watch: iterate it for events; `close()` (or `break`) ends it. */
export interface Watch extends AsyncIterableIterator<StreamEventMessage> {
  /**
   * Resolves with the start cursor once first subscribed; rejects (unless
   * `retryFirstConnect`) with StreamUnavailableError, UnreachableError, or the
   * ApiError of a refused subscribe.
   */
  readonly ready: Promise<string>;
  /** Where a new watch would resume: the last event's cursor (or the start). */
  cursor(): string | undefined;
  close(): void;
}

export interface StreamDeps {
  baseUrl: string;
  /** Sent on the upgrade request when the socket is `ws` (browsers cannot set headers). */
  headers: Record<string, string>;
  webSocket: () => Promise<WebSocketConstructor>;
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

type Outcome = { kind: 'subscribed' } | { kind: 'failed'; error: Error; fatal: boolean };

const OPEN = 1;

export function watch(deps: StreamDeps, filter: StreamFilter, opts: WatchOptions = {}): Watch {
  return new ResumingWatch(deps, filter, opts);
}

class ResumingWatch implements Watch {
  readonly ready: Promise<string>;
  private lastCursor: string | undefined;
  private closed = false;
  private failures = 0;
  private socket: WebSocketLike | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly queue: StreamEventMessage[] = [];
  private waiting: { resolve(r: IteratorResult<StreamEventMessage>): void; reject(e: unknown): void } | null = null;
  private error: unknown = null;

  constructor(private readonly deps: StreamDeps, private readonly filter: StreamFilter, private readonly opts: WatchOptions) {
    this.lastCursor = opts.cursor;
    this.ready = this.first();
    this.ready.catch(() => undefined); // a rejection nobody awaited must not crash the process
    if (opts.signal) {
      if (opts.signal.aborted) this.close();
      else opts.signal.addEventListener('abort', () => this.close(), { once: true });
    }
  }

  cursor(): string | undefined {
    return this.lastCursor;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<StreamEventMessage>> {
    const e = this.queue.shift();
    if (e) return Promise.resolve({ value: e, done: false });
    if (this.error) return Promise.reject(this.error);
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  async return(): Promise<IteratorResult<StreamEventMessage>> {
    this.close();
    return { value: undefined, done: true };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    if (socket) abandon(socket, 1000);
    this.wake();
  }

  private wake(): void {
    const w = this.waiting;
    if (!w) return;
    if (this.queue.length) {
      this.waiting = null;
      w.resolve({ value: this.queue.shift()!, done: false });
    } else if (this.error) {
      this.waiting = null;
      w.reject(this.error);
    } else if (this.closed) {
      this.waiting = null;
      w.resolve({ value: undefined, done: true });
    }
  }

  /** Ends the watch with an error the iterator throws. */
  private fail(error: unknown): void {
    if (!this.closed) this.error = error;
    this.close();
  }

  private async first(): Promise<string> {
    const o = await this.connect();
    if (o.kind === 'subscribed') return this.lastCursor ?? '';
    if (o.fatal || !this.opts.retryFirstConnect) {
      this.fail(o.error);
      throw o.error;
    }
    this.opts.onNotice?.(`stream: cannot subscribe (${o.error.message}); retrying`);
    return new Promise<string>((resolve, reject) => {
      this.onFirstSubscribed = resolve;
      this.onFatal = reject;
      this.scheduleReconnect();
    });
  }

  private onFirstSubscribed: ((cursor: string) => void) | null = null;
  private onFatal: ((e: unknown) => void) | null = null;

  /** One connection: resolves when subscribed, or when it failed before that. */
  private async connect(): Promise<Outcome> {
    let Ctor: WebSocketConstructor;
    try {
      Ctor = await this.deps.webSocket();
    } catch (error) {
      return { kind: 'failed', error: error as Error, fatal: true };
    }
    if (this.closed) return { kind: 'failed', error: new Error('closed'), fatal: true };
    return new Promise((resolve) => {
      const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
      const url = streamUrl(this.deps.baseUrl);
      const isWs = typeof (Ctor.prototype as { terminate?: unknown }).terminate === 'function';
      const ws = isWs
        ? new (Ctor as unknown as new (u: string, o: object) => WebSocketLike)(url, { headers: this.deps.headers, handshakeTimeout: timeoutMs })
        : new Ctor(url);
      this.socket = ws;
      const conn = { settled: false, subscribed: false, status: 0, error: null as unknown, heard: true };
      const settle = (o: Outcome) => {
        if (conn.settled) return;
        conn.settled = true;
        clearTimeout(deadline);
        resolve(o);
      };
      // The upgrade and the subscribe confirmation, together, within timeoutMs.
      const deadline = setTimeout(() => drop(1006, 'not subscribed in time'), timeoutMs);
      const keepAlive = setInterval(() => {
        if (ws.readyState !== OPEN) return;
        if (!conn.heard) return drop(1006, 'no answer to a ping');
        conn.heard = false;
        ws.send(JSON.stringify({ op: 'ping' }));
      }, this.opts.keepAliveMs ?? 15_000);
      (keepAlive as { unref?(): void }).unref?.();

      const onClosed = (code: number, reason: string) => {
        clearInterval(keepAlive);
        clearTimeout(deadline);
        if (this.socket === ws) this.socket = null;
        if (!conn.settled) return settle({ kind: 'failed', error: this.failure(conn.status, conn.error, code), fatal: false });
        if (conn.subscribed) this.onDropped(code, reason);
      };
      /** Give up on this socket now (no close handshake to wait for). */
      const drop = (code: number, reason: string) => {
        abandon(ws, 4001);
        onClosed(code, reason);
      };
      if (isWs) {
        (ws as unknown as { on(e: string, f: (...a: never[]) => void): void }).on(
          'unexpected-response',
          (_req: unknown, res: { statusCode?: number; resume(): void }) => {
            conn.status = res.statusCode ?? 0;
            res.resume();
            drop(1006, `HTTP ${conn.status}`);
          },
        );
      }
      ws.onerror = (ev) => {
        conn.error = (ev as { error?: unknown }).error ?? ev;
      };
      ws.onopen = () => {
        ws.send(JSON.stringify({ op: 'subscribe', filter: this.filter, ...(this.lastCursor ? { cursor: this.lastCursor } : {}) }));
      };
      ws.onclose = (ev) => onClosed(ev.code, ev.reason);
      ws.onmessage = (ev) => {
        conn.heard = true;
        let msg: { kind?: string; cursor?: unknown; code?: string; message?: string };
        try {
          msg = JSON.parse(String(ev.data)) as typeof msg;
        } catch {
          this.opts.onNotice?.('stream: ignored a message that is not JSON');
          return;
        }
        if (msg.kind === 'event' && typeof msg.cursor === 'string') {
          this.lastCursor = msg.cursor;
          this.deliver(msg as StreamEventMessage);
        } else if (msg.kind === 'subscribed' && typeof msg.cursor === 'string') {
          if (conn.subscribed) return;
          conn.subscribed = true;
          this.lastCursor = msg.cursor;
          this.failures = 0;
          if (this.opts.statsEveryMs !== undefined) ws.send(JSON.stringify({ op: 'stats', everyMs: this.opts.statsEveryMs }));
          this.opts.onConnection?.('subscribed');
          settle({ kind: 'subscribed' });
        } else if (msg.kind === 'stats') {
          this.opts.onStats?.(msg as StreamStatsMessage);
        } else if (msg.kind === 'error') {
          const error = new ApiError(400, (msg.code ?? 'ATS_ERR_VALIDATION') as ApiError['code'], msg.message ?? 'stream error');
          if (conn.subscribed) return this.opts.onNotice?.(`stream: ${error.code}: ${error.message}`);
          // Before the subscription holds, an error is the subscribe refused: not retried.
          abandon(ws, 1000);
          clearInterval(keepAlive);
          settle({ kind: 'failed', error, fatal: true });
        }
      };
    });
  }

  private deliver(e: StreamEventMessage): void {
    if (this.closed) return;
    if (this.opts.onEvent) return this.opts.onEvent(e);
    this.queue.push(e);
    this.wake();
  }

  private failure(status: number, error: unknown, code: number): Error {
    if (status) return new StreamUnavailableError(status, `the server has no stream (HTTP ${status} on /v1/stream)`);
    const reason = error ? networkReason(error) : '';
    if (reason && reason !== '[object Event]' && reason !== 'error') return new UnreachableError(this.deps.baseUrl, reason, { cause: error });
    return new StreamUnavailableError(0, `the stream closed before subscribing (close code ${code})`);
  }

  /** A subscribed connection ended: resume from the last cursor unless closed. */
  private onDropped(code: number, reason: string): void {
    if (this.closed) return;
    this.opts.onConnection?.('disconnected');
    this.opts.onNotice?.(`stream: disconnected (${code}${reason ? ` ${reason}` : ''}); resuming from the last cursor`);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const { minMs, maxMs } = this.opts.reconnect ?? { minMs: 250, maxMs: 5000 };
    const pause = Math.min(maxMs, minMs * 2 ** this.failures);
    this.failures++;
    this.timer = setTimeout(() => {
      if (this.closed) return;
      void this.connect().then((o) => {
        if (this.closed) return;
        if (o.kind === 'subscribed') {
          this.onFirstSubscribed?.(this.lastCursor ?? '');
          this.onFirstSubscribed = null;
          this.onFatal = null;
          return;
        }
        if (o.fatal) {
          this.onFatal?.(o.error);
          return this.fail(o.error);
        }
        this.opts.onNotice?.(`stream: reconnect failed (${o.error.message}); retrying`);
        this.scheduleReconnect();
      });
    }, pause);
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
