/**
 * The relay's PUBLISHED bookkeeping, recorded a little after the dispatches
 * went out and behind the publishing (see `RelayOptions.publishedDelayMs`).
 *
 * `DueQueue` is the pure part: batches of items, each due at a time, taken in
 * order. `PublishedRecorder` runs it: one record call at a time, every item
 * whose time came (all of them once stopping), and it holds the publishing
 * side back (`room()`) while too much waits, so what it keeps stays bounded.
 * A record call that fails is logged and its items dropped: PUBLISHED is
 * bookkeeping (a job without it still runs, and the timers redispatch it if
 * its message was lost).
 */
import { errorFields } from './logger.js';
import type { Clock, Logger } from './ports.js';
import { Waker } from './wake.js';

export class DueQueue<T> {
  private readonly batches: Array<{ due: number; items: T[] }> = [];
  /** Items waiting. */
  size = 0;

  push(items: readonly T[], due: number): void {
    if (items.length === 0) return;
    this.batches.push({ due, items: [...items] });
    this.size += items.length;
  }

  /** When the oldest batch is due, or null when empty. Batches are pushed in due order. */
  nextDue(): number | null {
    return this.batches[0]?.due ?? null;
  }

  /** Items of the batches due at `now` (every batch when `all`), oldest first, at most `max` (a batch may be split). */
  take(now: number, max: number, all = false): T[] {
    const out: T[] = [];
    while (out.length < max && this.batches.length > 0 && (all || this.batches[0]!.due <= now)) {
      const b = this.batches[0]!;
      const room = max - out.length;
      if (b.items.length <= room) {
        out.push(...b.items);
        this.batches.shift();
      } else {
        out.push(...b.items.splice(0, room));
      }
    }
    this.size -= out.length;
    return out;
  }
}

export interface RecorderOptions {
  delayMs: number;
  /** Items per record call. */
  maxPerRecord: number;
  /** Items waiting from which they are recorded without waiting for their time, and `room()` holds the caller. */
  limit: number;
}

export class PublishedRecorder<T> {
  private readonly queue = new DueQueue<T>();
  private readonly wake = new Waker();
  private readonly drained = new Waker();
  private loop: Promise<void> | null = null;

  constructor(
    private readonly deps: { clock: Clock; logger: Logger; record: (items: T[]) => Promise<unknown> },
    private readonly opts: RecorderOptions,
  ) {}

  get size(): number {
    return this.queue.size;
  }

  private stopping = new AbortController();

  /**
   * Starts recording. It runs until `stop()`, which records what is left at
   * once: its own signal, not the caller's, so items added after the caller
   * began stopping (a batch whose publish was in flight) are still recorded.
   */
  start(): void {
    this.loop ??= this.run(this.stopping.signal);
  }

  add(items: readonly T[]): void {
    this.queue.push(items, this.deps.clock.now() + this.opts.delayMs);
    this.wake.notify();
  }

  /** Resolves once fewer than `limit` items wait (at once if so already), or on abort. */
  async room(signal: AbortSignal): Promise<void> {
    while (this.queue.size >= this.opts.limit && !signal.aborted) await this.drained.wait(this.deps.clock, 1000, signal);
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.wake.notify();
    await this.loop;
    this.loop = null;
    this.stopping = new AbortController();
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { clock, logger, record } = this.deps;
    for (;;) {
      const stopping = signal.aborted;
      const next = this.queue.nextDue();
      if (next === null) {
        if (stopping) return;
        await this.wake.wait(clock, 60_000, signal);
        continue;
      }
      const now = clock.now();
      const over = this.queue.size >= this.opts.limit;
      if (!stopping && !over && next > now) {
        await this.wake.wait(clock, next - now, signal);
        continue;
      }
      const items = this.queue.take(now, this.opts.maxPerRecord, stopping || over);
      try {
        await record(items);
      } catch (err) {
        logger.error('relay: recording PUBLISHED failed (the jobs still run)', errorFields(err));
      }
      this.drained.notify();
    }
  }
}
