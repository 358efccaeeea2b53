/**
 * Worker presence: each worker process keeps a row saying who it is (id,
 * host, pid), what it can run (its handlers' types, the queues it serves,
 * its concurrency) and when it was last seen, so the api can list live
 * workers and say which waiting jobs no live worker can run.
 *
 * A row is replaced every PRESENCE_INTERVAL_MS and deleted on a graceful
 * stop; one not seen for PRESENCE_TTL_MS is not live (its process died or
 * lost the database), and one not seen for PRESENCE_PURGE_MS is deleted by
 * the next heartbeat of any worker. Presence decides nothing about which
 * worker gets which job; the timers read it to leave alone a job no live
 * worker can run (engine/timers.ts), instead of dispatching it again.
 */
import { errorFields } from './logger.js';
import { BackgroundLoop, unlessStopped } from './loop.js';
import { OutageLog } from './error-backoff.js';
import type { Clock, JobCount, Logger, WorkerRecord, WorkerRegistryStore } from './ports.js';

export const PRESENCE_INTERVAL_MS = 5_000;
export const PRESENCE_TTL_MS = 15_000;
export const PRESENCE_PURGE_MS = 3_600_000;
/** How long a stop waits for the store to delete the row. */
export const PRESENCE_STOP_WAIT_MS = 1_000;
/** The queue list of a worker that serves every queue. */
export const ALL_QUEUES = '*';
/** Most workers a store lists (`WorkerRegistryStore.listWorkers`). */
export const MAX_WORKERS_LISTED = 1000;

export const isLive = (w: Pick<WorkerRecord, 'lastSeenAt'>, now: number): boolean => w.lastSeenAt >= now - PRESENCE_TTL_MS;

/** Jobs of a type and queue waiting to start that no live worker can run. */
export interface Unserved {
  type: string;
  queue: string;
  /** Jobs pending or published. */
  waiting: number;
}

/** States of a job waiting for a worker to start it. */
const WAITING = new Set(['pending', 'published']);

/**
 * The (type, queue) pairs with jobs waiting to start that no live worker
 * handles: none lists the type among its handlers and serves the queue.
 */
export function unserved(counts: readonly JobCount[], workers: readonly WorkerRecord[], now: number): Unserved[] {
  const serves = servedBy(workers, now);
  const waiting = new Map<string, Unserved>();
  for (const c of counts) {
    if (!WAITING.has(c.state) || c.n <= 0 || serves(c.type, c.queue)) continue;
    const key = JSON.stringify([c.type, c.queue]);
    const u = waiting.get(key);
    if (u) u.waiting += c.n;
    else waiting.set(key, { type: c.type, queue: c.queue, waiting: c.n });
  }
  return [...waiting.values()].sort((a, b) => a.type.localeCompare(b.type) || a.queue.localeCompare(b.queue));
}

/**
 * Whether a live worker of `workers` lists `type` among its handlers and
 * serves `queue`. Each (type, queue) is looked up once: many jobs ask about
 * few pairs, and a lookup walks every live worker's lists.
 */
export function servedBy(workers: readonly WorkerRecord[], now: number): (type: string, queue: string) => boolean {
  const live = workers.filter((w) => isLive(w, now));
  const answers = new Map<string, boolean>();
  return (type, queue) => {
    const key = JSON.stringify([type, queue]);
    let yes = answers.get(key);
    if (yes === undefined) {
      yes = live.some((w) => w.types.includes(type) && (w.queues.includes(ALL_QUEUES) || w.queues.includes(queue)));
      answers.set(key, yes);
    }
    return yes;
  };
}

export interface WorkerPresenceDeps {
  store: WorkerRegistryStore;
  clock: Clock;
  logger: Logger;
}

/** This worker's row, kept fresh while it runs. */
export class WorkerPresence {
  /** Beats every PRESENCE_INTERVAL_MS until stopped (the first beat is start()'s). */
  private readonly loop = new BackgroundLoop(async (signal) => {
    while (await this.deps.clock.sleep(PRESENCE_INTERVAL_MS, signal).then(() => true, () => false)) await this.beat();
  });
  private startedAt = 0;
  /** Aborted by stop(): a beat in flight returns at once, and none begins. */
  private readonly stopping = new AbortController();
  /** A heartbeat failing while the database is down: the first failure, one line a minute, then the recovery. */
  private readonly outage: OutageLog;

  constructor(
    private readonly deps: WorkerPresenceDeps,
    private readonly me: Pick<WorkerRecord, 'id' | 'host' | 'pid' | 'concurrency'> & {
      types: () => readonly string[];
      /** The queues served; none (or empty) for every queue. */
      queues?: readonly string[];
    },
  ) {
    this.outage = new OutageLog(deps.logger, 'workers: presence heartbeat', { level: 'warn' });
  }

  /** Writes the row once (a failure is logged; the heartbeat tries again) and keeps it fresh, unless stopped meanwhile. */
  async start(): Promise<void> {
    this.startedAt = this.deps.clock.now();
    await this.beat();
    if (!this.stopping.signal.aborted) this.loop.start();
  }

  /**
   * Stops the heartbeat and deletes the row (best effort: a row left behind stops being live after the TTL).
   * Waits for no store call beyond PRESENCE_STOP_WAIT_MS: a store that does not answer must not hold the
   * process's shutdown. A write still in flight that lands later deletes its row again (see `beat`).
   * A stopped presence does not start again.
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop.stop();
    const waited = new AbortController();
    const gaveUp = this.deps.clock.sleep(PRESENCE_STOP_WAIT_MS, waited.signal).then(() => true, () => false);
    const late = await Promise.race([this.deleteRow().then(() => false), gaveUp]);
    waited.abort();
    if (late) this.deps.logger.warn(`workers: presence row delete did not answer within ${PRESENCE_STOP_WAIT_MS} ms; left to go stale`, { id: this.me.id });
  }

  private deleteRow(): Promise<void> {
    return this.deps.store.deleteWorker(this.me.id).catch((err: unknown) => this.deps.logger.warn('workers: presence row not deleted', errorFields(err)));
  }

  /** One heartbeat: the row, then rows unseen for PRESENCE_PURGE_MS deleted. */
  async beat(): Promise<void> {
    const { store, clock } = this.deps;
    const now = clock.now();
    const stopped = this.stopping.signal;
    if (stopped.aborted) return;
    const write = store.upsertWorker({
      id: this.me.id, host: this.me.host, pid: this.me.pid, queues: this.me.queues?.length ? [...this.me.queues] : [ALL_QUEUES], types: [...this.me.types()].sort(),
      concurrency: this.me.concurrency, startedAt: this.startedAt, lastSeenAt: now,
    });
    // A write that lands after the stop (the store answered late) left a row the stop's delete may have missed.
    void write.then(() => (stopped.aborted ? this.deleteRow() : undefined), () => undefined);
    try {
      await unlessStopped(write, stopped);
      await unlessStopped(store.purgeWorkers(now - PRESENCE_PURGE_MS), stopped);
      this.outage.succeeded();
    } catch (err) {
      if (stopped.aborted) return;
      this.outage.failed(err, now);
    }
  }
}

