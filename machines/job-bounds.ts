/**
 * The bounds of a job's own policy (queue, attempts, backoff, timeout,
 * priority). The REST schema (server/schemas.ts) holds a submit to them, and
 * a workflow definition (machines/workflow.ts) the jobs it starts, which
 * reach the job machine without passing the REST schema: a value outside
 * them makes a job that can never start or never retry.
 */
import type { BackoffPolicy, ExponentialBackoff } from './backoff.js';

export const DAY_MS = 86_400_000;

/**
 * The last instant the API's date-times write (RFC 3339, four-digit years): 9999-12-31T23:59:59.999Z.
 * No job is due, no schedule ticks and no workflow timer falls due after it.
 */
export const LAST_INSTANT_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Job types and queue names: short, URL- and log-safe. */
export const NAME_PATTERN = '^[A-Za-z0-9._:-]+$';
/** The longest job type or queue name. */
export const MAX_NAME_CHARS = 200;

export const MAX_ATTEMPTS = 100;
/** Priorities run from -MAX_PRIORITY to MAX_PRIORITY. */
export const MAX_PRIORITY = 1000;
/** The longest per-attempt timeout. */
export const MAX_TIMEOUT_MS = DAY_MS;
/** The longest first delay of an exponential backoff. */
export const MAX_BACKOFF_BASE_MS = DAY_MS;
/** The longest delay of any backoff: an exponential one's maxMs, a fixed one's delayMs. */
export const MAX_BACKOFF_MS = 7 * DAY_MS;
export const JITTERS: readonly ExponentialBackoff['jitter'][] = Object.freeze(['full', 'equal', 'none'] as const);
/** What a submit without a jitter gets. */
export const DEFAULT_JITTER: ExponentialBackoff['jitter'] = 'full';

/** A job type or queue name. */
const A_NAME = new RegExp(NAME_PATTERN);

/** Whether `text` is a name of NAME_PATTERN of at most `max` characters (a job type, a queue; a workflow's name with its own `max`). */
export const isName = (text: unknown, max: number = MAX_NAME_CHARS): text is string =>
  typeof text === 'string' && text.length <= max && A_NAME.test(text);

/**
 * Why `type` could not be a job type, or null: the stores keep at most
 * MAX_NAME_CHARS, and a submit, the API's filters, the metrics' labels and
 * the CLI take only names of NAME_PATTERN. A handler or workflow actor
 * registered for another name would never get a job.
 */
export function jobTypeProblem(type: string): string | null {
  if (type.length > MAX_NAME_CHARS) return `a job type is at most ${MAX_NAME_CHARS} characters, as a submit's is`;
  return A_NAME.test(type) ? null : `a job type is 1 to ${MAX_NAME_CHARS} of A-Z a-z 0-9 . _ : - (${NAME_PATTERN}), as a submit's is`;
}
const OPTION_NAMES: readonly string[] = ['queue', 'maxAttempts', 'backoff', 'timeoutMs', 'priority'];
const BACKOFF_FIELDS: ReadonlyMap<string, readonly string[]> = new Map([
  ['exponential', ['kind', 'baseMs', 'maxMs', 'jitter']],
  ['fixed', ['kind', 'delayMs']],
]);

const isIntegerIn = (v: unknown, min: number, max: number): boolean => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;

/** A value as an error message shows it: short, and NaN or undefined as such (JSON would say null). */
function shown(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null) return String(v);
  return Array.isArray(v) ? 'an array' : `a ${typeof v}`;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The first field of `record` outside `allowed`, if any. */
const strayField = (record: Record<string, unknown>, allowed: readonly string[]): string | undefined =>
  Object.keys(record).find((k) => !allowed.includes(k));

/** What is wrong with an integer option, or null: `name` must be an integer from `min` to `max`. */
function integerProblem(name: string, v: unknown, min: number, max: number): string | null {
  return isIntegerIn(v, min, max) ? null : `${name} must be an integer from ${min} to ${max}, got ${shown(v)}`;
}

/** What is wrong with a backoff as a submit's body would give it (jitter may be left out), or null. */
export function backoffProblem(b: unknown): string | null {
  if (!isRecord(b)) return `backoff must be an object, got ${shown(b)}`;
  const fields = typeof b.kind === 'string' ? BACKOFF_FIELDS.get(b.kind) : undefined;
  if (fields === undefined) return `backoff.kind must be 'exponential' or 'fixed', got ${shown(b.kind)}`;
  const stray = strayField(b, fields);
  if (stray !== undefined) return `backoff ${shown(stray)} is not a field of a ${b.kind} backoff (${fields.join(', ')})`;
  if (b.kind === 'fixed') return integerProblem('backoff.delayMs', b.delayMs, 0, MAX_BACKOFF_MS);
  const problem = integerProblem('backoff.baseMs', b.baseMs, 1, MAX_BACKOFF_BASE_MS) ?? integerProblem('backoff.maxMs', b.maxMs, 1, MAX_BACKOFF_MS);
  if (problem !== null) return problem;
  if ((b.maxMs as number) < (b.baseMs as number)) return `backoff.maxMs must be at least backoff.baseMs (${shown(b.baseMs)}), got ${shown(b.maxMs)}`;
  if (b.jitter !== undefined && !JITTERS.includes(b.jitter as ExponentialBackoff['jitter'])) {
    return `backoff.jitter must be ${JITTERS.map((j) => `'${j}'`).join(', ')} or left out, got ${shown(b.jitter)}`;
  }
  return null;
}

/**
 * What is wrong with a job's options (`queue`, `maxAttempts`, `backoff`,
 * `timeoutMs`, `priority`, each optional) against the REST schema's bounds,
 * or null. A field that is not an option is refused, as the schema refuses
 * it: a misspelt one would be dropped without a word.
 */
export function jobOptionsProblem(o: unknown): string | null {
  if (!isRecord(o)) return `the options must be an object, got ${shown(o)}`;
  const stray = strayField(o, OPTION_NAMES);
  if (stray !== undefined) return `${shown(stray)} is not a job option (${OPTION_NAMES.join(', ')})`;
  if (o.queue !== undefined && !isName(o.queue)) {
    return `queue must be 1 to ${MAX_NAME_CHARS} of A-Z a-z 0-9 . _ : -, got ${shown(o.queue)}`;
  }
  const checks: [string, number, number][] = [['maxAttempts', 1, MAX_ATTEMPTS], ['timeoutMs', 1, MAX_TIMEOUT_MS], ['priority', -MAX_PRIORITY, MAX_PRIORITY]];
  for (const [name, min, max] of checks) {
    if (o[name] !== undefined) {
      const problem = integerProblem(name, o[name], min, max);
      if (problem !== null) return problem;
    }
  }
  return o.backoff === undefined ? null : backoffProblem(o.backoff);
}

/** A checked backoff as the job machine takes it: a copy of its own, an exponential one's jitter filled in as a submit's is. */
export function completeBackoff(b: BackoffPolicy): BackoffPolicy {
  if (b.kind === 'fixed') return { kind: 'fixed', delayMs: b.delayMs };
  return { kind: 'exponential', baseMs: b.baseMs, maxMs: b.maxMs, jitter: b.jitter ?? DEFAULT_JITTER };
}
