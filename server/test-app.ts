/**
 * Test fixture: the app on the real MariaDB, in a database of its own that
 * `close()` drops. Used by `server/*.test.ts` only.
 */
import type { FastifyInstance } from 'fastify';
import { monotonicFactory } from 'ulid';
import type { Clock, JobStore } from '../engine/ports.js';
import { TransitionService } from '../engine/transitions.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { createTestStore } from '../tests/helpers/mysql.js';
import { buildApp, type AppDeps } from './app.js';

export interface TestApp {
  app: FastifyInstance;
  store: JobStore;
  transitions: TransitionService;
  clock: Clock;
  /** The deps the app was built from: `buildApp({ ...deps, checks })` makes a variant on the same database. */
  deps: AppDeps;
  /** Closes the app and the store, then drops the database. */
  close(): Promise<void>;
}

/** The real clock, with `sleep` honouring its signal so no timer outlives a test. */
export const testClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(signal.reason);
      }, { once: true });
    }),
};

export const TEST_DEFAULTS: AppDeps['defaults'] = Object.freeze({
  queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0,
});

/** Build the app on a fresh database; `overrides` replace deps (checks, limits, knownTypes...). */
export async function startTestApp(overrides: Partial<AppDeps> = {}): Promise<TestApp> {
  const { store, cleanup } = await createTestStore({ poolSize: 4 });
  try {
    const ulid = monotonicFactory();
    const transitions = new TransitionService({
      store, clock: testClock, random: { next: Math.random }, ids: { jobId: () => ulid() },
    });
    const deps: AppDeps = {
      transitions, store, clock: testClock,
      checks: { database: () => store.ping() },
      limits: { bodyLimitBytes: 1024 * 1024 },
      defaults: TEST_DEFAULTS,
      ...overrides,
    };
    const app = await buildApp(deps);
    const close = async () => {
      await app.close();
      await cleanup();
    };
    return { app, store, transitions, clock: testClock, deps, close };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** A random queue name: tests sharing a database stay apart. */
export const randomQueue = (): string => `q-${Math.random().toString(36).slice(2, 10)}`;
