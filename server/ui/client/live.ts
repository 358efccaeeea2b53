/**
 * Keeps the page live. Prefers the WebSocket stream (`/v1/stream`, see
 * docs/stream.md, through the client's `watch()`): stats every
 * second, every transition as it happens, the advisor's anomalies
 * (`insight` messages) and running jobs' progress (`progress` messages),
 * neither of which polling gets. While the server says its database is
 * not reachable (the stream's `ATS_ERR_STORE_UNAVAILABLE` error messages in
 * place of the counts, or `GET /v1/stats` answering 503 with that code), the
 * counts shown are the last read and the page says so, until counts come
 * again. Whenever the stream is not
 * delivering (not deployed, not yet connected, dropped), it polls
 * `GET /v1/stats` every second instead while the watch keeps trying to
 * reconnect, backing off, so the counts never freeze. A poll answered 429
 * (the key's, or the address's, requests over the rate limit) is not a
 * server that stopped answering: the page says it is rate limited and reads
 * again once the server's `Retry-After` has passed (a poll's time at least; without one, after a
 * pause doubling from two polls up to the reconnect's longest), not every
 * second meanwhile, which would only extend the limit. When the server
 * refuses the page's API key (revoked, or keys now required: the stream
 * closes with 4401, `GET /v1/stats` answers 401), it stops and says so:
 * no request with that key can succeed.
 */
import { ApiError, type StreamEventMessage, type StreamInsightMessage, type StreamProgressMessage } from '../../../client/index.js';
import { timerMs } from '../../../client/http.js';
import type { Api, CountStats } from './api.js';
import { isKeyRefused } from './key-gate.js';

/** A transition as the stream sends it (`kind: "event"`). */
export type StreamEvent = StreamEventMessage;

/**
 * `stream`: counts and transitions pushed; `polling`: counts only; `offline`: the server does not answer;
 * `unavailable`: the server answers that its database is not reachable (the counts are the last read);
 * `limited`: the server answers 429 (rate limited): the counts are the last read, and the next read waits;
 * `refused`: the server refuses the page's API key, and nothing is read any more.
 */
export type LiveMode = 'stream' | 'polling' | 'offline' | 'unavailable' | 'limited' | 'refused';

/** The shortest period of the stream's stats (docs/stream.md): a shorter one is refused. */
const STATS_EVERY_MIN_MS = 250;

/** The server's code for its database not reachable: a 503, or the stream's `error` message (docs/stream.md#errors). */
const STORE_UNAVAILABLE = 'ATS_ERR_STORE_UNAVAILABLE';
const storeUnavailable = (err: unknown): boolean => err instanceof ApiError && err.code === STORE_UNAVAILABLE;
const rateLimited = (err: unknown): err is ApiError => err instanceof ApiError && err.status === 429;

export interface LiveHandlers {
  onStats(stats: CountStats): void;
  onEvent(event: StreamEvent): void;
  /** How the counts come now; with `limited`, `retryInMs` is how long until the next read. */
  onMode(mode: LiveMode, retryInMs?: number): void;
  /** An `insight` message of the stream: an anomaly the advisor detected (docs/stream.md). */
  onInsight?(message: StreamInsightMessage): void;
  /** A `progress` message of the stream: a running job's latest progress (docs/stream.md). */
  onProgress?(message: StreamProgressMessage): void;
  /** The server refuses the page's API key (a 401): the stream and the polling have stopped. */
  onRefused?(error: ApiError): void;
}

export interface LiveOptions {
  /** @defaultValue 1000 */
  pollMs?: number;
  /** Reconnect delays double from `min` up to `max`. @defaultValue 2000 and 30000 */
  reconnectMs?: { min: number; max: number };
}

export interface Live {
  stop(): void;
}

export function startLive(api: Api, on: LiveHandlers, opts: LiveOptions = {}): Live {
  const pollMs = opts.pollMs ?? 1000;
  const { min, max } = opts.reconnectMs ?? { min: 2000, max: 30_000 };
  let streaming = false;
  /** The stream said the database is not reachable, and no counts came since. */
  let storeDown = false;
  let stopped = false;
  let pollTimer: number | undefined;
  /** While rate limited: the timer that starts polling again once the wait is over. */
  let resumeTimer: number | undefined;
  /** Polls answered 429 in a row. */
  let limited = 0;

  const stopAll = () => {
    stopped = true;
    stopPolling();
    watch.close();
  };
  /** The key is refused: every later call would be too. */
  const refused = (err: ApiError) => {
    if (stopped) return;
    stopAll();
    on.onMode('refused');
    on.onRefused?.(err);
  };
  /** A read still waits for its answer: a slow server gets the next only after it, not one more each tick. */
  let reading = false;
  const poll = async () => {
    if (reading) return;
    reading = true;
    try {
      const stats = await api.stats();
      limited = 0;
      if (streaming || stopped) return; // the stream took over while this was in flight
      on.onStats(stats);
      on.onMode('polling');
    } catch (err) {
      if (isKeyRefused(err)) refused(err);
      else if (streaming || stopped) return;
      else if (rateLimited(err)) waitOutLimit(err);
      else on.onMode(storeUnavailable(err) ? 'unavailable' : 'offline');
    } finally {
      reading = false;
    }
  };
  const startPolling = () => {
    if (pollTimer !== undefined || resumeTimer !== undefined || stopped) return;
    void poll();
    pollTimer = window.setInterval(() => void poll(), pollMs);
  };
  const stopPolling = () => {
    window.clearInterval(pollTimer);
    pollTimer = undefined;
    window.clearTimeout(resumeTimer);
    resumeTimer = undefined;
  };
  /**
   * A 429: no read until the server's Retry-After (else a pause doubling from two polls) has passed, and
   * never before a poll's time: a Retry-After of 0 (an HTTP date already past: a proxy's clock behind, a
   * cached answer) would read again at once, for as long as the 429s go on.
   */
  const waitOutLimit = (err: ApiError) => {
    // A Retry-After over the longest a timer holds (a date far ahead) would fire at once: it waits that longest.
    const ms = timerMs(err.retryAfterMs !== undefined ? Math.max(pollMs, err.retryAfterMs) : Math.min(max, 2 * pollMs * 2 ** limited));
    limited++;
    stopPolling();
    on.onMode('limited', ms);
    resumeTimer = window.setTimeout(() => {
      resumeTimer = undefined;
      if (!streaming) startPolling();
    }, ms);
  };

  // The client's watch reconnects by itself (resuming from its last cursor), also when the first try fails.
  const openWatch = () => api.watch({}, {
    // The stream sends stats every 250 ms at the most often (a page polling faster, a test's, asks for that).
    statsEveryMs: Math.max(STATS_EVERY_MIN_MS, Math.round(pollMs)),
    reconnect: { minMs: min, maxMs: max },
    retryFirstConnect: true,
    onEvent: (e) => on.onEvent(e),
    onInsight(m) {
      if (!stopped) on.onInsight?.(m);
    },
    onProgress(m) {
      if (!stopped) on.onProgress?.(m);
    },
    onStats(stats) {
      if (stopped) return;
      if (!streaming || storeDown) {
        // Only a stats message proves the stream works end to end: stop polling then, not on open.
        streaming = true;
        storeDown = false;
        stopPolling();
        on.onMode('stream');
      }
      on.onStats(stats);
    },
    onNotice(text) {
      // The client passes the server's `error` messages on as `stream: <code>: <message>`. The session stays
      // (docs/stream.md#errors), and a stats tick that fails sends this instead of the counts: they stop moving.
      if (stopped || !streaming || storeDown || !text.includes(STORE_UNAVAILABLE)) return;
      storeDown = true;
      on.onMode('unavailable');
    },
    onConnection(state) {
      if (state !== 'disconnected' || stopped) return;
      streaming = false;
      storeDown = false;
      startPolling();
    },
  });
  // The watch ends by itself, without a `disconnected`, only when it cannot go on: the key refused (a close
  // with 4401, a reconnect answered 401), its cursor refused on a resume, or a failure it does not retry. Its
  // iterator, which yields nothing here (onEvent takes the events), settles then: stop on a refused key, else
  // go back to polling; and for a refused cursor (the server's events reset, or restored from an older
  // backup: no resume can be taken) watch again, from now.
  const watchEnded = (err: unknown) => {
    if (stopped) return;
    if (isKeyRefused(err)) return refused(err);
    streaming = false;
    storeDown = false;
    startPolling();
    if (err instanceof ApiError && err.code === 'ATS_ERR_BAD_CURSOR') watch = follow();
  };
  const follow = () => {
    const w = openWatch();
    w.next().then(() => watchEnded(null), watchEnded);
    return w;
  };
  let watch = follow();
  startPolling();
  return { stop: stopAll };
}
