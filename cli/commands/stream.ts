/**
 * The client side of the WebSocket stream (`GET /v1/stream`, protocol v1 in
 * README.md, "The stream"): subscribe with a filter, receive transitions, and on any
 * disconnect (slow consumer 4000, server going away 1001, network) reconnect
 * and subscribe again from the last cursor received — no gap, no duplicate.
 *
 * The first connection decides whether a stream exists at all: a 404 (or any
 * refused upgrade) rejects `ready` with `StreamUnavailable`, and the caller
 * falls back to polling the REST API.
 */
import WebSocket from 'ws';
import { ApiError, networkReason, UnreachableError } from '../client.js';
import type { StreamEventMessage } from '../../server/stream/protocol.js';

export interface StreamFilter {
  jobId?: string;
  type?: string;
  queue?: string;
  states?: string[];
}

/** One transition as the stream sends it. */
export type StreamEvent = StreamEventMessage;

/** The server has no stream route (or refused the upgrade): poll instead. */
export class StreamUnavailable extends Error {
  constructor(readonly status: number | null, message: string) {
    super(message);
    this.name = 'StreamUnavailable';
  }
}

export interface SubscribeOptions {
  /** The server, e.g. `http://localhost:3000`. */
  baseUrl: string;
  filter: StreamFilter;
  /** Resume after this cursor; without one the subscription is live from now. */
  cursor?: string;
  onEvent(event: StreamEvent): void;
  /** Reconnects and server `error` messages, for a line on stderr. */
  onNotice?(message: string): void;
  /** Reconnect delay, doubling from min to max. @defaultValue { minMs: 250, maxMs: 5000 } */
  retry?: { minMs: number; maxMs: number };
  /** Ping period; a ping unanswered by the next one drops the connection. @defaultValue 15000 */
  keepAliveMs?: number;
  /** How long a connection may take to be subscribed. @defaultValue 10000 */
  connectTimeoutMs?: number;
}

export interface Subscription {
  /** Resolves with the start cursor once first subscribed; rejects with StreamUnavailable, UnreachableError or ApiError. */
  readonly ready: Promise<string>;
  /** Where a new subscription would resume (the last event's cursor, or the start). */
  cursor(): string | undefined;
  close(): void;
}

/** `http://h:p/base` → `ws://h:p/base/v1/stream`. */
export function streamUrl(baseUrl: string): string {
  return baseUrl.replace(/^http/, 'ws').replace(/\/+$/, '') + '/v1/stream';
}

/** Subscribe and keep the subscription alive until `close()`. */
export function subscribe(opts: SubscribeOptions): Subscription {
  const sub = new ResumingSubscription(opts);
  return { ready: sub.ready, cursor: () => sub.lastCursor, close: () => sub.close() };
}

type Outcome = { kind: 'subscribed'; cursor: string } | { kind: 'failed'; error: Error };

class ResumingSubscription {
  lastCursor: string | undefined;
  readonly ready: Promise<string>;
  private socket: WebSocket | null = null;
  private closed = false;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: SubscribeOptions) {
    this.lastCursor = opts.cursor;
    this.ready = this.connect().then((o) => {
      if (o.kind === 'failed') throw o.error;
      return o.cursor;
    });
    // A rejected `ready` the caller never awaited must not crash the process.
    this.ready.catch(() => undefined);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.socket?.terminate();
  }

  /** One connection: resolves when subscribed or when it failed before that. */
  private connect(): Promise<Outcome> {
    return new Promise((resolve) => {
      const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
      const ws = new WebSocket(streamUrl(this.opts.baseUrl), { handshakeTimeout: timeoutMs });
      this.socket = ws;
      // handshakeTimeout covers the upgrade only: a server that never confirms the subscribe counts as no stream.
      const deadline = setTimeout(() => ws.terminate(), timeoutMs);
      // Per connection: `settled` once subscribed or failed; a failed one is never resumed.
      const conn = { settled: false, failed: false, status: null as number | null, error: null as Error | null };
      const settle = (o: Outcome) => {
        if (conn.settled) return;
        conn.settled = true;
        conn.failed = o.kind === 'failed';
        clearTimeout(deadline);
        resolve(o);
      };
      const keepAlive = this.keepAlive(ws);
      ws.on('unexpected-response', (_req, res) => {
        conn.status = res.statusCode ?? null;
        res.resume();
        ws.terminate();
      });
      ws.on('error', (e) => (conn.error = e));
      ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', filter: this.opts.filter, ...(this.lastCursor ? { cursor: this.lastCursor } : {}) })));
      ws.on('message', (raw) => {
        const refused = this.onMessage(String(raw), conn.settled, settle);
        if (refused) ws.close(1000);
      });
      ws.on('close', (code, reason) => {
        clearInterval(keepAlive);
        clearTimeout(deadline);
        if (!conn.settled) settle({ kind: 'failed', error: this.failure(conn.status, conn.error, code) });
        else if (!conn.failed) this.onDropped(code, String(reason));
      });
    });
  }

  /** Handles one server message; true when it refused our subscription (close this connection). */
  private onMessage(raw: string, subscribed: boolean, settle: (o: Outcome) => void): boolean {
    let msg: { kind?: string; cursor?: string; code?: string; message?: string };
    try {
      msg = JSON.parse(raw);
    } catch {
      this.opts.onNotice?.('stream: ignored a message that is not JSON');
      return false;
    }
    if (msg.kind === 'subscribed' && typeof msg.cursor === 'string') {
      this.lastCursor = msg.cursor;
      this.failures = 0;
      settle({ kind: 'subscribed', cursor: msg.cursor });
    } else if (msg.kind === 'event' && typeof msg.cursor === 'string') {
      this.lastCursor = msg.cursor;
      this.opts.onEvent(msg as StreamEvent);
    } else if (msg.kind === 'error') {
      const error = new ApiError(400, msg.code ?? 'ATS_ERR_STREAM', msg.message ?? 'stream error');
      if (!subscribed) {
        // Before the subscription holds, an error means the subscribe itself was refused.
        settle({ kind: 'failed', error });
        return true;
      }
      this.opts.onNotice?.(`stream: ${error.code}: ${error.message}`);
    }
    return false;
  }

  private failure(status: number | null, lastError: Error | null, code: number): Error {
    if (status !== null) return new StreamUnavailable(status, `the server has no stream (HTTP ${status} on /v1/stream)`);
    if (lastError) return new UnreachableError(this.opts.baseUrl, networkReason(lastError), { cause: lastError });
    return new StreamUnavailable(null, `the stream closed before subscribing (close code ${code})`);
  }

  /** A subscribed connection ended: reconnect from the last cursor unless we closed it. */
  private onDropped(code: number, reason: string): void {
    if (this.closed) return;
    this.opts.onNotice?.(`stream: disconnected (${code}${reason ? ` ${reason}` : ''}); resuming from the last cursor`);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const { minMs, maxMs } = this.opts.retry ?? { minMs: 250, maxMs: 5000 };
    const delay = Math.min(maxMs, minMs * 2 ** this.failures);
    this.failures++;
    this.timer = setTimeout(() => {
      if (this.closed) return;
      void this.connect().then((o) => {
        if (o.kind === 'subscribed' || this.closed) return;
        this.opts.onNotice?.(`stream: reconnect failed (${o.error.message}); retrying`);
        this.scheduleReconnect();
      });
    }, delay);
  }

  /** Ping now and then; no pong since the last ping means a dead connection. */
  private keepAlive(ws: WebSocket): NodeJS.Timeout {
    let answered = true;
    ws.on('pong', () => (answered = true));
    const timer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (!answered) return ws.terminate();
      answered = false;
      ws.ping();
    }, this.opts.keepAliveMs ?? 15_000);
    timer.unref();
    return timer;
  }
}
