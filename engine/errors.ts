/**
 * The one registry of error codes. Every error the API answers is
 * `{code, message}` with a code from here; tests check each key equals its code.
 */

export interface ErrorDef {
  readonly code: string;
  readonly status: number;
  readonly message: string;
}

const def = <C extends string>(code: C, status: number, message: string) =>
  Object.freeze({ code, status, message }) as ErrorDef & { code: C };

export const ERRORS = Object.freeze({
  ATS_ERR_VALIDATION: def('ATS_ERR_VALIDATION', 400, 'The request is not valid'),
  ATS_ERR_MALFORMED_JSON: def('ATS_ERR_MALFORMED_JSON', 400, 'The request body is not valid JSON'),
  ATS_ERR_UNSUPPORTED_MEDIA_TYPE: def('ATS_ERR_UNSUPPORTED_MEDIA_TYPE', 415, 'The request body must be application/json'),
  ATS_ERR_PAYLOAD_TOO_LARGE: def('ATS_ERR_PAYLOAD_TOO_LARGE', 413, 'The request body is larger than the limit'),
  ATS_ERR_INVALID_PAYLOAD: def('ATS_ERR_INVALID_PAYLOAD', 400, 'The payload does not fit the schema of its job type'),
  ATS_ERR_BAD_CURSOR: def('ATS_ERR_BAD_CURSOR', 400, 'The cursor is not one this server issued'),
  ATS_ERR_UNKNOWN_JOB_TYPE: def('ATS_ERR_UNKNOWN_JOB_TYPE', 422, 'No handler is registered for this job type'),
  ATS_ERR_JOB_NOT_FOUND: def('ATS_ERR_JOB_NOT_FOUND', 404, 'No job has this id'),
  ATS_ERR_SCHEDULE_NOT_FOUND: def('ATS_ERR_SCHEDULE_NOT_FOUND', 404, 'No schedule has this name'),
  ATS_ERR_SCHEDULE_EXISTS: def('ATS_ERR_SCHEDULE_EXISTS', 409, 'A schedule of this name exists'),
  ATS_ERR_TOO_MANY_SCHEDULES: def('ATS_ERR_TOO_MANY_SCHEDULES', 409, 'The tenant has as many schedules as it may; delete one first'),
  ATS_ERR_TOO_MANY_LIMITS: def('ATS_ERR_TOO_MANY_LIMITS', 409, 'The tenant has as many limits as it may; delete one first'),
  ATS_ERR_LIMIT_NOT_FOUND: def('ATS_ERR_LIMIT_NOT_FOUND', 404, 'No limit is set on this key'),
  ATS_ERR_INVALID_CRON: def('ATS_ERR_INVALID_CRON', 400, 'The cron expression is not valid'),
  ATS_ERR_INVALID_TIMEZONE: def('ATS_ERR_INVALID_TIMEZONE', 400, 'The time zone is not an IANA time zone'),
  ATS_ERR_ROUTE_NOT_FOUND: def('ATS_ERR_ROUTE_NOT_FOUND', 404, 'No such route'),
  ATS_ERR_METHOD_NOT_ALLOWED: def('ATS_ERR_METHOD_NOT_ALLOWED', 405, 'Method not allowed'),
  ATS_ERR_TRANSITION_NOT_ALLOWED: def('ATS_ERR_TRANSITION_NOT_ALLOWED', 409, 'The job machine does not accept this event in the job\'s state'),
  ATS_ERR_IDEMPOTENCY_CONFLICT: def('ATS_ERR_IDEMPOTENCY_CONFLICT', 409, 'This Idempotency-Key was used with a different request body'),
  ATS_ERR_UNKNOWN_WORKFLOW: def('ATS_ERR_UNKNOWN_WORKFLOW', 422, 'No workflow of this name is registered'),
  ATS_ERR_INVALID_WORKFLOW_INPUT: def('ATS_ERR_INVALID_WORKFLOW_INPUT', 400, 'The workflow refused its input'),
  ATS_ERR_WORKFLOW_NOT_FOUND: def('ATS_ERR_WORKFLOW_NOT_FOUND', 404, 'No workflow instance has this id'),
  ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED: def('ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED', 409, 'The workflow does not take this event in its current state'),
  ATS_ERR_WORKFLOW_ENDED: def('ATS_ERR_WORKFLOW_ENDED', 409, 'The workflow instance has ended'),
  ATS_ERR_WORKFLOW_ACTIVE: def('ATS_ERR_WORKFLOW_ACTIVE', 409, 'Only an ended workflow instance (done, error or cancelled) can be deleted; cancel it first'),
  ATS_ERR_WORKFLOW_DEFINITION_MISSING: def(
    'ATS_ERR_WORKFLOW_DEFINITION_MISSING', 503, 'This server has not registered the workflow definition version the instance runs; retry on one that has',
  ),
  ATS_ERR_WAIT_TIMEOUT: def('ATS_ERR_WAIT_TIMEOUT', 408, 'The condition waited for was not met within timeoutMs'),
  ATS_ERR_WAIT_UNMET: def('ATS_ERR_WAIT_UNMET', 412, 'The workflow instance ended without meeting the condition waited for'),
  ATS_ERR_JOB_MACHINE_UNKNOWN: def(
    'ATS_ERR_JOB_MACHINE_UNKNOWN', 503, 'A job machine version this server does not run (a newer deployment) wrote the job; retry on a server that runs it',
  ),
  ATS_ERR_QUEUE_LIMIT: def('ATS_ERR_QUEUE_LIMIT', 409, 'As many queues as ATS_MAX_QUEUES allows are in use: a job can name only one of them'),
  ATS_ERR_JOB_LIVE: def('ATS_ERR_JOB_LIVE', 409, 'Only a done, dead or cancelled job can be deleted'),
  ATS_ERR_JOB_AWAITED: def('ATS_ERR_JOB_AWAITED', 409, 'A workflow instance still waits on this job\'s end; it can be deleted or redriven once the instance has taken it'),
  ATS_ERR_CONCURRENT_UPDATE: def('ATS_ERR_CONCURRENT_UPDATE', 409, 'What the request changes was changed by others too many times while it tried; nothing was written: try again'),
  ATS_ERR_REQUEST_TIMEOUT: def('ATS_ERR_REQUEST_TIMEOUT', 408, 'The request took too long to arrive'),
  ATS_ERR_HEADERS_TOO_LARGE: def('ATS_ERR_HEADERS_TOO_LARGE', 431, 'The request headers are larger than the limit'),
  ATS_ERR_EXPECTATION_FAILED: def('ATS_ERR_EXPECTATION_FAILED', 417, 'The server meets no expectation of the Expect header but 100-continue'),
  ATS_ERR_RATE_LIMITED: def('ATS_ERR_RATE_LIMITED', 429, 'Too many requests'),
  ATS_ERR_UNAUTHORIZED: def('ATS_ERR_UNAUTHORIZED', 401, 'Send a valid API key: Authorization: Bearer <key>'),
  ATS_ERR_FORBIDDEN: def('ATS_ERR_FORBIDDEN', 403, 'The API key lacks the scope this route needs'),
  ATS_ERR_KEY_NOT_FOUND: def('ATS_ERR_KEY_NOT_FOUND', 404, 'No API key has this id'),
  ATS_ERR_TOO_MANY_KEYS: def('ATS_ERR_TOO_MANY_KEYS', 409, 'The tenant has as many API keys that are not revoked as it may; revoke one first'),
  ATS_ERR_HOST_NOT_ALLOWED: def('ATS_ERR_HOST_NOT_ALLOWED', 421, 'This server does not answer for the Host the request names'),
  ATS_ERR_ORIGIN_NOT_ALLOWED: def('ATS_ERR_ORIGIN_NOT_ALLOWED', 403, 'Requests from this Origin are not allowed'),
  ATS_ERR_TOO_MANY_STREAMS: def('ATS_ERR_TOO_MANY_STREAMS', 429, 'Too many stream connections are open for this key or address'),
  ATS_ERR_TOO_MANY_WAITS: def('ATS_ERR_TOO_MANY_WAITS', 429, 'Too many workflow waits are open for this key, tenant or server'),
  ATS_ERR_NOT_READY: def('ATS_ERR_NOT_READY', 503, 'A dependency (database or log) is not reachable'),
  ATS_ERR_CONFIG: def('ATS_ERR_CONFIG', 500, 'The configuration is not valid'),
  ATS_ERR_STORE_UNAVAILABLE: def('ATS_ERR_STORE_UNAVAILABLE', 503, 'The database is not reachable'),
  ATS_ERR_INTERNAL: def('ATS_ERR_INTERNAL', 500, 'Internal error'),
});

export type ErrorCode = keyof typeof ERRORS;

/**
 * What an ATS_ERR_STORE_UNAVAILABLE may tell its caller of the outage, besides
 * the registry's message (unreachable): a server taking no writes (a failover,
 * a read-only file) or a disk that is full, which wait on an operator rather
 * than on a network. Fixed texts: no path, address or SQL reaches a client.
 */
export const STORE_UNAVAILABLE_WHY = Object.freeze({
  readOnly: 'The database takes no writes now: it is read only',
  full: 'The database cannot write: its disk is full',
});
export type StoreUnavailableWhy = keyof typeof STORE_UNAVAILABLE_WHY;
const STORE_UNAVAILABLE_TEXTS: ReadonlySet<string> = new Set(Object.values(STORE_UNAVAILABLE_WHY));

/** Whether `message` of an ATS_ERR_STORE_UNAVAILABLE is one of STORE_UNAVAILABLE_WHY's, which a caller is told. */
export const isStoreUnavailableWhy = (message: string): boolean => STORE_UNAVAILABLE_TEXTS.has(message);

/** An error with a registry code; the API turns it into `{code, message}`. */
export class AtsError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details?: unknown;
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; details?: unknown }) {
    super(message ?? ERRORS[code].message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'AtsError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = options?.details;
  }
}

export const isAtsError = (e: unknown): e is AtsError => e instanceof AtsError;

/**
 * Thrown by a handler to fail its job without retries (straight to `dead`),
 * like BullMQ's UnrecoverableError and Temporal's nonRetryable.
 */
export class NonRetryableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NonRetryableError';
  }
}

/**
 * `text` cut to at most `max` UTF-16 units, never between the two halves of
 * a surrogate pair: a character the cut would halve is left out whole. What
 * an error message quotes of a request is cut with this, so an answer never
 * carries a lone surrogate (JSON would send it as an escape of no character).
 */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text;
  const last = text.charCodeAt(max - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

/** `text` as a message quotes it: cut as `cutText` does past `max` UTF-16 units, then `...` to say so. */
export function quoteCut(text: string, max: number): string {
  return text.length > max ? `${cutText(text, max)}...` : text;
}
