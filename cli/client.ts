/**
 * A small client of the REST API (v1) for the `ats` commands: Node's global
 * fetch, JSON in and out, and two kinds of failure a command reports
 * differently — the server answered with an error (`ApiError`, its
 * `{code, message}`), or no server answered at all (`UnreachableError`).
 */

import { JOB_STATES, TERMINAL_STATES, type JobState } from '../machines/job.machine.js';

export { JOB_STATES, TERMINAL_STATES };

/** A state the job leaves only by REDRIVE (from the machine, not a list kept here). */
export const isTerminal = (state: string): boolean => (TERMINAL_STATES as readonly string[]).includes(state as JobState);

/** A job as `GET /v1/jobs/:id` and the list show it (the fields the CLI reads). */
export interface Job {
  id: string;
  type: string;
  queue: string;
  state: string;
  attempt: number;
  maxAttempts: number;
  payload: unknown;
  result: unknown;
  lastError: { message: string; name?: string; retryable: boolean; attempt: number } | null;
  cancelReason?: string | null;
  runAt: string;
  createdAt: string;
  updatedAt: string;
  version?: number;
  allowed?: string[];
}

/** One entry of a job's history. */
export interface JobEvent {
  seq: number;
  type: string;
  from: string | null;
  to: string;
  at: string;
  data: unknown;
}

export interface JobDetail extends Job {
  events: JobEvent[];
}

export interface JobPage {
  jobs: Job[];
  nextCursor: string | null;
}

/** The body of `POST /v1/jobs`. */
export interface SubmitRequest {
  type: string;
  payload: unknown;
  queue?: string;
  runAt?: string;
  maxAttempts?: number;
  timeoutMs?: number;
  priority?: number;
}

/** One item of `POST /v1/jobs/batch`: a submit body with its own Idempotency-Key. */
export interface BatchItem extends SubmitRequest {
  idempotencyKey?: string;
}

/** One answer of `POST /v1/jobs/batch`: 201/200 with the job's id and state, or the item's 4xx. */
export interface BatchResult {
  status: number;
  id?: string;
  state?: string;
  code?: string;
  message?: string;
}

/** Most items one `POST /v1/jobs/batch` takes (the server's limit). */
export { MAX_BATCH } from '../server/schemas.js';

export interface ListQuery {
  state?: string;
  type?: string;
  queue?: string;
  limit?: number;
  cursor?: string;
}

/** The server answered with an error: `{code, message}` (or a non-JSON body, code `HTTP_<status>`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** No answer from the server: refused, unknown host, reset, timed out. */
export class UnreachableError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot reach the ats server at ${url} (${reason})`, options);
    this.name = 'UnreachableError';
  }
}

export interface ClientOptions {
  /** Per-request timeout. @defaultValue 30000 */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** The reason a fetch failed without a response, e.g. `ECONNREFUSED`. */
export function networkReason(err: unknown): string {
  const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return 'timed out';
  // fetch refuses some ports outright (1, 7, 6000, ... — the Fetch standard's "bad ports").
  if (e?.cause?.message === 'bad port') return 'fetch refuses to connect to this port';
  return e?.cause?.code ?? e?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}

export class AtsClient {
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  /** `baseUrl` like `http://localhost:3000` (a trailing slash is dropped). */
  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** `POST /v1/jobs`; `created` is false when an Idempotency-Key returned an existing job. */
  async submit(body: SubmitRequest, idempotencyKey?: string): Promise<{ job: Job; created: boolean }> {
    const headers: Record<string, string> = idempotencyKey ? { 'idempotency-key': idempotencyKey } : {};
    const { status, body: job } = await this.request<Job>('POST', '/v1/jobs', body, headers);
    return { job, created: status === 201 };
  }

  /** `POST /v1/jobs/batch`: up to MAX_BATCH items, one result per item in order (an item's 4xx is a result, not a throw). */
  async submitBatch(jobs: readonly BatchItem[]): Promise<BatchResult[]> {
    return (await this.request<{ results: BatchResult[] }>('POST', '/v1/jobs/batch', { jobs })).body.results;
  }

  async get(id: string): Promise<JobDetail> {
    return (await this.request<JobDetail>('GET', `/v1/jobs/${encodeURIComponent(id)}`)).body;
  }

  async list(query: ListQuery = {}): Promise<JobPage> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') params.set(k, String(v));
    const qs = params.size ? `?${params}` : '';
    return (await this.request<JobPage>('GET', `/v1/jobs${qs}`)).body;
  }

  async cancel(id: string, reason?: string): Promise<Job> {
    const body = reason === undefined ? undefined : { reason };
    return (await this.request<Job>('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`, body)).body;
  }

  async redrive(id: string): Promise<Job> {
    return (await this.request<Job>('POST', `/v1/jobs/${encodeURIComponent(id)}/redrive`)).body;
  }

  async health(): Promise<void> {
    await this.request('GET', '/healthz');
  }

  private async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
    const init: RequestInit = { method, headers: { accept: 'application/json', ...headers }, signal: AbortSignal.timeout(this.timeoutMs) };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
    let res: Response;
    try {
      res = await this.fetchImpl(this.baseUrl + path, init);
    } catch (err) {
      throw new UnreachableError(this.baseUrl, networkReason(err), { cause: err });
    }
    const text = await res.text();
    const parsed = parseJson(text);
    if (!res.ok) throw toApiError(res.status, parsed, text);
    if (parsed === undefined) throw new ApiError(res.status, `HTTP_${res.status}`, `expected JSON from ${method} ${path}, got: ${text.slice(0, 200)}`);
    return { status: res.status, body: parsed as T };
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function toApiError(status: number, parsed: unknown, text: string): ApiError {
  const e = parsed as { code?: unknown; message?: unknown } | undefined;
  if (e && typeof e.code === 'string') return new ApiError(status, e.code, typeof e.message === 'string' ? e.message : '');
  return new ApiError(status, `HTTP_${status}`, text.slice(0, 200) || `HTTP ${status}`);
}
