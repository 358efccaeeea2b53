/**
 * Argument parsing for the client commands: node's own `util.parseArgs`
 * (strict: an unknown option or a missing value is an error) plus typed
 * readers that turn a bad value into a `UsageError` (exit 2 with the usage).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
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
    const r = parseArgs({ args: [...args], options, strict: true, allowPositionals: true });
    parsed = { values: r.values as Values, positionals: r.positionals };
  } catch (err) {
    // parseArgs messages are already good ("Unknown option '--x'", "Option '--limit <value>' argument missing").
    throw new UsageError((err as Error).message);
  }
  const n = parsed.positionals.length;
  if (n < min) throw new UsageError(`missing argument${min - n > 1 ? 's' : ''}`);
  if (n > max) throw new UsageError(`unexpected argument "${parsed.positionals[max]}"`);
  return parsed;
}

/** A string option, or undefined when absent. */
export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
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
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UsageError(`--${name} is not valid JSON (${(err as Error).message}): ${text.length > 80 ? text.slice(0, 80) + '...' : text}`);
  }
}

/** An ISO 8601 date-time option, returned as the canonical ISO string. */
export function isoTime(values: Values, name: string): string | undefined {
  const text = str(values, name);
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text) || Number.isNaN(ms)) {
    throw new UsageError(`--${name} must be an ISO 8601 date-time such as 2030-01-01T12:00:00Z, got "${text}"`);
  }
  return new Date(ms).toISOString();
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
