/** Lowering a warning said again and again (a client retrying against a dependency that is down) to debug. */
import type { Logger } from './ports.js';

/** A warning or error line said again within this is written at debug (kafkajs retrying says the same several times a second). */
export const REPEAT_WINDOW_MS = 60_000;
/** Distinct lines remembered per client (the least recently said forgotten first). */
const REPEAT_KEYS = 200;

/**
 * Which warning and error lines were said within the last minute, and how many like them were lowered
 * since; at most `maxKeys` lines remembered. (kafkajs's lines, adapters/kafka/kafka-logging.ts; the tracing SDK's, cli/tracing.ts.)
 */
export class RepeatedLines {
  private readonly seen = new Map<string, { at: number; lowered: number }>();
  constructor(private readonly now: () => number, private readonly maxKeys = REPEAT_KEYS) {}

  /** `lower`: said within the window, write it at debug; else `repeated` lines like it were lowered since it was last written. */
  check(key: string): { lower: boolean; repeated: number } {
    const t = this.now();
    const s = this.seen.get(key);
    if (s && t - s.at < REPEAT_WINDOW_MS) {
      s.lowered += 1;
      return { lower: true, repeated: 0 };
    }
    this.seen.delete(key); // re-inserted last: the least recently written first
    this.seen.set(key, { at: t, lowered: 0 });
    if (this.seen.size > this.maxKeys) this.seen.delete(this.seen.keys().next().value!);
    return { lower: false, repeated: s?.lowered ?? 0 };
  }

  /** `msg` at warn, or at debug when a line of `key` was written within the window; `repeated` on its fields. */
  warn(logger: Pick<Logger, 'warn' | 'debug'>, key: string, msg: string, fields: Record<string, unknown>): void {
    const { lower, repeated } = this.check(key);
    logger[lower ? 'debug' : 'warn'](msg, { ...fields, repeated });
  }
}
