/**
 * The Logger port on pino: one logger per process, whose lines are JSON
 * objects (`level` as a label, ISO `time`, the base fields, the call's fields,
 * `msg`). fastify logs through the same pino instance (`AppLogger.pino`), so
 * request lines and the roles' lines are one stream.
 *
 * Engine code sees only the port (`ports.ts`): `msg` first, then fields.
 */
import { hostname } from 'node:os';
import pino from 'pino';
import type { Logger } from './ports.js';
import { isInstance, messageOf } from './thrown.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** `json`: one JSON object a line (production). `pretty`: pino-pretty's colored lines, for a person at a terminal. */
export type LogFormat = 'json' | 'pretty';

/** A port Logger with child loggers; `pino` is the instance behind it (for fastify's `loggerInstance`). */
export interface AppLogger extends Logger {
  /** A logger whose every line carries `fields` as well. */
  child(fields: Record<string, unknown>): AppLogger;
  readonly pino: pino.Logger;
}

/** Where lines go: a pino destination stream, or a function given each line (without its newline). */
export type LogDestination = pino.DestinationStream | ((line: string) => void);

/**
 * A pino-backed logger at `level`. Every line carries `pid` and `hostname`
 * and `base` (e.g. `role`). `destination` defaults to stdout; for
 * `LOG_FORMAT=pretty` pass `await prettyDestination()`.
 */
export function createLogger(level: LogLevel = 'info', base: Record<string, unknown> = {}, destination?: LogDestination): AppLogger {
  const stream = typeof destination === 'function' ? lineStream(destination) : destination;
  const options: pino.LoggerOptions = {
    level,
    base: { pid: process.pid, hostname: hostname(), ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    // The level's name, not pino's number: `"level":"error"` reads and greps as it says.
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return fromPino(stream ? pino(options, stream) : pino(options));
}

/**
 * The port on an existing pino logger. A call never throws into its caller
 * (a handler's `ctx.log` with a getter that throws): fields JSON cannot
 * write leave the line (or the child), which says why in `logFieldsError`;
 * a line the destination throws on is lost, with fields or without (and is
 * never written twice: a destination that wrote it, then threw, has it once).
 */
export function fromPino(p: pino.Logger): AppLogger {
  // The keys each line of `p` has of its own (its bindings: the base fields, a child's), learnt at its first line with fields.
  let taken: ReadonlySet<string> | undefined;
  const write = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void => {
    try {
      if (fields && p.isLevelEnabled(level)) p[level](keptApart(fields, (taken ??= new Set([...LINE_KEYS, ...Object.keys(p.bindings())]))), msg);
      else if (fields) p[level](fields, msg);
      else p[level](msg);
    } catch {
      // Without fields, or with fields pino can write, only the destination can have thrown
      // (maybe after writing the line): the line is lost, not the caller's work.
      const why = fields && unreadable(fields, p);
      if (!why) return;
      try {
        p[level]({ logFieldsError: why }, msg);
      } catch {
        // The destination itself throws: the line is lost, not the caller's work.
      }
    }
  };
  return {
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
    child: (fields) => {
      try {
        return fromPino(p.child(fields));
      } catch (err) {
        return fromPino(p.child({ logFieldsError: unwritable(err) }));
      }
    },
    isLevelEnabled: (level) => p.isLevelEnabled(level),
    pino: p,
  };
}

/** The keys pino writes in every line of createLogger's (`formatters.level`, `timestamp`, the message, `base`). */
const LINE_KEYS = ['level', 'time', 'msg', 'pid', 'hostname'] as const;

/**
 * A call's `fields` with each own key the line already has (`taken`: `level`,
 * `time`, `msg`, the base fields, a child's `jobId`, `type`, `attempt`)
 * written as `fields.<key>`: pino would write the key twice, and a reader of
 * the JSON takes the last (a handler's `{ level: 'high' }` made an info line
 * `"level":"high"`, its `{ type: 'invoice' }` hid the job's type). `fields`
 * itself when no key clashes, or when it is an Error (pino nests that under
 * `err`). Reading a value may throw (a getter): the caller's `try` has it.
 */
function keptApart(fields: Record<string, unknown>, taken: ReadonlySet<string>): Record<string, unknown> {
  if (isInstance(fields, Error)) return fields;
  let clash = false;
  for (const key in fields) {
    if (taken.has(key) && Object.prototype.hasOwnProperty.call(fields, key)) {
      clash = true;
      break;
    }
  }
  if (!clash) return fields;
  // No prototype: a key `__proto__` stays a field.
  const apart = Object.create(null) as Record<string, unknown>;
  for (const key in fields) {
    if (Object.prototype.hasOwnProperty.call(fields, key)) apart[taken.has(key) ? `fields.${key}` : key] = fields[key];
  }
  return apart;
}

/**
 * Why `fields` cannot be written, or undefined when they can. Asked only once a
 * line threw: fields that can be written mean the logger threw on its own, maybe
 * after writing the line, which is then not written again. As JSON writes them
 * (a BigInt or a cycle cannot be), or as pino `p` does: each field through its
 * serializer first (`err`'s reads an error's message, stack and cause), then
 * written with BigInts and cycles (only a getter, a `toJSON` or a proxy that
 * throws fails).
 */
function unreadable(fields: Record<string, unknown>, p?: pino.Logger): string | undefined {
  try {
    if (!p) {
      JSON.stringify(fields);
      return undefined;
    }
    const seen = new WeakSet<object>();
    const asPino = (_key: string, v: unknown): unknown => {
      if (typeof v === 'bigint') return 0;
      if (typeof v !== 'object' || v === null) return v;
      if (seen.has(v)) return null;
      seen.add(v);
      return v;
    };
    const serializers = (p as unknown as Record<symbol, Record<string, ((v: unknown) => unknown) | undefined>>)[pino.symbols.serializersSym] ?? Object.create(null) as Record<string, undefined>;
    const errorKey = (p as unknown as Record<symbol, string | undefined>)[pino.symbols.errorKeySym] ?? 'err';
    // As pino's asJson: every key `for...in` gives, its value read, serialized when the key has a serializer, written.
    for (const key in fields) {
      const value = fields[key];
      if (!Object.prototype.hasOwnProperty.call(fields, key) || value === undefined) continue;
      const serializer = serializers[key] ?? (key === errorKey ? serializers.err : undefined);
      JSON.stringify(serializer ? serializer(value) : value, asPino);
    }
    return undefined;
  } catch (err) {
    return unwritable(err);
  }
}

/** Why a line's fields could not be written: the thrown value's message, read without throwing again. */
function unwritable(err: unknown): string {
  try {
    return `the fields could not be written: ${err instanceof Error ? err.message : String(err)}`;
  } catch {
    return 'the fields could not be written';
  }
}

/**
 * pino-pretty as a synchronous in-process stream (no worker thread, so no line
 * is lost on `process.exit`). Loaded only when asked: JSON production logging
 * never imports it.
 */
export async function prettyDestination(options: { colorize?: boolean; destination?: NodeJS.WritableStream } = {}): Promise<pino.DestinationStream> {
  const { default: pretty } = await import('pino-pretty');
  return pretty({
    sync: true,
    ...(options.destination ? { destination: options.destination } : {}),
    colorize: options.colorize ?? process.stdout.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
  });
}

function lineStream(write: (line: string) => void): pino.DestinationStream {
  return { write: (chunk: string) => write(chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk) };
}

const noop = () => {};
/**
 * Writes nothing. (No `child`: a test's `{ ...silentLogger, warn }` must hear
 * the lines of the children made of it, see `withFields`.)
 */
export const silentLogger: Logger = Object.freeze({ debug: noop, info: noop, warn: noop, error: noop });

type Level = 'debug' | 'info' | 'warn' | 'error';

/**
 * A logger whose lines carry `fields` too: the logger's own child when it has
 * one (pino serializes the fields once), else a wrapper adding them to each call.
 * A line never throws into its caller (a handler's `ctx.log`), whatever the
 * logger: a call's fields that cannot be read (a getter that throws) leave the
 * line, which says why in `logFieldsError`; a logger (or its child) that throws
 * on its own loses the line, or has it once when it wrote it before throwing.
 */
export function withFields(logger: Logger, fields: Record<string, unknown>): Logger {
  const merged = mergedLines(logger, fields);
  const child = (logger as Partial<AppLogger>).child;
  if (typeof child !== 'function') return merged;
  // Made on the first line only: most attempts log nothing, and a pino child is not free.
  // A child that cannot be made leaves the lines to the wrapper that adds the fields to each.
  let made: Logger | null = null;
  const get = (): Logger => {
    if (made) return made;
    try {
      made = child.call(logger, fields);
    } catch {
      made = merged;
    }
    return made;
  };
  const line = (level: Level) => (msg: string, f?: Record<string, unknown>) => {
    try {
      get()[level](msg, f);
    } catch {
      // Without the call's fields, or with fields JSON can write, only the logger's own child
      // can have thrown (maybe after writing the line): the line is lost, or written once.
      const why = f && unreadable(f);
      if (!why) return;
      try {
        get()[level](msg, { logFieldsError: why });
      } catch {
        // The logger's own child throws: the line is lost, not the caller's work.
      }
    }
  };
  return {
    debug: line('debug'),
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    isLevelEnabled: (level) => logger.isLevelEnabled?.(level) ?? true,
  };
}

/**
 * Lines of `logger` with `fields` added to each call's (a call's field of the
 * same name is written as `fields.<name>`, as with pino's child: the line
 * keeps the attempt's `jobId`, `type`, `attempt`); never throwing into the caller.
 */
function mergedLines(logger: Logger, fields: Record<string, unknown>): Logger {
  const bound = new Set(Object.keys(fields));
  const once = (level: Level, msg: string, f: Record<string, unknown>): void => {
    try {
      logger[level](msg, f);
    } catch {
      // The logger itself throws: the line is lost, not the caller's work.
    }
  };
  const line = (level: Level) => (msg: string, f?: Record<string, unknown>) => {
    let all: Record<string, unknown>;
    try {
      all = f ? { ...fields, ...keptApart(f, bound) } : fields;
    } catch (err) {
      // A getter of the call's fields threw before anything was written.
      return once(level, msg, { ...fields, logFieldsError: unwritable(err) });
    }
    try {
      logger[level](msg, all);
    } catch {
      // Without the call's fields, or with fields JSON can write, only the logger itself can
      // have thrown (maybe after writing the line): the line is lost, or written once.
      const why = f && unreadable(all);
      if (why) once(level, msg, { ...fields, logFieldsError: why });
    }
  };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}

/** The fields worth logging of an unknown thrown value. */
export function errorFields(err: unknown): Record<string, unknown> {
  // An AggregateError without a message of its own (Node's connect, every address refused) is named by its inner errors.
  if (err instanceof Error) {
    const { cause } = err;
    return { err: messageOf(err), errName: err.name, ...(cause ? { cause: cause instanceof Error ? messageOf(cause) : String((cause as Error).message ?? cause) } : {}) };
  }
  return { err: String(err) };
}
