/**
 * The client's errors: every failure is an `ApiError` with `status`, `code`
 * and `message`. The server's answers carry a code of its registry
 * (`engine/errors.ts`); the client adds two codes of its own, for when no
 * answer came (`ATS_ERR_UNREACHABLE`, status 0) and for a server without the
 * stream (`ATS_ERR_STREAM_UNAVAILABLE`). A request the client cannot send (a
 * header value fetch refuses) is the registry's `ATS_ERR_VALIDATION`, status 0.
 */
import type { ErrorCode } from '../engine/errors.js';
import type { BatchItem, BatchResult } from './types.js';

/** What `ApiError.code` can be: a server code, a client code, or `HTTP_<status>` for a non-JSON error answer. */
export type ApiErrorCode = ErrorCode | 'ATS_ERR_UNREACHABLE' | 'ATS_ERR_STREAM_UNAVAILABLE' | `HTTP_${number}`;

export class ApiError extends Error {
  /**
   * A refused workflow signal or cancel (409 `ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED`
   * or `ATS_ERR_WORKFLOW_ENDED`): the event types the instance takes now. Absent otherwise.
   */
  readonly accepts?: readonly string[];
  /**
   * The error answer's `Location`: a workflow start that waited and timed out
   * (408 `ATS_ERR_WAIT_TIMEOUT`) or whose instance ended otherwise (412
   * `ATS_ERR_WAIT_UNMET`) names the instance it started, as its URL (the
   * server's relative reference resolved against the request's URL, under the
   * client's path prefix too: `https://ats.invalid/scheduler/v1/workflows/<id>`).
   * Absent otherwise.
   */
  readonly location?: string;
  /**
   * How long the server asked to wait before trying again (its `Retry-After`,
   * in ms: its seconds, or the time until its HTTP date, 0 for a date past), on
   * a 429 (rate limited) or 503 (unavailable) that sent one. Absent otherwise.
   */
  readonly retryAfterMs?: number;
  /**
   * A `submitMany` that threw: what it had done, to send the rest again
   * without making a job twice. Absent otherwise.
   */
  readonly batch?: BatchProgress;

  constructor(
    /** The HTTP status; 0 when no answer came. */
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    options?: { cause?: unknown; accepts?: readonly string[]; location?: string; retryAfterMs?: number },
  ) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'ApiError';
    if (options?.accepts) this.accepts = options.accepts;
    if (options?.location) this.location = options.location;
    if (options?.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }
}

/** What a `submitMany` that threw had done (`ApiError.batch`). */
export interface BatchProgress {
  /**
   * The results of the first jobs, those of the requests answered in full
   * before the one that failed: `results[i]` answers `jobs[i]`.
   */
  readonly results: readonly BatchResult[];
  /**
   * Every job of the call as it is sent, each with its `idempotencyKey` (the
   * one it was given, or the one made for it). Sent again, the jobs already
   * made are answered (200), not made twice.
   */
  readonly jobs: readonly BatchItem[];
}

/** `err` with `batch` set: the error a `submitMany` throws. */
export function withBatch(err: ApiError, batch: BatchProgress): ApiError {
  (err as { batch?: BatchProgress }).batch = batch;
  return err;
}

/** No answer from the server, after the retries: refused, unknown host, reset, timed out. */
export class UnreachableError extends ApiError {
  constructor(
    readonly url: string,
    /** E.g. `ECONNREFUSED` or `timed out`. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(0, 'ATS_ERR_UNREACHABLE', `cannot reach the ats server at ${url} (${reason})`, options);
    this.name = 'UnreachableError';
  }
}

/**
 * `watch()` could not subscribe: the server refused the WebSocket upgrade
 * (`status` is its HTTP status, e.g. 404 when it runs without the stream) or
 * never confirmed the subscription (`status` 0).
 */
export class StreamUnavailableError extends ApiError {
  constructor(status: number, message: string) {
    super(status, 'ATS_ERR_STREAM_UNAVAILABLE', message);
    this.name = 'StreamUnavailableError';
  }
}

/** The reason a fetch or a socket failed without an answer, e.g. `ECONNREFUSED`. */
export function networkReason(err: unknown): string {
  const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return 'timed out';
  // fetch refuses some ports outright (1, 7, 6000, ... — the Fetch standard's "bad ports").
  if (e?.cause?.message === 'bad port') return 'fetch refuses to connect to this port';
  return e?.cause?.code ?? e?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAY = '(?:mon|tue|wed|thu|fri|sat|sun)';
const MONTH = '(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)';
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
/** `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate, what senders send). */
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`, 'i');
/** `Sunday, 06-Nov-94 08:49:37 GMT` (RFC 850, obsolete: a two-digit year). */
const RFC_850 = new RegExp(`^(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`, 'i');
/** `Sun Nov  6 08:49:37 1994` (asctime, obsolete). */
const ASCTIME = new RegExp(`^${DAY} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`, 'i');

/**
 * An HTTP date in any of the three forms a recipient must read, as ms since
 * the epoch; null for anything else (a date that does not exist, 31 Feb, too).
 * A two-digit year is the latest such year not over 50 years after `now`.
 */
function httpDate(text: string, now: number): number | null {
  let parts: { day: string; month: string; year: number; h: string; m: string; s: string } | null = null;
  let match: RegExpExecArray | null;
  if ((match = IMF_FIXDATE.exec(text))) parts = { day: match[1]!, month: match[2]!, year: Number(match[3]), h: match[4]!, m: match[5]!, s: match[6]! };
  else if ((match = ASCTIME.exec(text))) parts = { month: match[1]!, day: match[2]!, h: match[3]!, m: match[4]!, s: match[5]!, year: Number(match[6]) };
  else if ((match = RFC_850.exec(text))) {
    const thisYear = new Date(now).getUTCFullYear();
    let year = thisYear - (thisYear % 100) + Number(match[3]);
    if (year > thisYear + 50) year -= 100;
    parts = { day: match[1]!, month: match[2]!, year, h: match[4]!, m: match[5]!, s: match[6]! };
  }
  if (!parts) return null;
  const [month, day, h, m, s] = [MONTHS.indexOf(parts.month.toLowerCase()), Number(parts.day), Number(parts.h), Number(parts.m), Number(parts.s)];
  if (h > 23 || m > 59 || s > 60) return null;
  const at = new Date(Date.UTC(parts.year, month, day, h, m, Math.min(s, 59)));
  // Date.UTC rolls 31 Feb over into March: such a date is no date.
  return at.getUTCMonth() === month && at.getUTCDate() === day ? at.getTime() : null;
}

/**
 * A `Retry-After` as ms to wait: whole seconds (the form the server sends),
 * or an HTTP date (a proxy's), the time until it (0 when past); null for junk.
 * Unbounded here: who waits bounds it (a 503's retry by `retryDelayMs.max`).
 */
function retryAfterWait(value: string, now: number): number | null {
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = httpDate(text, now);
  return at === null ? null : Math.max(0, at - now);
}

/**
 * An error answer (`{code, message}`, or any other body) as an ApiError;
 * `location`: its Location header (as the URL it names: resolved against the
 * request's), if any; `retryAfter`: its Retry-After,
 * read on a 429 or 503 (a date as the time from `now` until it).
 */
export function toApiError(status: number, text: string, location?: string | null, retryAfter?: string | null, now: number = Date.now()): ApiError {
  const retryAfterMs = retryAfter != null && (status === 429 || status === 503) ? retryAfterWait(retryAfter, now) ?? undefined : undefined;
  let parsed: { code?: unknown; message?: unknown; accepts?: unknown } | undefined;
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    // A proxy's HTML error page, say: reported with the status.
  }
  if (parsed && typeof parsed.code === 'string') {
    const accepts = Array.isArray(parsed.accepts) && parsed.accepts.every((t) => typeof t === 'string') ? (parsed.accepts as string[]) : undefined;
    return new ApiError(status, parsed.code as ApiErrorCode, typeof parsed.message === 'string' ? parsed.message : '', {
      ...(accepts ? { accepts } : {}), ...(location ? { location } : {}), ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  }
  return new ApiError(status, `HTTP_${status}`, text.slice(0, 200) || `HTTP ${status}`, retryAfterMs !== undefined ? { retryAfterMs } : undefined);
}

/**
 * `watch()` was refused by the server at the WebSocket upgrade with an error
 * of its own (`401 ATS_ERR_UNAUTHORIZED`, `403 ATS_ERR_FORBIDDEN`, `429
 * ATS_ERR_TOO_MANY_STREAMS`, ...): that error, its code and message as the
 * server sent them. Only a `ws` socket can read it; a standard WebSocket
 * cannot see the upgrade's answer.
 */
export class StreamRefusedError extends ApiError {
  constructor(answer: ApiError) {
    super(answer.status, answer.code, answer.message, answer.retryAfterMs !== undefined ? { retryAfterMs: answer.retryAfterMs } : undefined);
    this.name = 'StreamRefusedError';
  }
}
