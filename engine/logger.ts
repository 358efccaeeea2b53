/** A small JSON-lines logger that satisfies the Logger port. */
import type { Logger } from './ports.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export function createLogger(
  level: LogLevel = 'info',
  base: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stdout.write(line + '\n'),
): Logger & { child(fields: Record<string, unknown>): Logger } {
  const emit = (lvl: Exclude<LogLevel, 'silent'>) => (msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < ORDER[level]) return;
    write(JSON.stringify({ level: lvl, time: new Date().toISOString(), ...base, msg, ...fields }));
  };
  return {
    debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error'),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}

export const silentLogger: Logger = createLogger('silent');

/** The fields worth logging of an unknown thrown value. */
export function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof Error) return { err: err.message, errName: err.name, ...(err.cause ? { cause: String((err.cause as Error).message ?? err.cause) } : {}) };
  return { err: String(err) };
}
