/**
 * Test fixture: the app on the real MariaDB, in a database of its own that
 * `close()` drops (or, `startSqliteTestApp`, on a fresh SQLite file that
 * `close()` removes). Used by `server/*.test.ts` only.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { monotonicFactory } from 'ulid';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import type { AuthMode } from '../../engine/auth.js';
import type { AuditStore, Clock, JobStore, KeyStore, LimitStore, ProgressStore, ScheduleStore, WorkerRegistryStore, WorkflowStore } from '../../engine/ports.js';
import { ScheduleService } from '../../engine/schedules.js';
import { systemClock } from '../../engine/system.js';
import { TransitionService } from '../../engine/transitions.js';
import { WorkflowService, type WorkflowDefinitions } from '../../engine/workflows.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { createTestStore } from './mysql.js';
import { buildApp, type AppDeps } from '../../server/app.js';

/** What the test apps run on: both SQL stores are all of these. */
type TestStore = JobStore & ScheduleStore & ProgressStore & WorkerRegistryStore & LimitStore & KeyStore & AuditStore & WorkflowStore;

export interface TestApp {
  app: FastifyInstance;
  store: TestStore;
  transitions: TransitionService;
  /**
   * The schedules of the /v1/schedules routes (on `store`; `schedules: undefined` in the overrides builds an app without them).
   * The app reads the worker registry on `store` too (`GET /v1/workers`, `unserved` in `/v1/stats`): `workers: undefined` builds one without.
   * Likewise the limits of `/v1/limits` (`limitStore: undefined` builds one without).
   */
  schedules: ScheduleService;
  /** The workflows of the /v1/workflows routes, with `options.workflows` only. */
  workflows?: WorkflowService;
  clock: Clock;
  /** The deps the app was built from: `buildApp({ ...deps, checks })` makes a variant on the same database. */
  deps: AppDeps;
  /** Closes the app and the store, then drops the database. */
  close(): Promise<void>;
}

/** The real clock (its `sleep` honours its signal, so no timer outlives a test). */
export const testClock: Clock = systemClock;

export const TEST_DEFAULTS: AppDeps['defaults'] = Object.freeze({
  queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0,
});

/** Deps of the test app made on its store (which `overrides` cannot name: it does not exist yet). */
export interface TestAppOptions {
  /**
   * API keys on the app's store in this mode (`deps.auth`, with real ids and
   * randomness), and the audit log on it (`deps.audit`). @defaultValue none: the open API, no audit
   */
  auth?: AuthMode;
  /** Workflow definitions (a HandlerRegistry): the app serves /v1/workflows on its store with them. @defaultValue none */
  workflows?: WorkflowDefinitions;
}

/** Build the app on a fresh database; `overrides` replace deps (checks, limits, knownTypes...). */
export async function startTestApp(overrides: Partial<AppDeps> = {}, options: TestAppOptions = {}): Promise<TestApp> {
  const { store, cleanup } = await createTestStore({ poolSize: 4 });
  return startOn(store, cleanup, overrides, options);
}

/** Build the app on a fresh SQLite file (the embedded default); `close()` removes it. */
export async function startSqliteTestApp(overrides: Partial<AppDeps> = {}, options: TestAppOptions = {}): Promise<TestApp> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-app-'));
  const store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
  const cleanup = async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await store.migrate();
  } catch (error) {
    await cleanup();
    throw error;
  }
  return startOn(store, cleanup, overrides, options);
}

async function startOn(store: TestStore, cleanup: () => Promise<void>, overrides: Partial<AppDeps>, options: TestAppOptions): Promise<TestApp> {
  try {
    const ulid = monotonicFactory();
    const transitions = new TransitionService({
      store, clock: testClock, random: { next: Math.random }, ids: { jobId: () => ulid() },
    });
    const schedules = new ScheduleService({ store, clock: testClock });
    const workflows = options.workflows
      ? new WorkflowService({ store, clock: testClock, ids: { jobId: () => ulid() }, definitions: options.workflows })
      : undefined;
    const deps: AppDeps = {
      transitions, store, schedules, clock: testClock, progress: store, workers: store, limitStore: store,
      checks: { database: () => store.ping() },
      limits: { bodyLimitBytes: 1024 * 1024 },
      defaults: TEST_DEFAULTS,
      ...(workflows ? { workflows } : {}),
      ...(options.auth ? { auth: { keys: store, mode: options.auth, newKeyId: () => ulid(), randomBytes: (n: number) => randomBytes(n) }, audit: store } : {}),
      ...overrides,
    };
    const app = await buildApp(deps);
    const close = async () => {
      await app.close();
      await cleanup();
    };
    return { app, store, transitions, schedules, ...(workflows ? { workflows } : {}), clock: testClock, deps, close };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** A random queue name: tests sharing a database stay apart. */
export const randomQueue = (): string => `q-${Math.random().toString(36).slice(2, 10)}`;

/**
 * Follows `nextCursor` from `url` (a list route: `GET /v1/jobs` or `GET /v1/workflows`, with its
 * query) and returns the ids of each page's `items` (`jobs` or `workflows`); at most 10 pages.
 */
export async function pageIds(app: FastifyInstance, url: string, items: 'jobs' | 'workflows'): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | null = null;
  do {
    const next: string = cursor ? `${url}&cursor=${cursor}` : url;
    const r = await app.inject({ url: next });
    assert.equal(r.statusCode, 200, r.body);
    const page = r.json() as { jobs?: Array<{ id: string }>; workflows?: Array<{ id: string }>; nextCursor: string | null };
    pages.push(page[items]!.map((item) => item.id));
    cursor = page.nextCursor;
  } while (cursor && pages.length < 10);
  return pages;
}
