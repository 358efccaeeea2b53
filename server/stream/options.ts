/**
 * Options of the WebSocket stream: raw in, defaults applied and checked once,
 * the result frozen. Durations are `...Ms`, sizes `...Bytes`.
 */
import { AtsError } from '../../engine/errors.js';
import { KEY_CACHE_MS } from '../auth.js';

export interface StreamOptions {
  /**
   * Largest client message answered normally; a bigger one (up to
   * `hardMaxMessageBytes`) gets an ATS_ERR_VALIDATION error message.
   * @defaultValue 16384
   */
  maxMessageBytes?: number;
  /**
   * ws's `maxPayload`: a frame above it is not even buffered, the connection
   * is closed with 1009. Set well above `maxMessageBytes` so that a client
   * that is merely too verbose gets an error message instead of a drop.
   * @defaultValue 1048576
   */
  hardMaxMessageBytes?: number;
  /** Oversize messages one connection may send before it is closed with 1008. @defaultValue 5 */
  maxOversizeMessages?: number;
  /**
   * Bytes queued towards one client (`socket.bufferedAmount`) above which a
   * live client is closed with 4000 `slow consumer` (a replay waits instead).
   * @defaultValue 1048576
   */
  maxBufferedBytes?: number;
  /** Keep-alive: a WebSocket ping this often; a client that did not answer the previous one is dropped. @defaultValue 30000 */
  pingIntervalMs?: number;
  /** Rows per read of the tail reader. @defaultValue 500 */
  tailBatchSize?: number;
  /** Rows per read of a client's replay. @defaultValue 500 */
  replayPageSize?: number;
  /**
   * Bytes of events' data one read of them takes at most, of either table
   * (a tail's read or a replay's page; for workflow transitions, their state
   * values too), the first row always coming whatever its size: a job's
   * SUCCEEDED event carries its result (up to 256 KiB) and a workflow
   * signal's data may be as large as a request body, so 500 of them in one
   * read would be a hundred megabytes or more. The sizes are read first (the
   * primary key range alone), then only the rows that fit; the next read
   * follows at once. @defaultValue 8388608 (8 MiB)
   */
  readBytes?: number;
  /**
   * Reads of the clients' own (pages of a replay, cursor checks) under way at
   * once, over every client of this process; others wait their turn, in
   * order. Keeps clients replaying from old cursors (each pages through every
   * tenant's events after it) from taking the database pool the API's
   * requests share (10 connections on MySQL). @defaultValue 2
   */
  clientReadsInFlight?: number;
  /**
   * While clients are connected, the tail reads the table this often (one
   * primary-key read): the most a commit of another process waits before
   * live clients get it. Commits of this process wake it at once.
   * @defaultValue 200
   */
  pollMs?: number;
  /**
   * While no client is connected the tail reads no rows; this often it asks
   * for the newest id and moves its horizon to the newest final one (so the
   * first client to arrive gets at most this plus `gapTimeoutMs` of recent
   * events as live ones). @defaultValue 1000
   */
  idlePollMs?: number;
  /**
   * How long a missing `job_events.id` is waited for before the tail moves
   * past it (a rolled-back transaction never fills it). Must exceed the
   * longest time a transition's transaction holds its inserted event
   * uncommitted: an event committed later than this is missed by live
   * clients (a replay from an older cursor still finds it). Ids below one
   * seen `gapTimeoutMs` ago are passed at once (see SeenMarks in tail.ts),
   * so runs deleted by retention cost no wait each.
   * @defaultValue 3000
   */
  gapTimeoutMs?: number;
  /** Re-read period while the tail waits for a missing id. @defaultValue 50 */
  gapPollMs?: number;
  /**
   * At start the tail begins this many ids below the newest event, so that
   * events of transactions still committing at that moment (with lower ids)
   * are not jumped over. @defaultValue 10000
   */
  startupRewindIds?: number;
  /** Stats answers younger than this are shared between clients (one GROUP BY for many dashboards). @defaultValue 250 */
  statsCacheMs?: number;
  /** Pause of the tail after a failed read. @defaultValue 1000 */
  errorBackoffMs?: number;
  /**
   * How often every open connection's key is checked again (key-check.ts):
   * a revoked key's connections are closed with 4401 within about this
   * plus one key read. The key cache's window, so that a revocation reaches
   * open streams about when it reaches new requests.
   * @defaultValue KEY_CACHE_MS (2000)
   */
  keyCheckMs?: number;
}

export type CompiledStreamOptions = Readonly<Required<StreamOptions>>;

export const STREAM_DEFAULTS: CompiledStreamOptions = Object.freeze({
  maxMessageBytes: 16 * 1024,
  hardMaxMessageBytes: 1024 * 1024,
  maxOversizeMessages: 5,
  maxBufferedBytes: 1024 * 1024,
  pingIntervalMs: 30_000,
  tailBatchSize: 500,
  replayPageSize: 500,
  readBytes: 8 * 1024 * 1024,
  clientReadsInFlight: 2,
  pollMs: 200,
  idlePollMs: 1000,
  gapTimeoutMs: 3000,
  gapPollMs: 50,
  startupRewindIds: 10_000,
  statsCacheMs: 250,
  errorBackoffMs: 1000,
  keyCheckMs: KEY_CACHE_MS,
});

/** Applies defaults and validates; throws ATS_ERR_CONFIG naming every bad value. */
export function compileStreamOptions(raw: StreamOptions = {}): CompiledStreamOptions {
  const defined = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
  const opts = { ...STREAM_DEFAULTS, ...defined } as Required<StreamOptions>;
  const problems: string[] = [];
  for (const [name, value] of Object.entries(opts)) {
    const zeroOk = name === 'startupRewindIds' || name === 'statsCacheMs';
    if (!Number.isSafeInteger(value) || value < (zeroOk ? 0 : 1)) problems.push(`${name} must be a ${zeroOk ? 'non-negative' : 'positive'} integer (got ${value})`);
  }
  if (opts.hardMaxMessageBytes < opts.maxMessageBytes) problems.push('hardMaxMessageBytes must be at least maxMessageBytes');
  if (problems.length > 0) throw new AtsError('ATS_ERR_CONFIG', `invalid stream options: ${problems.join('; ')}`);
  return Object.freeze(opts);
}
