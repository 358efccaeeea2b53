import type { Logger } from './ports.js';
import { errorFields } from './logger.js';

/** The longest pause a Node timer keeps (2^31-1 ms, about 24.8 days); a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/** Whether `ms` is a pause a timer keeps: an integer from 0 to MAX_TIMER_MS. */
export const isTimerPause = (ms: number): boolean => Number.isInteger(ms) && ms >= 0 && ms <= MAX_TIMER_MS;

/**
 * The pause of a background loop after consecutive failed passes: `baseMs`,
 * doubling with each further failure up to `maxMs`, back to nothing after a
 * pass that worked. A loop whose database is down then retries a few times
 * a minute instead of at every poll (and logs as {@link OutageLog} says).
 */
export class ErrorBackoff {
  private failures = 0;

  constructor(private readonly baseMs: number, private readonly maxMs: number) {}

  /** Records a failed pass; returns how long to pause before the next one. */
  failed(): number {
    const ms = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return ms;
  }

  /** A pass worked: the next failure pauses `baseMs` again. */
  succeeded(): void {
    this.failures = 0;
  }

  /** Failed passes since the last one that worked. */
  get consecutiveFailures(): number {
    return this.failures;
  }
}

/** How an {@link OutageLog} writes its lines. */
export interface OutageLogOptions {
  /** At most one failure line per this while the outage lasts. @defaultValue OUTAGE_LOG_EVERY_MS */
  everyMs?: number;
  /** Of the failure lines: warn for a failure that loses nothing (records delivered again). @defaultValue 'error' */
  level?: 'error' | 'warn';
  /** The failure line's text. @defaultValue `${what} failed, will retry` */
  failedMessage?: string;
  /**
   * The failures not written at `level`: dropped (counted on the next line),
   * or written at `debug` with their fields, for failures each of which
   * someone may look for (an API request, by the id its answer carried).
   * @defaultValue 'drop'
   */
  repeats?: 'drop' | 'debug';
}

/**
 * The log of a loop that retries at a steady pace while a dependency is down
 * (the relay, the stream's tails), or of the API answering 503 to every
 * request that needs it: the first failure is logged, then at most one line
 * per `everyMs` with the failures so far, and the first success after them;
 * an outage of an hour is a few dozen lines, not thousands.
 */
export class OutageLog {
  private failures = 0;
  private loggedAt = 0;
  private readonly everyMs: number;
  private readonly level: 'error' | 'warn';
  private readonly failedMessage: string;
  private readonly repeats: 'drop' | 'debug';

  constructor(
    /** `debug` is needed only for `repeats: 'debug'`. */
    private readonly logger: Pick<Logger, 'error' | 'warn' | 'info'> & Partial<Pick<Logger, 'debug' | 'isLevelEnabled'>>,
    private readonly what: string,
    opts: OutageLogOptions = {},
  ) {
    this.everyMs = opts.everyMs ?? OUTAGE_LOG_EVERY_MS;
    this.level = opts.level ?? 'error';
    this.failedMessage = opts.failedMessage ?? `${what} failed, will retry`;
    this.repeats = opts.repeats ?? 'drop';
  }

  /** Whether the last try failed: an outage is under way. */
  get failing(): boolean {
    return this.failures > 0;
  }

  /** A failed try at `now`; `fields` (the pause before the next try, say) go on the line, if one is written. */
  failed(err: unknown, now: number, fields?: Record<string, unknown>): void {
    this.failures++;
    if (this.failures > 1 && now - this.loggedAt < this.everyMs) {
      if (this.repeats === 'debug' && (this.logger.isLevelEnabled?.('debug') ?? true)) {
        this.logger.debug?.(this.failedMessage, { ...fields, ...errorFields(err), failures: this.failures, repeat: true });
      }
      return;
    }
    this.loggedAt = now;
    this.logger[this.level](this.failedMessage, { ...fields, ...errorFields(err), failures: this.failures });
  }

  /** A try that worked: logs the end of an outage, if there was one, with `fields`. */
  succeeded(fields?: Record<string, unknown>): void {
    if (this.failures === 0) return;
    this.logger.info(`${this.what} works again`, { ...fields, failures: this.failures });
    this.failures = 0;
  }
}

/** At most one line per this while an outage lasts. */
export const OUTAGE_LOG_EVERY_MS = 60_000;
