/**
 * Argument parsing for the client commands: node's own `util.parseArgs`
 * (strict: an unknown option or a missing value is an error; so is an empty
 * value, here) plus typed readers that turn a bad value into a `UsageError`
 * (exit 2 with the usage).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { quoteCut } from '../../engine/errors.js';
import { isName, LAST_INSTANT_MS, MAX_ATTEMPTS, MAX_NAME_CHARS, MAX_PRIORITY, MAX_TIMEOUT_MS } from '../../machines/job-bounds.js';
import { inexactIntegerIn, inexactIntegerProblem, numberOutOfRangeIn, numberOutOfRangeProblem } from '../../machines/json-integers.js';
import { IDEMPOTENCY_KEY_PATTERN, MAX_IDEMPOTENCY_KEY_CHARS } from '../../server/schemas.js';
import { isReservedKey, RESERVED_KEY_PREFIX } from '../../server/submit-spec.js';

/**
 * The options of a command, as `util.parseArgs` takes them; `emptyOk` marks a
 * string option whose empty value means something (a free-text `--reason ''`;
 * `--mysql-url=`, the embedded store whatever MYSQL_URL says). Any other
 * option given an empty value (`--job=`, `--limit ''`) is a usage error: a
 * command would read it as absent, and do something else than asked.
 */
export type OptionsConfig = Record<string, NonNullable<ParseArgsConfig['options']>[string] & { emptyOk?: boolean }>;
export type Values = Record<string, string | boolean | string[] | undefined>;

/** Wrong command line: the command prints its usage and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface Parsed {
  values: Values;
  positionals: string[];
}

/** Parse `args` against `options`, expecting between `min` and `max` positionals. */
export function parse(args: readonly string[], options: OptionsConfig, [min, max]: readonly [number, number]): Parsed {
  let parsed: Parsed;
  try {
    const forParseArgs = Object.fromEntries(Object.entries(options).map(([name, { emptyOk: _, ...o }]) => [name, o]));
    const r = parseArgs({ args: joinNegatives(args, options), options: forParseArgs, strict: true, allowPositionals: true });
    parsed = { values: r.values as Values, positionals: r.positionals };
  } catch (err) {
    // parseArgs messages are already good ("Unknown option '--x'", "Option '--limit <value>' argument missing").
    throw new UsageError((err as Error).message);
  }
  for (const [name, value] of Object.entries(parsed.values)) {
    if (typeof value === 'string' && value.trim() === '' && !options[name]?.emptyOk) {
      throw new UsageError(`--${name} needs a value, got an empty one (leave the option out if you mean none)`);
    }
  }
  const n = parsed.positionals.length;
  if (n < min) throw new UsageError(`missing argument${min - n > 1 ? 's' : ''}`);
  if (n > max) throw new UsageError(`unexpected argument "${parsed.positionals[max]}"`);
  return parsed;
}

/**
 * `--priority -5` as `--priority=-5`: parseArgs takes a value that starts
 * with `-` only in the `=` form, and a negative number is a value, not an option.
 */
function joinNegatives(args: readonly string[], options: OptionsConfig): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return [...out, ...args.slice(i)];
    const name = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : undefined;
    const next = args[i + 1];
    if (name !== undefined && Object.hasOwn(options, name) && options[name]!.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** A string option, or undefined when absent. */
export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/**
 * A name option (a job type, a queue, a workflow's name) as the API takes it in a filter: 1 to `max` of
 * A-Z a-z 0-9 . _ : -. Another is a usage error before anything is sent, for `ls` and `watch` alike (the
 * stream would take the filter and match nothing, in silence).
 */
export function nameOption(values: Values, name: string, max: number = MAX_NAME_CHARS): string | undefined {
  const text = str(values, name);
  if (text === undefined) return undefined;
  if (!isName(text, max)) throw new UsageError(`--${name} must be 1 to ${max} of A-Z a-z 0-9 . _ : -, got "${quoteCut(text, 80)}"`);
  return text;
}

/** The longest idempotency key the API takes (its schemas' `maxLength`); the prefix of the server's own keys. */
export { MAX_IDEMPOTENCY_KEY_CHARS, RESERVED_KEY_PREFIX };

const idempotencyKeyPattern = new RegExp(IDEMPOTENCY_KEY_PATTERN);

/**
 * What in `key` the API's idempotency key pattern (printable ASCII, no space
 * at either end) refuses, or undefined when it takes it. Its length is not
 * looked at here.
 */
export function idempotencyKeyProblem(key: string): string | undefined {
  if (idempotencyKeyPattern.test(key)) return undefined;
  const chars = [...key];
  const other = chars.findIndex((c) => !/^[\x20-\x7E]$/.test(c));
  if (other >= 0) {
    const c = chars[other]!;
    return `has ${JSON.stringify(c)} (U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}) at character ${other + 1}`;
  }
  if (key === '') return 'is empty';
  return key.startsWith(' ') ? 'starts with a space' : 'ends with a space';
}

/**
 * A usage error when the API refuses `key`, an idempotency key made from
 * `--idempotency-key` (`what` names it in the message: "the key"): outside its
 * pattern, or, where `reservedRefused` says the route refuses them, one the
 * server keeps for its own (`ats:...`, the rule the server uses: isReservedKey;
 * a job submit and a workflow start refuse it, a signal takes it).
 */
export function checkIdempotencyKeyText(key: string, what: string, { reservedRefused }: { reservedRefused: boolean }): void {
  const problem = idempotencyKeyProblem(key);
  if (problem !== undefined) throw new UsageError(`--idempotency-key: ${what} ${problem}; the API takes printable ASCII, without a space at either end`);
  if (reservedRefused && isReservedKey(key)) {
    throw new UsageError(`--idempotency-key: ${what} starts with '${RESERVED_KEY_PREFIX}', the prefix of the server's own keys; the API refuses it`);
  }
}

/**
 * `--idempotency-key`, or undefined when absent. A key the API refuses (over
 * its limit, outside its pattern, or, where `reservedRefused` says the route
 * refuses them, one of the server's own) would be sent and refused (400,
 * exit 1): refused up front instead, as a usage error, with nothing sent.
 */
export function idempotencyKey(values: Values, { reservedRefused }: { reservedRefused: boolean }): string | undefined {
  const key = str(values, 'idempotency-key');
  if (key === undefined) return key;
  if (key.length > MAX_IDEMPOTENCY_KEY_CHARS) {
    throw new UsageError(`--idempotency-key: the key is ${key.length} characters; the API takes at most ${MAX_IDEMPOTENCY_KEY_CHARS}`);
  }
  checkIdempotencyKeyText(key, 'the key', { reservedRefused });
  return key;
}

/** An integer option within [min, max]. */
export function int(values: Values, name: string, min: number, max: number): number | undefined {
  const text = str(values, name);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return n;
}

/** A JSON option (any JSON value). */
export function json(values: Values, name: string): unknown {
  const text = str(values, name);
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--${name} is not valid JSON (${(err as Error).message}): ${quoteCut(text, 80)}`);
  }
  // Sent on, JSON.parse's rounding would be what the server stores; the server refuses such a body itself.
  const inexact = inexactIntegerIn(text);
  if (inexact) throw new UsageError(`--${name}: ${inexactIntegerProblem(inexact)}`);
  // 1e400 parses to Infinity, which would be sent as null: the server refuses 1e400 itself.
  const outOfRange = numberOutOfRangeIn(value);
  if (outOfRange !== undefined) throw new UsageError(`--${name} holds a number out of range: ${numberOutOfRangeProblem(outOfRange)}`);
  return value;
}

/** A date-time as the API takes it: the date and time, and `Z` or an offset (`+02:00`, `+0200`, `+02`). */
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:Z|([+-])(\d{2})(?::?(\d{2}))?)$/i;

/**
 * An RFC 3339 date-time option (as the API takes it), returned as the canonical ISO string. A date
 * that does not exist (February 31) or a time without `Z` or an offset is refused: JavaScript would
 * roll the one over to another day and read the other in this machine's time zone. So is an
 * instant the API does not take (before 1970, or after 9999 once the offset is applied).
 */
export function isoTime(values: Values, name: string): string | undefined {
  const text = str(values, name);
  if (text === undefined) return undefined;
  const m = DATE_TIME.exec(text);
  const [y, mo, d, h, mi, se] = (m ?? []).slice(1, 7).map(Number);
  const [fraction = '', sign, oh = '00', om = '00'] = (m ?? []).slice(7);
  const day = m ? new Date(Date.UTC(y!, mo! - 1, d!)) : null;
  const real = day !== null && day.getUTCFullYear() === y && day.getUTCMonth() === mo! - 1 && day.getUTCDate() === d
    && h! <= 23 && mi! <= 59 && se! <= 59 && Number(oh) <= 23 && Number(om) <= 59;
  // Read in the one form Date.parse takes whole: milliseconds, and the offset as ±hh:mm.
  const ms = real ? Date.parse(`${text.slice(0, 10)}T${text.slice(11, 19)}${fraction.slice(0, 4)}${sign ? `${sign}${oh}:${om}` : 'Z'}`) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new UsageError(`--${name} must be a date-time with Z or an offset, such as 2030-01-01T12:00:00Z, got "${text}"`);
  }
  // The instants the API takes (epoch ms from 0): one past 9999 would be sent as +010000-..., which it refuses as no date-time.
  if (ms < 0 || ms > LAST_INSTANT_MS) {
    throw new UsageError(`--${name} must name an instant from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z, got "${text}"`);
  }
  return new Date(ms).toISOString();
}

/** A job's own policy options (`--max-attempts`, `--timeout-ms`, `--priority`), held to the bounds the API holds a submit to. */
export function jobPolicy(values: Values): { maxAttempts?: number; timeoutMs?: number; priority?: number } {
  const maxAttempts = int(values, 'max-attempts', 1, MAX_ATTEMPTS);
  const timeoutMs = int(values, 'timeout-ms', 1, MAX_TIMEOUT_MS);
  const priority = int(values, 'priority', -MAX_PRIORITY, MAX_PRIORITY);
  return {
    ...(maxAttempts !== undefined ? { maxAttempts } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}), ...(priority !== undefined ? { priority } : {}),
  };
}

/** A comma-separated option checked against `allowed`. */
export function oneOf(values: Values, name: string, allowed: readonly string[], { many = false } = {}): string[] | undefined {
  const text = str(values, name);
  if (text === undefined) return undefined;
  const list = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0 || (!many && list.length > 1)) throw new UsageError(`--${name} needs ${many ? 'one or more of' : 'one of'}: ${allowed.join(', ')}`);
  for (const v of list) if (!allowed.includes(v)) throw new UsageError(`--${name}: unknown value "${v}" (one of: ${allowed.join(', ')})`);
  return list;
}
