/**
 * A handler's progress (`ctx.progress(value)`): checked at once, stored as the
 * job's latest progress at most once every PROGRESS_INTERVAL_MS per attempt
 * (the last value reported always gets written), never a history row.
 */
import type { Clock, Logger, ProgressStore } from './ports.js';
import { errorFields } from './logger.js';

/** Largest progress object, as JSON text in UTF-8 bytes. */
export const MAX_PROGRESS_BYTES = 1024;
/** Shortest time between two progress writes of one attempt. */
export const PROGRESS_INTERVAL_MS = 500;
/** Deepest nesting of a progress object. */
const MAX_DEPTH = 8;

/**
 * The value's JSON text, or a TypeError / RangeError saying why it is not
 * progress: a number from 0 to 100, or a plain JSON object of at most
 * MAX_PROGRESS_BYTES.
 */
export function progressJson(value: unknown): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0 || value > 100) throw new RangeError(`progress must be a number from 0 to 100, not ${String(value)}`);
    return JSON.stringify(value);
  }
  if (!isPlainObject(value)) {
    throw new TypeError(`progress must be a number from 0 to 100 or a JSON object, not ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
  }
  checkJson(value, 0);
  const text = JSON.stringify(value);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_PROGRESS_BYTES) throw new RangeError(`progress is ${bytes} bytes of JSON; at most ${MAX_PROGRESS_BYTES} are kept`);
  return text;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Throws unless `v` is made of what JSON carries as it is (no undefined, functions, symbols, bigints, NaN, Dates, cycles). */
function checkJson(v: unknown, depth: number): void {
  if (depth > MAX_DEPTH) throw new RangeError(`progress nests deeper than ${MAX_DEPTH} levels`);
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`progress holds ${String(v)}, which JSON cannot carry`);
      return;
    case 'object':
      if (v === null) return;
      if (Array.isArray(v)) {
        for (const x of v) checkJson(x, depth + 1);
        return;
      }
      if (!isPlainObject(v)) throw new TypeError('progress holds an object that is not plain JSON (a Date, a Map, a class instance)');
      for (const x of Object.values(v)) checkJson(x, depth + 1);
      return;
    default:
      throw new TypeError(`progress holds a ${typeof v}, which JSON cannot carry`);
  }
}

export interface ProgressReporterDeps {
  store: Pick<ProgressStore, 'setProgress'>;
  clock: Clock;
  log: Logger;
  /**
   * The attempt's signal: once it aborts, no write waits out the interval
   * any more (what is pending then is left to `flush`, or dropped by `close`),
   * and a report resolves at once, so a handler that awaits one on its way
   * out is not held until the worker flushes.
   * @defaultValue none
   */
  signal?: AbortSignal;
}

/**
 * One attempt's progress writes: the first at once, later ones at most every
 * PROGRESS_INTERVAL_MS with the newest value then; `flush` writes what is
 * pending now (before the attempt's outcome, which ends its right to write),
 * `close` drops it (an attempt given up: crashed, cancelled, left to its
 * lease). After either, nothing more is written.
 */
export class ProgressReporter {
  /** The value to write next, and the one promise every report waiting for it is given (a tight loop of reports holds no memory per report). */
  private pending: Pending | null = null;
  private lastWriteAt = Number.NEGATIVE_INFINITY;
  private timer: Promise<void> | null = null;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly deps: ProgressReporterDeps, private readonly jobId: string, private readonly attempt: number) {}

  /** Checks `value` (throws at once if it is not progress) and schedules its write. */
  report(value: unknown): Promise<void> {
    const json = progressJson(value);
    if (this.closed) return Promise.resolve();
    if (this.pending) this.pending.json = json;
    else this.pending = pendingValue(json);
    const { written } = this.pending;
    this.schedule();
    if (this.deps.signal?.aborted) this.release();
    return written;
  }

  /** Lets the reports waiting for the pending value go on; the value stays pending (for `flush` or `close`). */
  private release(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = pendingValue(p.json);
    p.resolve();
  }

  /** Writes the pending value now and stops taking more. */
  async flush(): Promise<void> {
    this.closed = true;
    await this.writing;
    await this.write();
  }

  /** Stops taking more and drops the pending value; resolves once no write is in flight. */
  async close(): Promise<void> {
    this.closed = true;
    this.release();
    this.pending = null;
    await this.writing;
  }

  private schedule(): void {
    const { clock, signal } = this.deps;
    if (this.timer || signal?.aborted) return;
    const wait = this.lastWriteAt + PROGRESS_INTERVAL_MS - clock.now();
    this.timer = (wait > 0 ? clock.sleep(wait, signal) : Promise.resolve()).then(() => {
      this.timer = null;
      if (signal?.aborted) return this.release();
      this.writing = this.writing.then(() => this.write());
    }, () => {
      this.timer = null; // aborted: the pending value waits for flush or close, its reports do not
      this.release();
    });
  }

  private async write(): Promise<void> {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    this.lastWriteAt = this.deps.clock.now();
    try {
      const stored = await this.deps.store.setProgress(this.jobId, this.attempt, p.json, this.lastWriteAt);
      if (!stored) this.deps.log.debug('worker: progress not stored (the attempt is no longer running)');
    } catch (err) {
      this.deps.log.warn('worker: progress not stored', errorFields(err));
    } finally {
      p.resolve();
    }
  }
}

/** A value waiting to be written, and what resolves the reports waiting for it. */
interface Pending {
  json: string;
  written: Promise<void>;
  resolve: () => void;
}

function pendingValue(json: string): Pending {
  let resolve!: () => void;
  const written = new Promise<void>((r) => (resolve = r));
  return { json, written, resolve };
}
