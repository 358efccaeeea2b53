/**
 * One REST call with a per-attempt timeout and retries: a timeout, a network
 * error or a 503 is tried again after an exponential, jittered pause (a 503's
 * `Retry-After`, seconds or an HTTP date, is honoured up to the longest pause). What the caller must
 * know to retry safely — that the request is idempotent — is the caller's
 * business: `retry: false` sends it once, `retryUnknown: false` stops at the
 * first attempt that may have taken effect. Such an attempt — a timeout, a
 * lost connection, or a 503 to a request that changes something (the server
 * may have lost its database during the commit) — marks the errors that follow
 * (`outcomeWasUnknown`). A header value fetch would refuse to send is
 * refused before the first attempt (`unsendableHeader`), never retried.
 */
import { ApiError, networkReason, toApiError, UnreachableError } from './errors.js';

export interface HttpOptions {
  /** The server, without a trailing slash. */
  baseUrl: string;
  headers: Record<string, string>;
  fetch: typeof fetch;
  timeoutMs: number;
  retries: number;
  retryDelayMs: { min: number; max: number };
  /** Called before each retry of any call, after the call's own `onRetry`. */
  onRetry?: ((error: ApiError, attempt: number) => void) | undefined;
}

export interface CallOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** Try again on timeouts, network errors and 503s. @defaultValue true */
  retry?: boolean;
  /**
   * Try again after an attempt whose outcome is unknown (it may have taken
   * effect); when false, such a failure is thrown at once. @defaultValue true
   */
  retryUnknown?: boolean;
  /** Aborts the call, retries included (rejects with the signal's reason). */
  signal?: AbortSignal | undefined;
  /** Called before each retry with the failure that caused it (tests, logging). */
  onRetry?: ((error: ApiError, attempt: number) => void) | undefined;
  /** This call's attempt timeout, when longer than the client's (a long-poll). @defaultValue the client's `timeoutMs` */
  timeoutMs?: number | undefined;
  /** Fields a success's JSON object must hold as strings (an answer without them is not the server's: an error). @defaultValue none */
  expect?: readonly string[] | undefined;
  /**
   * A list a success's JSON object must hold (`jobs` of a page), each item an object holding `fields` as strings
   * (an answer without it is not the server's: an error). @defaultValue none
   */
  expectList?: { name: string; fields: readonly string[] } | undefined;
  /** A success must be 204 without a body, as the API answers a delete (any other is not the server's: an error). @defaultValue false */
  expectNoContent?: boolean | undefined;
}

export interface Answer<T> {
  status: number;
  body: T;
}

/**
 * The longest delay a timer holds (about 24.8 days): a longer one fires at once. The engine's
 * MAX_TIMER_MS (engine/error-backoff.ts) again: the client imports no server module at run time.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * `ms` as a timer's delay: a longer duration (a month, Infinity) waits the longest a timer holds, not 1 ms;
 * a fraction, the next whole ms (`AbortSignal.timeout` takes whole ms only, and throws on a fraction).
 */
export const timerMs = (ms: number): number => Math.min(Math.ceil(ms), MAX_TIMER_MS);

/** Resolves after `ms`; rejects with the signal's reason once it aborts. */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, timerMs(ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** Full jitter: a random pause up to min·2^n, capped at max. */
export const backoffMs = (n: number, { min, max }: { min: number; max: number }): number =>
  Math.round(Math.random() * Math.min(max, min * 2 ** n));

/** Errors of a call after (or of) an attempt whose outcome is unknown (it may have gone through). */
const unknownBefore = new WeakSet<ApiError>();

/**
 * Did the attempt that threw `err`, or an earlier one of its call, time out,
 * lose its connection, or get a 503 (or a proxy's 502 or 504) to a change (so
 * it may have taken effect)?
 */
export const outcomeWasUnknown = (err: ApiError): boolean => unknownBefore.has(err);

/**
 * A 502 or 504 that is not the server's answer (the server sends neither; its
 * errors carry a code of its registry, `ATS_ERR_...`): a proxy in front of it
 * lost the connection to it or gave up waiting — whether its page is HTML or
 * JSON with a code of the proxy's own (a fastify proxy's
 * `FST_REPLY_FROM_GATEWAY_TIMEOUT`). Like a lost connection: tried again, and
 * its outcome unknown for a change.
 */
const fromProxy = (err: ApiError): boolean => (err.status === 502 || err.status === 504) && !err.code.startsWith('ATS_ERR_');

/** Network failures that happen before a request is sent: its outcome is known (nothing happened). */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'fetch refuses to connect to this port']);


/**
 * A signal aborted by `signal` or after `ms` (AbortSignal.any is missing in
 * older browsers), and a `done()` that detaches it from `signal`.
 */
function withTimeout(ms: number, signal: AbortSignal | undefined): { signal: AbortSignal; done(): void } {
  const timeout = AbortSignal.timeout(timerMs(ms));
  if (!signal) return { signal: timeout, done: () => undefined };
  const both = new AbortController();
  const onAbort = () => both.abort(signal.reason);
  if (signal.aborted) both.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  timeout.addEventListener('abort', () => both.abort(timeout.reason), { once: true });
  return { signal: both.signal, done: () => signal.removeEventListener('abort', onAbort) };
}

/** `authorization` → `Authorization`, `idempotency-key` → `Idempotency-Key`. */
const headerName = (name: string): string => name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());

/**
 * The first header of `headers` whose value fetch would refuse to send (it
 * throws before sending: a character beyond U+00FF, or a control character
 * other than a tab: Node's fetch refuses DEL and U+0001 too), as an
 * ApiError naming the header and the character, never the value (it may be a
 * secret); null when every value can be sent.
 */
export function unsendableHeader(headers: Record<string, string>): ApiError | null {
  for (const [name, value] of Object.entries(headers)) {
    // fetch strips leading and trailing tabs, spaces, CR and LF before it checks (a key read from a file ends in one).
    const bad = /[^\t\u0020-\u007e\u0080-\u00ff]/u.exec(value.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, ''));
    if (!bad) continue;
    const cp = `U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    const what = name === 'authorization' ? 'Authorization header (the apiKey)' : `${headerName(name)} header`;
    return new ApiError(0, 'ATS_ERR_VALIDATION',
      `the ${what} cannot be sent: it has ${cp}, and a header value takes only characters up to U+00FF other than control characters (a tab aside); nothing was sent`);
  }
  return null;
}

export async function call<T>(http: HttpOptions, method: string, path: string, opts: CallOptions = {}): Promise<Answer<T>> {
  // fetch would throw before sending anything: not a network failure, and never retried.
  const unsendable = unsendableHeader({ ...http.headers, ...opts.headers });
  if (unsendable) throw unsendable;
  const body = opts.body === undefined ? undefined : bodyText(opts.body);
  const retries = opts.retry === false ? 0 : http.retries;
  const changes = method !== 'GET' && method !== 'HEAD';
  let unknown = 0;
  for (let attempt = 0; ; attempt++) {
    let failure: ApiError;
    let pause = backoffMs(attempt, http.retryDelayMs);
    try {
      const r = await once<T>(http, method, path, opts, body);
      return r;
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (!(err instanceof ApiError)) throw err;
      const retryable = err instanceof UnreachableError || err.status === 503 || fromProxy(err);
      // A 503 can come after the commit (the connection to the database lost during COMMIT); a proxy's 502 or 504
      // after the request reached the server (it lost the connection to it, or gave up waiting for its answer).
      if (err instanceof UnreachableError ? !NOT_SENT.has(err.reason) : retryable && changes) unknown++;
      if (unknown > 0) unknownBefore.add(err);
      if (!retryable || (unknown > 0 && opts.retryUnknown === false)) throw err;
      failure = err;
      if (err.status === 503 && err.retryAfterMs !== undefined) pause = Math.min(http.retryDelayMs.max, Math.max(pause, err.retryAfterMs));
    }
    if (attempt >= retries) throw failure;
    opts.onRetry?.(failure, attempt + 1);
    http.onRetry?.(failure, attempt + 1);
    await sleep(pause, opts.signal);
  }
}

/**
 * A request body as JSON text. JSON.stringify writes NaN and ±Infinity as
 * null: sent, the server would store null where the caller gave a number
 * (it refuses 1e400 in a body itself), so such a body is refused, its place
 * named (`payload.order.amount`), before anything is sent.
 */
export function bodyText(body: unknown): string {
  let bad = false;
  const text = JSON.stringify(body, (_key: string, value: unknown) => {
    if (!bad && typeof value === 'number' && !Number.isFinite(value)) bad = true;
    return value;
  });
  if (bad) throw unsendable(firstNonFinite(body) ?? { at: '', value: Number.NaN });
  return text;
}

/** A number JSON cannot carry, and where in the body it is (JavaScript's notation, `''` for the body itself). */
export interface NonFinite {
  at: string;
  value: number;
}

/** The error of a body holding `found` (`prefix`: where the body is, e.g. `jobs[3]` of a submitMany). */
export function unsendable(found: NonFinite, prefix = ''): ApiError {
  const at = `${prefix}${prefix && found.at && !found.at.startsWith('[') ? '.' : ''}${found.at}`;
  const where = at === '' ? 'the request body is' : `the request body holds, at ${at},`;
  return new ApiError(0, 'ATS_ERR_VALIDATION', `${where} ${String(found.value)}, which JSON cannot carry (JSON.stringify would send null); nothing was sent`);
}

/**
 * The first number JSON cannot carry (NaN, ±Infinity) in `value` as
 * JSON.stringify walks it (what `toJSON` gives, own enumerable keys, arrays
 * in order, a hole as null), or null; its place in JavaScript's notation
 * (`a["b c"][1].d`, `''` for `value` itself). A cycle is passed over:
 * JSON.stringify refuses it. The place is written only once one is found.
 */
export function firstNonFinite(value: unknown): NonFinite | null {
  const path: Array<string | number> = [];
  const found = walk(value, '', path, []);
  if (found === null) return null;
  const at = path.reverse().map((p, i) => (typeof p === 'number' ? `[${p}]` : /^[A-Za-z_$][\w$]*$/.test(p) ? `${i > 0 ? '.' : ''}${p}` : `[${JSON.stringify(p)}]`)).join('');
  return { at, value: found };
}

/** The non-finite number found under `value`, its path pushed onto `path` innermost first, or null. */
function walk(value: unknown, key: string, path: Array<string | number>, ancestors: object[]): number | null {
  let v = value;
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') v = (v as { toJSON(k: string): unknown }).toJSON(key);
  if (v instanceof Number) v = v.valueOf();
  if (typeof v === 'number') return Number.isFinite(v) ? null : v;
  if (v === null || typeof v !== 'object' || ancestors.includes(v)) return null;
  ancestors.push(v);
  try {
    if (Array.isArray(v)) {
      // Indexes, not forEach or map: those pass a hole over, which JSON.stringify writes as null.
      for (let i = 0; i < v.length; i++) {
        const found = walk(v[i], String(i), path, ancestors);
        if (found !== null) {
          path.push(i);
          return found;
        }
      }
      return null;
    }
    for (const k of Object.keys(v)) {
      const found = walk((v as Record<string, unknown>)[k], k, path, ancestors);
      if (found !== null) {
        path.push(k);
        return found;
      }
    }
    return null;
  } finally {
    ancestors.pop();
  }
}

async function once<T>(http: HttpOptions, method: string, path: string, opts: CallOptions, sent: string | undefined): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = { accept: 'application/json', ...http.headers, ...opts.headers };
  const abort = withTimeout(Math.max(http.timeoutMs, opts.timeoutMs ?? 0), opts.signal);
  // fetch follows a 301, 302 or 303 to a change as a GET (and drops its body): a request that changes
  // something is not followed, so it cannot come back as the answer of another call, and nothing done.
  const changes = method !== 'GET' && method !== 'HEAD';
  const init: RequestInit = { method, headers, signal: abort.signal, ...(changes ? { redirect: 'manual' as const } : {}) };
  if (sent !== undefined) {
    init.body = sent;
    headers['content-type'] = 'application/json';
  }
  let res: Response;
  let text: string;
  const url = http.baseUrl + path;
  try {
    res = await http.fetch(url, init);
    text = await res.text();
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw new UnreachableError(http.baseUrl, networkReason(err), { cause: err });
  } finally {
    abort.done();
  }
  if (isRedirect(res)) throw redirected(res, method, path);
  if (!res.ok) {
    throw toApiError(res.status, text, resolved(res.headers.get('location'), url), res.headers.get('retry-after'));
  }
  if (opts.expectNoContent && res.status !== 204) {
    throw new ApiError(res.status, `HTTP_${res.status}`, `${method} ${path} answered ${res.status}, where the API answers 204 without a body (not an ats server?): ${text.slice(0, 200)}`);
  }
  if (res.status === 204) return { status: res.status, body: undefined as T };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(res.status, `HTTP_${res.status}`, `expected JSON from ${method} ${path}, got: ${text.slice(0, 200)}`);
  }
  const problem = shapeProblem(body, opts);
  if (problem !== undefined) {
    throw notTheApi(res.status, method, path, problem, text);
  }
  return { status: res.status, body: body as T };
}

/** A success whose answer is not the API's (`problem`: what it answered, "without a list \"jobs\""): an error, status and `HTTP_<status>`. */
export function notTheApi(status: number, method: string, path: string, problem: string, text: string): ApiError {
  return new ApiError(status, `HTTP_${status}`, `${method} ${path} answered ${problem} (not an ats server?)${text === '' ? '' : `: ${text.slice(0, 200)}`}`);
}

/** The field of `value` that is not a string as `fields` asks (`without a string "id"`), or undefined when none. */
function missingString(value: unknown, fields: readonly string[]): string | undefined {
  const missing = fields.find((f) => !(value !== null && typeof value === 'object' && typeof (value as Record<string, unknown>)[f] === 'string'));
  return missing === undefined ? undefined : `without a string "${missing}"`;
}

/** What a success's JSON lacks of what `expect` and `expectList` ask, or undefined when it has it all. */
function shapeProblem(body: unknown, opts: CallOptions): string | undefined {
  const missing = missingString(body, opts.expect ?? []);
  if (missing !== undefined || !opts.expectList) return missing;
  const { name, fields } = opts.expectList;
  const list = body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>)[name] : undefined;
  if (!Array.isArray(list)) return `without a list "${name}"`;
  for (const [i, item] of list.entries()) {
    const lacks = missingString(item, fields);
    if (lacks !== undefined) return `a "${name}" whose item ${i} is ${lacks}`;
  }
  return undefined;
}

/**
 * A Location as the URL it names: the server gives a relative reference (`workflows/<id>`), which
 * resolves against the URL the request was sent to, under the client's path prefix too.
 * One that is no URL reference is kept as it came.
 */
function resolved(location: string | null, requestUrl: string): string | null {
  if (location === null) return null;
  try {
    return new URL(location, requestUrl).href;
  } catch {
    return location;
  }
}

/** A redirect not followed: its 3xx (in Node), or the opaque answer a browser gives in its place (status 0). */
const isRedirect = (res: Response): boolean => res.type === 'opaqueredirect' || (res.status >= 300 && res.status < 400);

/** A change the server redirected: not sent on (thrown at once, not retried), with where it was sent. */
function redirected(res: Response, method: string, path: string): ApiError {
  const location = res.headers.get('location');
  const where = location ? ` to ${location}` : '';
  return new ApiError(res.status, `HTTP_${res.status}`, `${method} ${path} was redirected${where}, and a change is not sent on: give the client the URL it moved to`);
}
