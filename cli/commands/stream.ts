/**
 * The commands' side of the WebSocket stream: the client's `watch()` (which
 * resumes from the last cursor after any disconnect — no gap, no duplicate)
 * on the command's client — its URL, its API key and the `ws` package — with
 * callbacks, and one distinction the commands need: a server without the
 * stream (`StreamUnavailable`, the caller falls back to polling the REST API)
 * versus an error, such as an upgrade refused for its key (401, 403) or for
 * too many requests or streams (429).
 */
import WebSocket from 'ws';
import {
  ApiError, StreamRefusedError, StreamUnavailableError, type ApiErrorCode, type AtsClient, type StreamEventMessage, type StreamFilter, type StreamProgressMessage,
  type WebSocketConstructor,
} from '../../client/index.js';
import { oneLine } from './output.js';

/** A filter as given on the command line: states are checked by the server. */
export type CommandFilter = Omit<StreamFilter, 'states'> & { states?: readonly string[] };

/** One transition as the stream sends it. */
export type StreamEvent = StreamEventMessage;

/** The server has no stream route, or its stream cannot be had this way (the upgrade refused, or reaching it as a plain GET through a proxy; the socket closed before subscribing): poll instead. */
export class StreamUnavailable extends Error {
  constructor(readonly status: number | null, message: string) {
    super(message);
    this.name = 'StreamUnavailable';
  }
}

export interface SubscribeOptions {
  /**
   * The server, and the API key sent on the upgrade. The commands' client is
   * made with `NodeWebSocket` (run.ts), which tells a refused upgrade's status.
   */
  client: AtsClient;
  filter: CommandFilter;
  /** Resume after this cursor; without one the subscription is live from now. */
  cursor?: string | undefined;
  onEvent(event: StreamEvent): void;
  /** The progress running jobs of the filter report, live (never replayed). */
  onProgress?: ((progress: StreamProgressMessage) => void) | undefined;
  /** Reconnects and server `error` messages, for a line on stderr. */
  onNotice?: ((message: string) => void) | undefined;
  /** Reconnect delay, doubling from min to max. @defaultValue { minMs: 250, maxMs: 5000 } */
  retry?: { minMs: number; maxMs: number };
  /** Ping period; a connection silent for a whole period is dropped and resumed. @defaultValue 15000 */
  keepAliveMs?: number;
  /** How long a connection may take to be subscribed. @defaultValue 10000 */
  connectTimeoutMs?: number;
}

export interface Subscription {
  /** Resolves with the start cursor once first subscribed; rejects with StreamUnavailable, UnreachableError or ApiError. */
  readonly ready: Promise<string>;
  /** Where a new subscription would resume (the last event's cursor, or the start). */
  cursor(): string | undefined;
  /**
   * Settles when the subscription ends by itself after `ready`: with the error
   * that ended it (its key refused: a close with 4401, or a reconnect answered
   * 401 or 403; its cursor refused on a reconnect: ATS_ERR_BAD_CURSOR), or null once closed.
   */
  readonly ended: Promise<unknown>;
  close(): void;
}

/** ws, typed as the standard API the client takes (ws also reports a refused upgrade's HTTP status). */
export const NodeWebSocket = WebSocket as unknown as WebSocketConstructor;

/**
 * Upgrade statuses that say the server has a stream but will not give it to
 * this caller (now): the error they are, never a reason to poll instead. The
 * message says what each status can mean and what to do, whatever the
 * refusal's body said (a proxy's page has none of the server's codes).
 */
const REFUSALS = new Map<number, { code: ApiErrorCode; why: string }>([
  [401, { code: 'ATS_ERR_UNAUTHORIZED', why: 'the server refused the stream without a valid API key: set ATS_API_KEY to one' }],
  [403, { code: 'ATS_ERR_FORBIDDEN', why: 'the server refused the stream to this API key' }],
  [429, { code: 'ATS_ERR_RATE_LIMITED', why: 'the server refused the stream: too many requests, or too many streams open, for this API key; try again later' }],
  [503, { code: 'HTTP_503', why: 'the server cannot serve the stream now (its database unavailable, or shutting down)' }],
]);

/** A failed first subscribe as the commands tell it apart: StreamUnavailable (poll instead), or the error it is. */
export function subscribeFailure(err: unknown): unknown {
  if (!(err instanceof StreamUnavailableError || err instanceof StreamRefusedError)) return err;
  const refusal = REFUSALS.get(err.status);
  if (refusal) {
    // A 429's Retry-After stays: what waits it out (`--wait`, `--count`) waits that long.
    const retryAfter = err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : undefined;
    return new ApiError(err.status, refusal.code, `${refusal.why} (HTTP ${err.status} on /v1/stream)`, retryAfter);
  }
  // Refused with another error of the server's: that error, not a reason to poll.
  if (err instanceof StreamRefusedError) return err;
  return new StreamUnavailable(err.status || null, err.message);
}

/** Subscribe and keep the subscription alive until `close()`. */
export function subscribe(opts: SubscribeOptions): Subscription {
  const watch = opts.client.watch(opts.filter as StreamFilter, {
    cursor: opts.cursor, onEvent: opts.onEvent, onProgress: opts.onProgress, reconnect: opts.retry,
    // A notice may quote the server (a close's reason, an error's message): one line, its controls escaped.
    onNotice: opts.onNotice && ((m: string) => opts.onNotice!(oneLine(m))),
    keepAliveMs: opts.keepAliveMs, connectTimeoutMs: opts.connectTimeoutMs,
  });
  const ready = watch.ready.catch((err: unknown) => {
    throw subscribeFailure(err);
  });
  ready.catch(() => undefined); // a rejection the caller never awaited must not crash the process
  // `onEvent` takes every event, so the iterator yields none: it settles only when the watch ends.
  const ended = ready.then(() => watch.next()).then(() => null, (err: unknown) => err);
  return { ready, cursor: () => watch.cursor(), ended, close: () => watch.close() };
}
