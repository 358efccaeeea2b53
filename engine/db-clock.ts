/**
 * One clock for every process of a deployment: the database's.
 *
 * Leases and due times are written by one process and judged by another (a
 * worker writes `leaseUntil`, the timers compare it with their "now"). On
 * host clocks, a worker whose clock runs behind keeps a lease the timers
 * already consider expired, or the reverse. So every role reads time as the
 * database's: the offset of the database's clock from this host's is measured
 * at start and re-measured periodically, and `now()` is the host clock plus
 * that offset. The host clock read is the one the time of day does not move
 * (the base's `elapsed`, `performance.now()` in production): a step of the
 * host's time (an NTP correction) between two measurements would otherwise
 * move `now()` with it until the next, judging live leases expired or firing
 * schedules early. The monotonic clock has its own gap: Linux's does not
 * count a suspend (a laptop's sleep, a paused VM), after which it reads
 * behind. Either way the two host clocks move apart, which only the database
 * can settle: once they are more than CLOCKS_APART_MS apart since the last
 * measurement, `now()` has the offset measured again at once (its answer
 * stands until then). Sleeps stay on the host clock (durations do not care
 * about offsets).
 *
 * A measurement takes the database time halfway through the round trip, and
 * keeps the sample with the shortest round trip: its error is at most half
 * that round trip. Between measurements the host clock may drift; so two
 * processes agree within RTT/2 each plus the drift over `resyncMs` (see
 * README, "Clocks").
 */
import { OutageLog } from './error-backoff.js';
import { silentLogger } from './logger.js';
import { BackgroundLoop } from './loop.js';
import type { Clock, Logger } from './ports.js';

export interface DbClockOptions {
  /** The host clock the offset is added to; sleeps use it as is. */
  base: Clock;
  /** The database's current time, epoch ms (one round trip). */
  dbNow: () => Promise<number>;
  /** How often the offset is measured again. @defaultValue 60000 */
  resyncMs?: number;
  /** Round trips per measurement; the shortest one's is kept. @defaultValue 3 */
  samples?: number;
  logger?: Logger;
}

/** One measurement: the database's clock minus the host's (its `elapsed` when it has one), and how precise it is. */
export interface ClockOffset {
  offsetMs: number;
  /** The round trip of the sample kept: the offset is right within half of it. */
  rttMs: number;
}

/** Measures the offset of `dbNow` from `base`: the sample with the shortest round trip wins. */
export async function measureOffset(base: Clock, dbNow: () => Promise<number>, samples = 3): Promise<ClockOffset> {
  const read = hostReading(base);
  let best: ClockOffset | null = null;
  for (let i = 0; i < Math.max(1, samples); i++) {
    const sent = read();
    const db = await dbNow();
    const received = read();
    const rttMs = received - sent;
    if (!best || rttMs < best.rttMs) best = { offsetMs: db - (sent + received) / 2, rttMs };
  }
  return best!;
}

/**
 * How far the host's time of day and its monotonic clock may move apart since the last measurement
 * before the offset is measured again out of turn: NTP slews both alike, so only a step of the time
 * of day or a suspend moves them apart.
 */
export const CLOCKS_APART_MS = 1000;

/** The host clock as the offset is measured against: its `elapsed`, else its `now`. */
function hostReading(base: Clock): () => number {
  return base.elapsed ? () => base.elapsed!() : () => base.now();
}

/** The database's time, read through the host clock plus a measured offset. */
export class DbClock implements Clock {
  private offset: ClockOffset | null = null;
  private readonly loop = new BackgroundLoop((signal) => this.resyncLoop(signal));
  private readonly read: () => number;
  /** Both host clocks as read at the last measurement (only when they differ: the base has `elapsed`). */
  private anchor: { day: number; read: number } | null = null;
  /** A measurement out of turn, in flight. */
  private measuring: Promise<void> | null = null;
  /** The gap of the host's time of day from the database's last told in the log (0: none told). */
  private toldAheadMs = 0;

  /** Measurements that fail (the database down): the first told, then a line a minute with the count, then the first that works. */
  private readonly outage: OutageLog;

  constructor(private readonly opts: DbClockOptions) {
    this.read = hostReading(opts.base);
    this.outage = new OutageLog(opts.logger ?? silentLogger, 'clock: measuring the database clock', {
      level: 'warn', failedMessage: 'clock: measuring the database clock failed, keeping the last offset',
    });
  }

  /** The database's time; before the first `sync`, the host's time of day. */
  now(): number {
    if (!this.offset) return this.opts.base.now();
    const read = this.read();
    if (this.anchor && !this.measuring) {
      const apart = (this.opts.base.now() - this.anchor.day) - (read - this.anchor.read);
      if (Math.abs(apart) > CLOCKS_APART_MS) this.measureOutOfTurn(apart);
    }
    return Math.round(read + this.offset.offsetMs);
  }

  /** The host's clocks moved `apart` ms apart: a step of its time of day, or a suspend. Measured again; a failure waits for the next turn. */
  private measureOutOfTurn(apart: number): void {
    this.opts.logger?.info('clock: the host\'s time of day and its monotonic clock moved apart (a step of the time, a suspend); measuring the database clock again', { apartMs: Math.round(apart) });
    this.measuring = this.sync().then(() => this.outage.succeeded(), (err: unknown) => {
      this.anchor = this.anchorNow(); // not again at every read: the next measurement in turn settles it
      this.outage.failed(err, this.opts.base.now());
    }).finally(() => {
      this.measuring = null;
    });
  }

  private anchorNow(): { day: number; read: number } | null {
    return this.opts.base.elapsed ? { day: this.opts.base.now(), read: this.read() } : null;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return this.opts.base.sleep(ms, signal);
  }

  /** The last measurement (null before the first `sync`). */
  get lastOffset(): ClockOffset | null {
    return this.offset;
  }

  /** Measure the offset now; rejects when the database does not answer (the last offset stays). */
  async sync(): Promise<ClockOffset> {
    this.offset = await measureOffset(this.opts.base, this.opts.dbNow, this.opts.samples ?? 3);
    this.anchor = this.anchorNow();
    this.tellGap();
    return this.offset;
  }

  /**
   * The scheduler reads the database's time whatever the host's, but the host's time of day is
   * still this process's log timestamps (and any handler's `Date.now()`): a gap of more than
   * CLOCKS_APART_MS is told, once until it changes by as much again.
   */
  private tellGap(): void {
    const aheadMs = this.opts.base.now() - (this.read() + this.offset!.offsetMs);
    const gap = Math.abs(aheadMs) > CLOCKS_APART_MS ? Math.round(aheadMs) : 0;
    if (Math.abs(gap - this.toldAheadMs) <= CLOCKS_APART_MS) return;
    this.toldAheadMs = gap;
    if (gap === 0) {
      this.opts.logger?.info('clock: the host\'s time of day agrees with the database\'s again (within a second)');
      return;
    }
    this.opts.logger?.warn(`clock: the host's time of day is ${(Math.abs(gap) / 1000).toFixed(1)} s ${gap > 0 ? 'ahead of' : 'behind'} the database's. Leases, due times and schedules use the database's time, but this process's log timestamps (and a handler's Date.now()) are the host's: synchronize the host's clock (NTP)`, { hostAheadMs: gap });
  }

  /** Re-measure every `resyncMs` until `stop()`; a failed measurement keeps the last offset. */
  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async resyncLoop(signal: AbortSignal): Promise<void> {
    const every = this.opts.resyncMs ?? 60_000;
    while (!signal.aborted) {
      try {
        await this.opts.base.sleep(every, signal);
        await this.sync();
        this.outage.succeeded();
      } catch (err) {
        if (signal.aborted) return;
        this.outage.failed(err, this.opts.base.now());
      }
    }
  }
}
