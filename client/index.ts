/**
 * The typed client of the ats REST API (v1) and its stream, for Node ≥ 20 and
 * browsers:
 *
 * ```ts
 * import { createClient } from 'ai-task-scheduler/client';
 * const ats = createClient({ url: 'http://localhost:3000' });
 * const job = await ats.submit({ type: 'email.send', payload: { to: 'a@example.com' } });
 * for await (const e of ats.watch({ jobId: job.id })) if (e.to === 'done') break;
 * ```
 *
 * Every submit carries an `Idempotency-Key` (made once per submit, reused by
 * its retries), so retrying after a timeout, a network error or a 503 never
 * makes a second job. Every failure is an `ApiError {status, code, message}`.
 * See docs/client.md.
 */
import { ulid } from 'ulid';
import type { MAX_BATCH as SERVER_MAX_BATCH } from '../server/schemas.js';
import type { MAX_STATS_EVERY_MS as SERVER_MAX_STATS_EVERY_MS, MIN_STATS_EVERY_MS as SERVER_MIN_STATS_EVERY_MS } from '../server/stream/protocol.js';
import { ApiError, withBatch, type ApiErrorCode } from './errors.js';
import { backoffMs, call, firstNonFinite, notTheApi, outcomeWasUnknown, sleep, unsendable, type CallOptions, type HttpOptions } from './http.js';
import { RECONNECT_MS, resolveWebSocket, watch, type Watch, type WatchOptions, type WebSocketConstructor } from './stream.js';
import type {
  ApiKey, ApiKeyList, AuditEntry, AuditLog, BatchItem, BatchResult, Caller, CreatedApiKey, CreateKeyRequest, Insights, JobDetail, JobPage, JobVerification, JobView,
  Limit, LimitList, LimitSpec, ListQuery, MachineView, Schedule, ScheduleDetail, ScheduleList, SchedulePatch, ScheduleRequest, Stats, StreamFilter,
  StartWorkflowRequest, SubmitRequest, Worker, WorkerList, Workflow, WorkflowEvent, WorkflowEventPage, WorkflowListQuery, WorkflowPage, WorkflowSignal, WorkflowVerification,
  WorkflowWaitCondition,
} from './types.js';

export * from './types.js';
export { ApiError, StreamRefusedError, StreamUnavailableError, UnreachableError, type ApiErrorCode, type BatchProgress } from './errors.js';
export type { Watch, WatchOptions, WebSocketConstructor, WebSocketLike } from './stream.js';
export { KEY_REFUSED_CLOSE } from './stream.js';
export { heldText, waitingText } from './waiting.js';

/** Most jobs one `POST /v1/jobs/batch` takes; `submitMany` splits larger arrays. (Type-checked against the server's constant.) */
export const MAX_BATCH: typeof SERVER_MAX_BATCH = 1000;

/** The string fields every answer of its kind has: one without them is not the server's (a URL pointing elsewhere). */
const JOB_FIELDS = ['id', 'state'] as const;
const WORKFLOW_FIELDS = ['id', 'status'] as const;
const SCHEDULE_FIELDS = ['name', 'cron'] as const;
const LIMIT_FIELDS = ['key'] as const;
/** An instance's history (a page of `events`): each event's `type` and `status`. */
const EVENT_LIST = { name: 'events', fields: ['type', 'status'] } as const;

export interface ClientOptions {
  /**
   * The server, e.g. `http://localhost:3000` (a trailing slash is dropped): http:// or https://, without a
   * user or password, a query or a fragment (else ATS_ERR_VALIDATION when the client is made).
   */
  url: string;
  /**
   * Sent as `Authorization: Bearer <apiKey>` on every request (and on the
   * stream's upgrade: as that header with `ws`, as the subprotocol
   * `ats.key.<apiKey>` with a browser's socket), without leading or trailing
   * whitespace. Required by the server once keys exist (docs/security.md).
   */
  apiKey?: string | undefined;
  /** @defaultValue globalThis.fetch */
  fetch?: typeof fetch | undefined;
  /** @defaultValue globalThis.WebSocket, else the `ws` package */
  WebSocket?: WebSocketConstructor | undefined;
  /** Per attempt of a request: a finite number above 0 (else ATS_ERR_VALIDATION). @defaultValue 30000 */
  timeoutMs?: number | undefined;
  /** Retries after a timeout, a network error or a 503: a finite number, 0 or more. @defaultValue 3 */
  retries?: number | undefined;
  /** Pause before retry n (from 1): random up to min·2^(n−1), at most max; each finite, 0 or more. @defaultValue { min: 250, max: 5000 } */
  retryDelayMs?: { min: number; max: number } | undefined;
  /** Called before each retry of any request (after the request's own `onRetry`): to tell a person the client waits. */
  onRetry?: CallOptions['onRetry'];
}

export interface RequestOptions {
  /** Aborts the request and its retries. */
  signal?: AbortSignal | undefined;
  /** Called before each retry (logging, tests). */
  onRetry?: CallOptions['onRetry'];
}

export interface SubmitOptions extends RequestOptions {
  /**
   * The submit's Idempotency-Key: a repeat with the same key and body answers
   * the job the first created. Default: a new ULID per call. `false` sends
   * none — and then the submit is not retried (a retry could make a second job).
   */
  idempotencyKey?: string | false | undefined;
}

export interface SubmitManyOptions extends RequestOptions {
  /** Give each item without an `idempotencyKey` a new one (else it is sent without, and not retried). @defaultValue true */
  idempotencyKeys?: boolean | undefined;
  /** Items per request, 1 to MAX_BATCH (a fraction rounded down, more taken as MAX_BATCH; NaN or under 1 is refused: ATS_ERR_VALIDATION). @defaultValue MAX_BATCH */
  batchSize?: number | undefined;
}

/** `list()`'s filter: the query of `GET /v1/jobs` (`limit` is the page size). */
export type ListFilter = ListQuery;

/**
 * Orders two progress reports of one job (`progress` of `get`, or `onProgress`
 * messages): by attempt, then by time; 0 when their times cannot be compared.
 * The stream and a read of the job race, so a reader keeps the later of two.
 */
export function compareProgress(a: { attempt: number; at: string }, b: { attempt: number; at: string }): number {
  if (a.attempt !== b.attempt) return a.attempt - b.attempt;
  const d = Date.parse(a.at) - Date.parse(b.at);
  return Number.isNaN(d) ? 0 : d;
}

/**
 * A number option of `where` (submitMany's batchSize) as given (undefined: its
 * default), refused when it is not a number: NaN would make every request empty.
 */
function aNumber(where: string, name: string, value: number | undefined): number | undefined {
  if (value === undefined || (typeof value === 'number' && !Number.isNaN(value))) return value;
  throw badOption(where, name, 'a number', value);
}

/** What a number option of createClient or watch may be: more than 0 (a timeout, a period), or 0 too (a count, a pause that may be none). */
type Range = 'positive' | 'zeroOrMore';

/** The client's error for an option it cannot take (nothing sent): ATS_ERR_VALIDATION naming it, what it must be, and what it got. */
function badOption(where: string, name: string, must: string, value: unknown): ApiError {
  const got = typeof value === 'string' ? JSON.stringify(value) : value !== null && typeof value === 'object' ? JSON.stringify(value) ?? String(value) : String(value);
  return new ApiError(0, 'ATS_ERR_VALIDATION', `${where}: ${name} must be ${must}, got ${got}`);
}

/**
 * A number option of `where` (createClient, watch) as given (undefined: its
 * default), refused unless a finite number in `range`. NaN (`Number()` of an
 * unset environment variable) or Infinity retries never stop (no attempt count
 * is `>=` either): a server answering 503 was asked again for ever. A NaN
 * pause or timer is 1 ms (a reconnect loop that never rests), a timeout of 0
 * aborts every attempt at once, and a negative or NaN one threw from a call.
 */
function option(where: string, name: string, value: unknown, range: Range): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isFinite(value) && (range === 'positive' ? value > 0 : value >= 0)) return value;
  throw badOption(where, name, range === 'positive' ? 'a finite number above 0' : 'a finite number of 0 or more', value);
}

/**
 * A pair of pauses (`retryDelayMs`, a watch's `reconnect`) as given, each
 * checked by `option`; a bound left out (a JavaScript caller's `{ max: 1000 }`)
 * is its default, not undefined (NaN pauses); undefined: the defaults.
 */
function pauses<K extends string>(where: string, name: string, value: unknown, defaults: Readonly<Record<K, number>>, range: Range): Record<K, number> {
  if (value === undefined) return { ...defaults };
  const keys = Object.keys(defaults) as K[];
  if (value === null || typeof value !== 'object') throw badOption(where, name, `an object { ${keys.join(', ')} }`, value);
  const given = value as Partial<Record<K, unknown>>;
  const out: Record<K, number> = { ...defaults };
  for (const k of keys) out[k] = option(where, `${name}.${k}`, given[k], range) ?? defaults[k];
  return out;
}

/** A watch's `statsEveryMs` as the server takes it (server/stream/protocol.ts): 0 (none), or whole ms from the shortest to the longest. */
const STATS_EVERY_MS: { readonly min: typeof SERVER_MIN_STATS_EVERY_MS; readonly max: typeof SERVER_MAX_STATS_EVERY_MS } = { min: 250, max: 3_600_000 };

/** `statsEveryMs` as given (undefined: none asked for), refused unless the server would take it: it would answer an error message on every connection, and no counts. */
function statsEvery(value: unknown): number | undefined {
  if (value === undefined || value === 0) return value;
  if (typeof value === 'number' && Number.isInteger(value) && value >= STATS_EVERY_MS.min && value <= STATS_EVERY_MS.max) return value;
  throw badOption('watch', 'statsEveryMs', `0 (none) or a whole number of ms from ${STATS_EVERY_MS.min} to ${STATS_EVERY_MS.max}`, value);
}

/** The default pauses between a request's retries. */
const RETRY_DELAY_MS: Readonly<{ min: number; max: number }> = { min: 250, max: 5000 };

/** A new ULID: the default Idempotency-Key. */
export const newIdempotencyKey = (): string => ulid();

/** The statuses `POST /v1/jobs` refuses a job with that `POST /v1/jobs/batch` answers as the item's result. */
const ITEM_REFUSALS: ReadonlySet<number> = new Set([400, 409, 413, 422]);

/**
 * `value` as one segment of a path. `.` and `..` cannot be: fetch resolves
 * them (`/v1/limits/..` is `/v1/`), and the request would reach another route
 * and come back as its answer. The server takes neither as a name or an id:
 * refused here as the 400 it would answer, nothing sent.
 */
function segment(what: string, value: string): string {
  if (value === '.' || value === '..') {
    throw new ApiError(0, 'ATS_ERR_VALIDATION', `'${value}' is not a ${what}: a path segment cannot be . or .. (nothing was sent)`);
  }
  return encodeURIComponent(value);
}

const jobPath = (id: string) => `/v1/jobs/${segment('job id', id)}`;
const schedulePath = (name: string) => `/v1/schedules/${segment('schedule name', name)}`;
const limitPath = (key: string) => `/v1/limits/${segment('concurrency key', key)}`;
const keyPath = (id: string) => `/v1/keys/${segment('key id', id)}`;
const workflowPath = (id: string) => `/v1/workflows/${segment('workflow id', id)}`;

/** The server's default and longest wait (`timeoutMs` of the wait routes). */
const DEFAULT_WAIT_MS = 30_000;
/** An attempt of a wait may take its timeout and this much more (the answer's trip, a slow read) before the client gives up on it. */
const WAIT_SLACK_MS = 10_000;

export interface WaitOptions {
  /** @defaultValue 'done' */
  until?: WorkflowWaitCondition | undefined;
  /** How long the server waits, in ms (0 to 120000); then `408 ATS_ERR_WAIT_TIMEOUT`. @defaultValue 30000 */
  timeoutMs?: number | undefined;
}

/** `path` with the query's set, non-empty values as its query string. */
function withQuery(path: string, query: object): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') params.set(k, String(v));
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** The query of a wait, and its attempts' timeout (the wait's own, and slack). */
function waitQuery(key: 'until' | 'wait', w: WaitOptions): { qs: string; timeoutMs: number } {
  const params = new URLSearchParams();
  params.set(key, w.until ?? 'done');
  if (w.timeoutMs !== undefined) params.set('timeoutMs', String(w.timeoutMs));
  // A timeoutMs that is no number (NaN) is the server's to refuse (400), as Infinity or -1 are: the attempt's own timeout
  // computed from it would be NaN, a RangeError of the timer before anything was sent.
  const waitMs = typeof w.timeoutMs === 'number' && !Number.isNaN(w.timeoutMs) ? w.timeoutMs : DEFAULT_WAIT_MS;
  return { qs: params.toString(), timeoutMs: waitMs + WAIT_SLACK_MS };
}

/**
 * The server's URL as the client sends to it: without spaces around it (one
 * read from a file ends in a newline: fetch would refuse `http://h:1 /v1/jobs`)
 * nor trailing slashes. Refused when the client is made (nothing sent) unless
 * http:// or https:// without credentials, a query or a fragment: without a
 * scheme (`localhost:3000`) every call failed and was retried as "cannot
 * reach the server"; the API's paths go after the URL, so `http://h/?x=1`
 * sent `POST /?x=1/v1/jobs`; fetch refuses credentials in a URL (which the
 * stream's socket sent as Basic auth), and a password is never echoed.
 */
function serverUrl(given: unknown): string {
  const text = typeof given === 'string' ? given.trim() : '';
  const refuse = (must: string) => new ApiError(0, 'ATS_ERR_VALIDATION', `createClient: url ${must}`);
  let url: URL | null = null;
  try {
    url = new URL(text);
  } catch {
    // Not a URL: refused below.
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw refuse(`must be an http:// or https:// URL, e.g. http://localhost:3000, got ${typeof given === 'string' ? JSON.stringify(given) : String(given)}`);
  }
  if (url.username || url.password) {
    throw refuse(`must not hold a user or password (${url.protocol}//${url.host} with credentials): give the API key as apiKey`);
  }
  const extra = text.search(/[?#]/);
  if (extra >= 0) throw refuse(`must not hold a query or a fragment (${text.slice(extra)}): the API's paths go after it; give its scheme, host, port and path only`);
  return text.replace(/\/+$/, '');
}

export class AtsClient {
  /** The server, without a trailing slash. */
  readonly url: string;
  private readonly http: HttpOptions;
  private readonly WebSocket: WebSocketConstructor | undefined;

  /** A URL string is `{ url }`. */
  constructor(options: ClientOptions | string) {
    const o: ClientOptions = typeof options === 'string' ? { url: options } : options;
    this.url = serverUrl(o.url);
    const fetchImpl = o.fetch ?? globalThis.fetch;
    this.http = {
      baseUrl: this.url,
      // Leading and trailing whitespace is no part of a key (a key read from a file ends in a newline): the socket would refuse it.
      headers: o.apiKey?.trim() ? { authorization: `Bearer ${o.apiKey.trim()}` } : {},
      // Called unbound: a browser's fetch throws "Illegal invocation" when called as a method of another object.
      fetch: (input, init) => fetchImpl(input, init),
      timeoutMs: option('createClient', 'timeoutMs', o.timeoutMs, 'positive') ?? 30_000,
      retries: option('createClient', 'retries', o.retries, 'zeroOrMore') ?? 3,
      // 0 pauses are allowed: the retries are counted, so they end.
      retryDelayMs: pauses('createClient', 'retryDelayMs', o.retryDelayMs, RETRY_DELAY_MS, 'zeroOrMore'),
      onRetry: o.onRetry,
    };
    this.WebSocket = o.WebSocket;
  }

  /**
   * `POST /v1/jobs`: the job as created — or, when its Idempotency-Key was
   * used before with the same body, the job that submit created.
   */
  async submit(job: SubmitRequest, opts: SubmitOptions = {}): Promise<JobView> {
    const key = opts.idempotencyKey === undefined ? newIdempotencyKey() : opts.idempotencyKey;
    const r = await call<JobView>(this.http, 'POST', '/v1/jobs', {
      ...opts, body: job, expect: JOB_FIELDS, retry: key !== false, headers: key === false ? {} : { 'idempotency-key': key },
    });
    return r.body;
  }

  /**
   * `POST /v1/jobs/batch`, MAX_BATCH items a request (one request after the
   * other; a request over the server's batch body limit is split until it
   * fits; a job over that limit in a batch of its own is sent alone to
   * `POST /v1/jobs`, its answer its result, a 413 when over the limit of
   * one job too): one result per
   * job, in the order given. An item the server
   * refuses is its result (`status` 4xx or 500, `code`, `message`), not a
   * throw. An item answered 503 (its key was taken and its job could not be
   * read back) is sent again with its key, up to `retries` times, with the
   * retries' pauses; still 503, it is thrown. A request refused as a whole,
   * or failed after its retries, throws too: the requests before it stand,
   * and the error's `batch` holds their results and every job as sent, with
   * its key — sending `batch.jobs` again answers the jobs already made
   * without making them twice.
   */
  async submitMany(jobs: readonly BatchItem[], opts: SubmitManyOptions = {}): Promise<BatchResult[]> {
    // NaN would make every request empty (each refused 400, or no job sent at all); a fraction is rounded down.
    const given = aNumber('submitMany', 'batchSize', opts.batchSize);
    if (given !== undefined && !(given >= 1)) throw badOption('submitMany', 'batchSize', '1 or more', given);
    const size = Math.min(MAX_BATCH, Math.floor(given ?? MAX_BATCH));
    // A job holding a number JSON cannot carry is refused before the first request, named by its place in `jobs`.
    for (const [i, job] of jobs.entries()) {
      const found = firstNonFinite(job);
      if (found) throw unsendable(found, `jobs[${i}]`);
    }
    const keyed = opts.idempotencyKeys === false
      ? [...jobs]
      : jobs.map((j) => (j.idempotencyKey === undefined ? { ...j, idempotencyKey: newIdempotencyKey() } : j));
    const results: BatchResult[] = [];
    try {
      for (let from = 0; from < keyed.length; from += size) results.push(...(await this.submitPart(keyed.slice(from, from + size), from, opts)));
    } catch (err) {
      if (err instanceof ApiError) withBatch(err, { results: [...results], jobs: keyed });
      throw err;
    }
    return results;
  }

  /**
   * One request's jobs (`from`: the first one's index in the call): sent,
   * then those answered 503 that have a key sent again with it, up to
   * `retries` times; still 503, the first of them is thrown.
   */
  private async submitPart(jobs: readonly BatchItem[], from: number, opts: RequestOptions): Promise<BatchResult[]> {
    const results = await this.submitBatch(jobs, opts);
    for (let attempt = 1; ; attempt++) {
      const unanswered = results.flatMap((r, i) => (r.status === 503 && jobs[i]!.idempotencyKey !== undefined ? [i] : []));
      if (unanswered.length === 0) return results;
      const first = unanswered[0]!;
      const r = results[first]!;
      const failure = new ApiError(503, (r.code ?? 'HTTP_503') as ApiErrorCode, `jobs[${from + first}]: ${r.message ?? 'unavailable'}`);
      if (attempt > this.http.retries) throw failure;
      opts.onRetry?.(failure, attempt);
      this.http.onRetry?.(failure, attempt);
      await sleep(backoffMs(attempt - 1, this.http.retryDelayMs), opts.signal);
      const answers = await this.submitBatch(unanswered.map((i) => jobs[i]!), opts);
      unanswered.forEach((i, k) => (results[i] = answers[k]!));
    }
  }

  /**
   * One `POST /v1/jobs/batch` of `jobs`; a body over the server's batch limit
   * (413, refused before anything is written) is sent again in halves. A job
   * over it in a batch of its own is sent alone to `POST /v1/jobs`
   * (submitAlone): the batch limit may equal the limit of one job, which does
   * not count the batch's envelope nor the item's key.
   */
  private async submitBatch(jobs: readonly BatchItem[], opts: RequestOptions): Promise<BatchResult[]> {
    try {
      return (await call<{ results: BatchResult[] }>(this.http, 'POST', '/v1/jobs/batch', {
        ...opts, body: { jobs }, retry: jobs.every((j) => j.idempotencyKey !== undefined),
      })).body.results;
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 413)) throw err;
      if (jobs.length === 1) return [await this.submitAlone(jobs[0]!, opts)];
      const half = Math.ceil(jobs.length / 2);
      return [...(await this.submitBatch(jobs.slice(0, half), opts)), ...(await this.submitBatch(jobs.slice(half), opts))];
    }
  }

  /**
   * `POST /v1/jobs` of one item, its `idempotencyKey` as the header (none:
   * sent once), answered as the batch would have: the job (201, or 200 for
   * the job its key made before), or the item's own refusal (400, 409, 413,
   * 422) as its result. Any other failure (no answer, 401, 429, 503 after the
   * retries…) is thrown, as a batch request's is.
   */
  private async submitAlone(item: BatchItem, opts: RequestOptions): Promise<BatchResult> {
    const { idempotencyKey, ...job } = item;
    try {
      const r = await call<JobView>(this.http, 'POST', '/v1/jobs', {
        ...opts, body: job, expect: JOB_FIELDS, retry: idempotencyKey !== undefined,
        headers: idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey },
      });
      return { status: r.status, id: r.body.id, state: r.body.state };
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (ITEM_REFUSALS.has(err.status)) return { status: err.status, code: err.code, message: err.message };
      // A key fetch cannot send as a header (refused before sending): one the batch would have refused as the item's 400.
      if (err.status === 0 && err.code === 'ATS_ERR_VALIDATION') return { status: 400, code: err.code, message: err.message };
      throw err;
    }
  }

  /** `GET /v1/jobs/:id`: the job with its events and the actions it accepts now. */
  async get(id: string, opts: RequestOptions = {}): Promise<JobDetail> {
    return (await call<JobDetail>(this.http, 'GET', jobPath(id), { ...opts, expect: JOB_FIELDS })).body;
  }

  /** One page of `GET /v1/jobs` (newest first); pass its `nextCursor` as `cursor` for the next. */
  async listPage(query: ListQuery = {}, opts: RequestOptions = {}): Promise<JobPage> {
    return (await call<JobPage>(this.http, 'GET', withQuery('/v1/jobs', query), { ...opts, expectList: { name: 'jobs', fields: JOB_FIELDS } })).body;
  }

  /** Every page of `GET /v1/jobs` matching `filter`, newest first, following the cursors. */
  async *list(filter: ListFilter = {}, opts: RequestOptions = {}): AsyncGenerator<JobPage, void, undefined> {
    let cursor = filter.cursor;
    // Each cursor a page answered: one again (another service's answer, or a fault) would page for ever.
    const sent = new Set<string>();
    do {
      if (cursor) sent.add(cursor);
      const page = await this.listPage({ ...filter, ...(cursor ? { cursor } : {}) }, opts);
      yield page;
      const next: unknown = page.nextCursor ?? undefined;
      if (next !== undefined && typeof next !== 'string') throw notTheApi(200, 'GET', '/v1/jobs', 'a nextCursor that is not a string', JSON.stringify(next));
      if (next && sent.has(next)) throw notTheApi(200, 'GET', '/v1/jobs', `the cursor it was sent, ${JSON.stringify(next)}, as the next`, '');
      cursor = next;
    } while (cursor);
  }

  /**
   * `POST /v1/jobs/:id/cancel`. A retry whose first try may have gone through
   * and that finds the job cancelled answers the job (not a 409).
   */
  async cancel(id: string, opts: RequestOptions & { reason?: string | undefined } = {}): Promise<JobView> {
    const { reason, ...rest } = opts;
    try {
      return (await call<JobView>(this.http, 'POST', `${jobPath(id)}/cancel`, { ...rest, body: reason === undefined ? {} : { reason }, expect: JOB_FIELDS })).body;
    } catch (err) {
      if (err instanceof ApiError && err.code === 'ATS_ERR_TRANSITION_NOT_ALLOWED' && outcomeWasUnknown(err)) {
        const job = await this.get(id, rest);
        if (job.state === 'cancelled') return withoutEvents(job);
      }
      throw err;
    }
  }

  /**
   * `POST /v1/jobs/:id/redrive`: a new run of a dead or cancelled job. It is
   * never sent again after a try whose outcome is unknown (a retry could start
   * a second run once the first had ended): the job is read instead, and when
   * it has left dead and cancelled the redrive went through and the job is
   * the answer; else the failure is thrown.
   */
  async redrive(id: string, opts: RequestOptions = {}): Promise<JobView> {
    try {
      return (await call<JobView>(this.http, 'POST', `${jobPath(id)}/redrive`, { ...opts, retryUnknown: false, expect: JOB_FIELDS })).body;
    } catch (err) {
      if (!(err instanceof ApiError && outcomeWasUnknown(err))) throw err;
      const job = await this.get(id, opts).catch(unlessAborted(opts.signal));
      if (job && job.state !== 'dead' && job.state !== 'cancelled') return withoutEvents(job);
      throw err;
    }
  }

  /**
   * `DELETE /v1/jobs/:id`: a done, dead or cancelled job and its events. A
   * retry whose first try may have gone through and that finds no job counts
   * as deleted.
   */
  async delete(id: string, opts: RequestOptions = {}): Promise<void> {
    try {
      await call<void>(this.http, 'DELETE', jobPath(id), { ...opts, expectNoContent: true });
    } catch (err) {
      if (err instanceof ApiError && err.code === 'ATS_ERR_JOB_NOT_FOUND' && outcomeWasUnknown(err)) return;
      throw err;
    }
  }

  /** `GET /v1/jobs/:id/verify`: whether the job's history replays to its stored state (`problems` when not). */
  async verifyJob(id: string, opts: RequestOptions = {}): Promise<JobVerification> {
    return (await call<JobVerification>(this.http, 'GET', `${jobPath(id)}/verify`, opts)).body;
  }

  /**
   * `POST /v1/workflows`: the instance as started — or, when its
   * idempotencyKey was used before with the same name and input, the
   * instance that start started. Like `submit`, a start carries a key (made
   * here unless given; `false`: none, and then it is not retried).
   *
   * With `wait` (`{ until, timeoutMs }`, as `waitWorkflow`), it answers only
   * once the instance meets the condition. When it does not (408
   * `ATS_ERR_WAIT_TIMEOUT`, 412 `ATS_ERR_WAIT_UNMET`) the instance was
   * started all the same: the ApiError's `location` names it.
   */
  async startWorkflow(
    input: StartWorkflowRequest, opts: RequestOptions & { idempotencyKey?: string | false; wait?: WaitOptions | undefined } = {},
  ): Promise<Workflow> {
    const { idempotencyKey, wait, ...rest } = opts;
    const key = idempotencyKey === undefined ? input.idempotencyKey ?? newIdempotencyKey() : idempotencyKey;
    const { idempotencyKey: _given, ...body } = input;
    const w = wait ? waitQuery('wait', wait) : null;
    return (await call<Workflow>(this.http, 'POST', `/v1/workflows${w ? `?${w.qs}` : ''}`, {
      ...rest, body: key === false ? body : { ...body, idempotencyKey: key }, retry: key !== false, ...(w ? { timeoutMs: w.timeoutMs } : {}),
      expect: WORKFLOW_FIELDS,
    })).body;
  }

  /**
   * `GET /v1/workflows/:id/wait`: the instance once it meets `until` (`done`,
   * the default: it has ended; `tag:NAME`: it is in a state tagged NAME),
   * waiting at most `timeoutMs` on the server. Throws `408
   * ATS_ERR_WAIT_TIMEOUT` when the time passed, `412 ATS_ERR_WAIT_UNMET` when
   * the instance ended without meeting it. The request's own timeout is
   * stretched to the wait's.
   */
  async waitWorkflow(id: string, opts: RequestOptions & WaitOptions = {}): Promise<Workflow> {
    const { until, timeoutMs, ...rest } = opts;
    const w = waitQuery('until', { until, timeoutMs });
    return (await call<Workflow>(this.http, 'GET', `${workflowPath(id)}/wait?${w.qs}`, { ...rest, timeoutMs: w.timeoutMs, expect: WORKFLOW_FIELDS })).body;
  }

  /** `GET /v1/workflows/:id`: the instance, its live children and the event types it takes now (`accepts`). */
  async getWorkflow(id: string, opts: RequestOptions = {}): Promise<Workflow> {
    return (await call<Workflow>(this.http, 'GET', workflowPath(id), { ...opts, expect: WORKFLOW_FIELDS })).body;
  }

  /** One page of `GET /v1/workflows` (newest first); pass its `nextCursor` as `cursor` for the next. */
  async listWorkflows(query: WorkflowListQuery = {}, opts: RequestOptions = {}): Promise<WorkflowPage> {
    return (await call<WorkflowPage>(this.http, 'GET', withQuery('/v1/workflows', query), { ...opts, expectList: { name: 'workflows', fields: WORKFLOW_FIELDS } })).body;
  }

  /**
   * The instance's history, oldest first: all of it, read a page at a time
   * (`workflowEventsPage`); with `last`, only its newest `last` events (at
   * most 10,000), in one request.
   */
  async workflowEvents(id: string, opts: RequestOptions & { last?: number } = {}): Promise<WorkflowEvent[]> {
    const { last, ...request } = opts;
    if (last !== undefined) {
      return (await call<WorkflowEventPage>(this.http, 'GET', `${workflowPath(id)}/events?last=${encodeURIComponent(String(last))}`, { ...request, expectList: EVENT_LIST })).body.events;
    }
    const events: WorkflowEvent[] = [];
    for (let after: number | undefined, more = true; more;) {
      const page = await this.workflowEventsPage(id, { ...request, after });
      events.push(...page.events);
      // A server that answers the whole history at once sends no `next`.
      const next: unknown = page.next ?? undefined;
      if (next !== undefined && typeof next !== 'number') throw notTheApi(200, 'GET', `${workflowPath(id)}/events`, 'a next that is not a number', JSON.stringify(next));
      // A next that does not move on would page for ever.
      if (next !== undefined && !(next > (after ?? 0))) throw notTheApi(200, 'GET', `${workflowPath(id)}/events`, `next ${next} after ${after ?? 0}`, '');
      more = next !== undefined;
      after = next;
    }
    return events;
  }

  /**
   * `GET /v1/workflows/:id/events`: one page of the instance's history, oldest
   * first: at most `limit` events (the server's default 1,000, at most 10,000)
   * after seq `after` (0: from the start). Pass its `next` as `after` for the
   * next page; null at the end.
   */
  async workflowEventsPage(id: string, opts: RequestOptions & { after?: number; limit?: number } = {}): Promise<WorkflowEventPage> {
    const { after, limit, ...request } = opts;
    return (await call<WorkflowEventPage>(this.http, 'GET', withQuery(`${workflowPath(id)}/events`, { after, limit }), { ...request, expectList: EVENT_LIST })).body;
  }

  /**
   * `POST /v1/workflows/:id/events`: sends `event` to the instance's machine;
   * the instance after the step. One it does not take now throws an ApiError
   * `ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED` whose `accepts` names what it takes.
   * Like `submit`, a signal carries an Idempotency-Key (made here unless
   * given), so a try whose outcome is unknown is sent again and the machine
   * takes the event once. `idempotencyKey: false` sends none: then it is
   * never sent again after such a try (the machine could take the event
   * twice), and that failure is thrown.
   */
  async signalWorkflow(id: string, event: WorkflowSignal, opts: RequestOptions & { idempotencyKey?: string | false } = {}): Promise<Workflow> {
    const { idempotencyKey, ...rest } = opts;
    const key = idempotencyKey === undefined ? newIdempotencyKey() : idempotencyKey;
    return (await call<Workflow>(this.http, 'POST', `${workflowPath(id)}/events`, {
      ...rest, body: event, ...(key === false ? { retryUnknown: false } : { headers: { 'idempotency-key': key } }), expect: WORKFLOW_FIELDS,
    })).body;
  }

  /**
   * `POST /v1/workflows/:id/cancel`. A retry whose first try may have gone
   * through and that finds the instance cancelled answers the instance (not a 409).
   */
  async cancelWorkflow(id: string, opts: RequestOptions & { reason?: string | undefined } = {}): Promise<Workflow> {
    const { reason, ...rest } = opts;
    try {
      return (await call<Workflow>(this.http, 'POST', `${workflowPath(id)}/cancel`, { ...rest, body: reason === undefined ? {} : { reason }, expect: WORKFLOW_FIELDS })).body;
    } catch (err) {
      if (err instanceof ApiError && err.code === 'ATS_ERR_WORKFLOW_ENDED' && outcomeWasUnknown(err)) {
        const wf = await this.getWorkflow(id, rest);
        if (wf.status === 'cancelled') return wf;
      }
      throw err;
    }
  }

  /**
   * `DELETE /v1/workflows/:id`: a done, error or cancelled instance and its
   * history (its child jobs stay). An active one throws an ApiError
   * `ATS_ERR_WORKFLOW_ACTIVE`. A retry whose first try may have gone through
   * and that finds no instance counts as deleted.
   */
  async deleteWorkflow(id: string, opts: RequestOptions = {}): Promise<void> {
    try {
      await call<void>(this.http, 'DELETE', workflowPath(id), { ...opts, expectNoContent: true });
    } catch (err) {
      if (err instanceof ApiError && err.code === 'ATS_ERR_WORKFLOW_NOT_FOUND' && outcomeWasUnknown(err)) return;
      throw err;
    }
  }

  /** `GET /v1/workflows/:id/verify`: whether the instance's history replays to its stored state. */
  async verifyWorkflow(id: string, opts: RequestOptions = {}): Promise<WorkflowVerification> {
    return (await call<WorkflowVerification>(this.http, 'GET', `${workflowPath(id)}/verify`, opts)).body;
  }

  /**
   * `POST /v1/schedules`: the schedule as created. A retry whose first try
   * may have gone through and that is answered 409 ATS_ERR_SCHEDULE_EXISTS
   * reads the schedule: when it is the one asked for (the same cron, time
   * zone, options and job fields given), it is the answer; else the 409 is thrown.
   */
  async createSchedule(input: ScheduleRequest, opts: RequestOptions = {}): Promise<Schedule> {
    try {
      return (await call<Schedule>(this.http, 'POST', '/v1/schedules', { ...opts, body: input, expect: SCHEDULE_FIELDS })).body;
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'ATS_ERR_SCHEDULE_EXISTS' && outcomeWasUnknown(err))) throw err;
      const found = await this.getSchedule(input.name, opts).catch(unlessAborted(opts.signal));
      if (found && isScheduleOf(found, input)) return withoutHistory(found);
      throw err;
    }
  }

  /** `GET /v1/schedules`: every schedule, by name (at most 1,000). */
  async listSchedules(opts: RequestOptions = {}): Promise<Schedule[]> {
    return (await call<ScheduleList>(this.http, 'GET', '/v1/schedules', { ...opts, expectList: { name: 'schedules', fields: SCHEDULE_FIELDS } })).body.schedules;
  }

  /** `GET /v1/schedules/:name`: the schedule with its next run times (none while paused) and its recent ticks, newest first. */
  async getSchedule(name: string, opts: RequestOptions = {}): Promise<ScheduleDetail> {
    return (await call<ScheduleDetail>(this.http, 'GET', schedulePath(name), { ...opts, expect: SCHEDULE_FIELDS })).body;
  }

  /**
   * `PATCH /v1/schedules/:name`: changes the fields given (`{ paused: true }`
   * pauses, `{ paused: false }` resumes); job fields given replace the
   * template's. Retried as it is: the same patch twice leaves the same schedule.
   */
  async updateSchedule(name: string, patch: SchedulePatch, opts: RequestOptions = {}): Promise<Schedule> {
    return (await call<Schedule>(this.http, 'PATCH', schedulePath(name), { ...opts, body: patch, expect: SCHEDULE_FIELDS })).body;
  }

  /**
   * `DELETE /v1/schedules/:name` (the jobs it submitted stay). A retry whose
   * first try may have gone through and that finds no schedule counts as deleted.
   */
  async deleteSchedule(name: string, opts: RequestOptions = {}): Promise<void> {
    try {
      await call<void>(this.http, 'DELETE', schedulePath(name), { ...opts, expectNoContent: true });
    } catch (err) {
      if (err instanceof ApiError && err.code === 'ATS_ERR_SCHEDULE_NOT_FOUND' && outcomeWasUnknown(err)) return;
      throw err;
    }
  }

  /**
   * `PUT /v1/limits/:key`: sets the limit of a concurrency key (jobs submitted
   * with that `concurrencyKey` count against it), replacing any it had as a
   * whole. Retried as it is: the same limit twice leaves the same limit.
   */
  async putLimit(key: string, spec: LimitSpec, opts: RequestOptions = {}): Promise<Limit> {
    return (await call<Limit>(this.http, 'PUT', limitPath(key), { ...opts, body: spec, expect: LIMIT_FIELDS })).body;
  }

  /** `GET /v1/limits`: every limit, by key (at most 1,000), each with the attempts of its key running now. */
  async listLimits(opts: RequestOptions = {}): Promise<Limit[]> {
    return (await call<LimitList>(this.http, 'GET', '/v1/limits', { ...opts, expectList: { name: 'limits', fields: LIMIT_FIELDS } })).body.limits;
  }

  /** `GET /v1/limits/:key`: the key's limit and its attempts running now; 404 ATS_ERR_LIMIT_NOT_FOUND when it has none. */
  async getLimit(key: string, opts: RequestOptions = {}): Promise<Limit> {
    return (await call<Limit>(this.http, 'GET', limitPath(key), { ...opts, expect: LIMIT_FIELDS })).body;
  }

  /**
   * `DELETE /v1/limits/:key`: lifts the key's limit (its jobs keep their key).
   * A retry whose first try may have gone through and that finds no limit
   * counts as deleted.
   */
  async deleteLimit(key: string, opts: RequestOptions = {}): Promise<void> {
    try {
      await call<void>(this.http, 'DELETE', limitPath(key), { ...opts, expectNoContent: true });
    } catch (err) {
      if (err instanceof ApiError && err.code === 'ATS_ERR_LIMIT_NOT_FOUND' && outcomeWasUnknown(err)) return;
      throw err;
    }
  }

  /**
   * `POST /v1/keys` (admin scope): a new key of the caller's tenant, with its
   * secret `key` — shown in this answer only. Never sent again after a try
   * whose outcome is unknown: a second key would be made whose secret nobody
   * saw (list the keys to find out whether the first was made). 409
   * ATS_ERR_TOO_MANY_KEYS when the tenant has 1,000 keys not revoked.
   */
  async createKey(input: CreateKeyRequest, opts: RequestOptions = {}): Promise<CreatedApiKey> {
    return (await call<CreatedApiKey>(this.http, 'POST', '/v1/keys', { ...opts, body: input, retryUnknown: false })).body;
  }

  /** `GET /v1/keys` (admin scope): the caller's tenant's keys, revoked ones too, newest first (at most 1,000); never a secret. */
  async listKeys(opts: RequestOptions = {}): Promise<ApiKey[]> {
    return (await call<ApiKeyList>(this.http, 'GET', '/v1/keys', { ...opts, expectList: { name: 'keys', fields: ['id', 'tenant'] } })).body.keys;
  }

  /**
   * `GET /v1/keys/self` (read scope): who the client is: its key's id (null
   * when the server runs without keys), tenant and scopes, to tell before a
   * call whether the key may make it.
   */
  async whoAmI(opts: RequestOptions = {}): Promise<Caller> {
    return (await call<Caller>(this.http, 'GET', '/v1/keys/self', opts)).body;
  }

  /**
   * `DELETE /v1/keys/:id` (admin scope): revokes a key of the caller's tenant
   * (a revoked one again is a no-op, so retries are safe); 404
   * ATS_ERR_KEY_NOT_FOUND when the tenant has no key of this id.
   */
  async revokeKey(id: string, opts: RequestOptions = {}): Promise<void> {
    await call<void>(this.http, 'DELETE', keyPath(id), { ...opts, expectNoContent: true });
  }

  /** `GET /v1/audit` (admin scope): the caller's tenant's audit entries, newest first (`limit`: default 100, at most 1,000). */
  async listAudit(query: { limit?: number | undefined } = {}, opts: RequestOptions = {}): Promise<AuditEntry[]> {
    const qs = query.limit === undefined ? '' : `?limit=${encodeURIComponent(String(query.limit))}`;
    return (await call<AuditLog>(this.http, 'GET', `/v1/audit${qs}`, { ...opts, expectList: { name: 'entries', fields: ['action', 'target'] } })).body.entries;
  }

  /**
   * `GET /v1/stats`: job counts in total and per state, type and queue; and
   * `unserved`, the job types per queue with jobs waiting that no live worker
   * handles (absent from a server that does not read the worker registry).
   */
  async stats(opts: RequestOptions = {}): Promise<Stats> {
    return (await call<Stats>(this.http, 'GET', '/v1/stats', opts)).body;
  }

  /**
   * `GET /v1/workers`: every registered worker, by id (at most 1,000), each
   * with `live` (seen within the last 15 s). A server that does not read the
   * worker registry answers 404 ATS_ERR_ROUTE_NOT_FOUND.
   */
  async listWorkers(opts: RequestOptions = {}): Promise<Worker[]> {
    return (await call<WorkerList>(this.http, 'GET', '/v1/workers', { ...opts, expectList: { name: 'workers', fields: ['id'] } })).body.workers;
  }

  /** `GET /v1/insights`: what the advisor learned per job type and queue, and what it changes (docs/advisor.md). */
  async insights(opts: RequestOptions = {}): Promise<Insights> {
    return (await call<Insights>(this.http, 'GET', '/v1/insights', { ...opts, expect: ['mode'], expectList: { name: 'types', fields: ['type', 'queue'] } })).body;
  }

  /** `GET /v1/machine`: the job machine's states and edges. */
  async machine(opts: RequestOptions = {}): Promise<MachineView> {
    return (await call<MachineView>(this.http, 'GET', '/v1/machine', opts)).body;
  }

  /** `GET /healthz`: resolves when the server answers (alive: already while it starts, before its API serves). */
  async health(opts: RequestOptions = {}): Promise<void> {
    await call<unknown>(this.http, 'GET', '/healthz', opts);
  }

  /**
   * The transitions matching `filter`, live (or from `opts.cursor` on), as an
   * async iterator over the stream; a dropped connection is resumed from the
   * last cursor, so no event is missed or repeated. `break` or `close()` ends it.
   * A number option that is not finite, or out of its range (0 for a pause
   * or a timeout), is refused here (an ApiError `ATS_ERR_VALIDATION` naming
   * it): its pauses and timers would be 1 ms or none, a reconnect loop that
   * never rests.
   */
  watch(filter: StreamFilter = {}, opts: WatchOptions = {}): Watch {
    // A keep-alive or connect timeout of 0 drops every connection at once; at most 0 queued events, nothing is read.
    for (const name of ['keepAliveMs', 'connectTimeoutMs', 'maxQueued'] as const) option('watch', name, opts[name], 'positive');
    // 0 stops the server's periodic stats.
    statsEvery(opts.statsEveryMs);
    // Reconnect pauses of 0 reconnect without rest, for ever.
    const reconnect = pauses('watch', 'reconnect', opts.reconnect, RECONNECT_MS, 'positive');
    const keyRefusal = async (): Promise<ApiError | null> => {
      try {
        await call<unknown>({ ...this.http, retries: 0 }, 'GET', '/v1/machine', {});
        return null;
      } catch (error) {
        return error instanceof ApiError && (error.status === 401 || error.status === 403) ? error : null;
      }
    };
    return watch({ baseUrl: this.url, headers: this.http.headers, webSocket: () => resolveWebSocket(this.WebSocket), keyRefusal }, filter, { ...opts, reconnect });
  }
}

/**
 * A read-back's failure as null (the call then throws its own failure), but
 * an abort as the signal's reason: an aborted call rejects with it.
 */
const unlessAborted = (signal: AbortSignal | undefined) => (): null => {
  if (signal?.aborted) throw signal.reason;
  return null;
};

/** The job view of a job detail (without its history). */
function withoutEvents(job: JobDetail): JobView {
  const { events: _events, ...view } = job;
  return view;
}

/** The schedule of a schedule detail (without its next runs and ticks). */
function withoutHistory(s: ScheduleDetail): Schedule {
  const { nextRuns: _nextRuns, ticks: _ticks, ...schedule } = s;
  return schedule;
}

/** JSON text with object keys sorted, to compare two values. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v as object).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** Is `s` what `input` asks for (its defaults for what it leaves out; the job fields it gives)? */
function isScheduleOf(s: Schedule, input: ScheduleRequest): boolean {
  const same = (a: unknown, b: unknown) => canonical(a) === canonical(b);
  const given = (a: unknown, b: unknown) => b === undefined || same(a, b);
  const stored = new Map(Object.entries(s.job.backoff));
  const backoffGiven = input.backoff === undefined || Object.entries(input.backoff).every(([k, v]) => stored.has(k) && same(stored.get(k), v));
  return s.cron === input.cron && s.timezone === (input.timezone ?? 'UTC') && s.overlap === (input.overlap ?? 'skip')
    && s.catchUp === (input.catchUp ?? 'none') && s.paused === (input.paused ?? false)
    && s.job.type === input.type && same(s.job.payload, input.payload ?? null) && given(s.job.queue, input.queue)
    && given(s.job.maxAttempts, input.maxAttempts) && given(s.job.timeoutMs, input.timeoutMs) && given(s.job.priority, input.priority)
    && backoffGiven;
}

export function createClient(options: ClientOptions): AtsClient {
  return new AtsClient(options);
}

export type Client = AtsClient;
