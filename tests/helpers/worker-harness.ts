/**
 * Workers on one in-process system for engine tests: an in-memory SQLite
 * store, the in-process log (every record kept), a running relay, and as many
 * workers as a test starts (keeping the dispatches they hold back for limits
 * in the store, as `ats start` does), each stopped by `stop()`.
 */
import assert from 'node:assert/strict';
import { createMemoryLog, type MemoryLog, type MemoryLogOptions } from '../../adapters/memory/index.js';
import { createSqliteStore, type SqliteStore } from '../../adapters/sqlite/index.js';
import type { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import type { JobSpec } from '../../engine/ports.js';
import { Relay } from '../../engine/relay.js';
import { mathRandom, systemClock, ulidIds } from '../../engine/system.js';
import { TransitionService } from '../../engine/transitions.js';
import { Waker } from '../../engine/wake.js';
import { Worker, type WorkerDeps, type WorkerOptions } from '../../engine/worker.js';

export interface WorkerHarness {
  store: SqliteStore;
  log: MemoryLog;
  transitions: TransitionService;
  /**
   * Starts a worker on the shared store and log (stopped by `stop`); `deps` replaces its clock or logger, the log it
   * reads (one over the shared log), or the store it keeps its held dispatches in (one over the shared store).
   */
  worker(workerId: string, opts?: Partial<WorkerOptions>, deps?: Partial<Pick<WorkerDeps, 'clock' | 'logger' | 'log' | 'store'>>): Promise<Worker>;
  submit(s: JobSpec): Promise<string>;
  stop(): Promise<void>;
}

/** A relay over an in-memory SQLite store and the in-process log (every record kept), and workers on them. */
export async function workerHarness(registry: HandlerRegistry, logOptions: MemoryLogOptions = {}): Promise<WorkerHarness> {
  const clock = systemClock;
  const store = createSqliteStore({ file: ':memory:', clock });
  await store.migrate();
  const log = createMemoryLog({ retainAll: true, ...logOptions });
  await log.ensureTopics();
  const waker = new Waker();
  const transitions = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds(), onCommit: () => waker.notify() });
  const relay = new Relay({ store, log, transitions, clock, logger: silentLogger, waker }, { batchSize: 100, pollMs: 20, errorBackoffMs: 50, publishedDelayMs: 0 });
  relay.start();
  const workers: Worker[] = [];
  return {
    store, log, transitions,
    async worker(workerId, opts = {}, deps = {}) {
      const w = new Worker(
        { log, transitions, clock, logger: silentLogger, registry, store, ...deps },
        { workerId, groupId: 'ats-workers', concurrency: 4, leaseMs: 120_000, heartbeatMs: 60_000, shutdownGraceMs: 200, ...opts },
      );
      await w.start();
      workers.push(w);
      return w;
    },
    async submit(s) {
      const r = await transitions.submit(s);
      assert.ok(r.ok, `submitted: ${JSON.stringify(r)}`);
      return r.job.id;
    },
    async stop() {
      for (const w of workers) await w.stop();
      await relay.stop();
      await log.close();
      await store.close();
    },
  };
}

