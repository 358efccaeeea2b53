/**
 * A validated submit body to a `JobSpec`: the checks JSON Schema cannot say
 * (cross-field bounds, payload depth, registered types), the payload schema
 * of the job's type when its handler declares one, the server's defaults, and
 * an Idempotency-Key outside the server's own (`ats:`, see RESERVED_KEY_PREFIX).
 * Throws `AtsError`; runs before anything is written.
 */
import { AtsError } from '../engine/errors.js';
import type { DefaultedField, JobSpec } from '../engine/ports.js';
import type { BackoffPolicy } from '../machines/backoff.js';
import { jsonValueFault } from '../machines/json-integers.js';
import type { SubmitDefaults } from './deps.js';
import { MAX_EPOCH_MS, type BackoffInput, type SubmitBody } from './schemas.js';

export interface SpecRules {
  defaults: SubmitDefaults;
  maxPayloadDepth: number;
  knownTypes?: () => readonly string[];
  /** null when the payload fits its type's schema (or the type has none), else the first problem (`/to must be string`). */
  checkPayload?: (type: string, payload: unknown) => string | null;
}

/** `where` names the body in error messages (`body/jobs/3` for a batch item). */
export function toJobSpec(body: SubmitBody, idempotencyKey: string | undefined, rules: SpecRules, where = 'body'): JobSpec {
  if (idempotencyKey !== undefined) checkUserKey(idempotencyKey, where);
  checkType(body.type, rules.knownTypes);
  checkPayload(body.payload, rules.maxPayloadDepth, where);
  checkPayloadSchema(body.type, body.payload, rules.checkPayload, where);
  const d = rules.defaults;
  const spec: JobSpec = {
    type: body.type,
    payload: body.payload,
    queue: body.queue ?? d.queue,
    maxAttempts: body.maxAttempts ?? d.maxAttempts,
    backoff: body.backoff ? toBackoff(body.backoff, where) : d.backoff,
    timeoutMs: body.timeoutMs ?? d.timeoutMs,
    priority: body.priority ?? d.priority,
  };
  if (body.runAt !== undefined) spec.runAt = toEpochMs(body.runAt, where);
  if (body.concurrencyKey !== undefined) spec.concurrencyKey = body.concurrencyKey;
  if (idempotencyKey !== undefined) {
    spec.idempotencyKey = idempotencyKey;
    const defaulted = DEFAULTED_FIELDS.filter((f) => body[f] === undefined);
    if (defaulted.length > 0) spec.defaulted = defaulted;
  }
  return spec;
}

const DEFAULTED_FIELDS: readonly DefaultedField[] = ['maxAttempts', 'backoff', 'timeoutMs', 'priority'];

/**
 * Idempotency keys starting with this are the server's own: a schedule's tick
 * submits its job under `ats:schedule:...` (engine/schedules.ts), and a user
 * job holding that key would stand in for the tick's job.
 */
export const RESERVED_KEY_PREFIX = 'ats:';

/**
 * Whether `key` is one of the server's own: a job submit (the header, a batch
 * item's idempotencyKey) and a workflow start refuse it 400; a signal's key
 * is the instance's alone, and may. The CLI refuses it up front on those
 * commands with this rule.
 */
export function isReservedKey(key: string): boolean {
  return key.startsWith(RESERVED_KEY_PREFIX);
}

/** A user's Idempotency-Key (the header, or a batch item's idempotencyKey) may not take a reserved key. */
function checkUserKey(key: string, where: string): void {
  if (!isReservedKey(key)) return;
  const field = where === 'body' ? 'headers/idempotency-key' : `${where}/idempotencyKey`;
  throw new AtsError('ATS_ERR_VALIDATION', `${field} must not start with '${RESERVED_KEY_PREFIX}' (the server's own keys start so)`);
}

function checkType(type: string, knownTypes: SpecRules['knownTypes']): void {
  if (knownTypes && !knownTypes().includes(type)) {
    throw new AtsError('ATS_ERR_UNKNOWN_JOB_TYPE', `No handler is registered for job type '${type}'`);
  }
}

/** The payload against the schema its handler declared (defineHandler): 400 ATS_ERR_INVALID_PAYLOAD. */
function checkPayloadSchema(type: string, payload: unknown, check: SpecRules['checkPayload'], where: string): void {
  const problem = check?.(type, payload);
  if (!problem) return;
  // The problem text is bounded where it is made (engine/payload-schema.ts); the type is at most 200 characters.
  const at = problem.startsWith('/') ? `${where}/payload${problem}` : `${where}/payload ${problem}`;
  throw new AtsError('ATS_ERR_INVALID_PAYLOAD', `${at} (the payload schema of ${type})`);
}

function toBackoff(b: BackoffInput, where: string): BackoffPolicy {
  if (b.kind === 'fixed') return { kind: 'fixed', delayMs: b.delayMs };
  if (b.maxMs < b.baseMs) throw new AtsError('ATS_ERR_VALIDATION', `${where}/backoff/maxMs must be >= baseMs`);
  return { kind: 'exponential', baseMs: b.baseMs, maxMs: b.maxMs, jitter: b.jitter ?? 'full' };
}

/**
 * ISO strings passed the schema's date-time format; Date.parse still has the
 * last word. The schema bounds epoch ms only: an offset moves a string's
 * instant past the year 9999 (`9999-12-31T23:59:59.999-23:59`), which
 * toISOString would show as `+010000-...`, not RFC 3339; it is held to the
 * same MAX_EPOCH_MS, with the same 400.
 */
function toEpochMs(runAt: string | number, where: string): number {
  const ms = typeof runAt === 'number' ? runAt : Date.parse(runAt);
  if (!Number.isFinite(ms) || ms < 0) throw new AtsError('ATS_ERR_VALIDATION', `${where}/runAt is not a valid time`);
  if (ms > MAX_EPOCH_MS) throw new AtsError('ATS_ERR_VALIDATION', `${where}/runAt must be at most 9999-12-31T23:59:59.999Z`);
  return ms;
}

/**
 * Throws if `value` nests deeper than `max`, or holds a number JSON cannot
 * carry (`1e400` parses to Infinity and would be stored as null).
 */
export function checkPayload(value: unknown, max: number, where = 'body', field: string | null = 'payload'): void {
  const found = jsonValueFault(value, max);
  if (found === undefined) return;
  // field null: the value is `where` itself (a signal's body is its event).
  const at = field === null ? where : `${where}/${field}`;
  throw new AtsError('ATS_ERR_VALIDATION', found.fault === 'out-of-range'
    ? `${at} holds a number out of range`
    : `${at} nests deeper than ${found.maxDepth} levels`);
}
