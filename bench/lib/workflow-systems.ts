/**
 * What the workflow benchmark (`bench/workflows.ts`) runs on: two workflow
 * definitions over one no-op job type, and this scheduler with them
 * registered, on MariaDB + Kafka or embedded, all roles in the benchmark
 * process (as `ats-mysql` and `ats-embedded` in bench/systems/ats.ts, which
 * register only `bench.job`). Reads for the benchmark's own bookkeeping
 * (counts, times) go to the database through a connection of their own, as
 * the job benchmark's do, not through the scheduler's store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createPool } from 'mysql2/promise';
import { assign, enqueueActions, setup } from 'xstate';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig, type RawConfig } from '../../cli/config.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { createLogger } from '../../engine/logger.js';
import type { JobSpec } from '../../engine/ports.js';
import { DEFAULT_CHILD_JOB } from '../../engine/workflows.js';
import { job } from '../../machines/workflow.js';
import { runId } from './driver.js';
import type { ServerName } from './proc.js';
import { createBenchDatabase, deleteTopicsWithPrefix, kafkaBrokers } from './services.js';

/** The job every invocation runs: does nothing, returns null. */
export const NOOP_JOB_TYPE = 'bench.noop';
export const SEQUENTIAL3 = 'bench.sequential3';
export const FANOUT10 = 'bench.fanout10';
/** Children the fan-out workflow spawns. */
export const FANOUT_WIDTH = 10;

const noop = job<null, { step: number }>(NOOP_JOB_TYPE);

/** Three invocations of the no-op job one after another, then final. */
export const sequential3 = setup({ actors: { noop } }).createMachine({
  id: 'sequential3',
  initial: 'first',
  states: {
    first: { invoke: { src: 'noop', input: () => ({ step: 1 }), onDone: 'second' } },
    second: { invoke: { src: 'noop', input: () => ({ step: 2 }), onDone: 'third' } },
    third: { invoke: { src: 'noop', input: () => ({ step: 3 }), onDone: 'done' } },
    done: { type: 'final' },
  },
});

type ChildEnd = { type: `xstate.done.actor.${string}`; output: null };

/**
 * Ten no-op jobs spawned at once (`spawnChild`, as examples/fan-out.ts), joined
 * when the last one is in, then final. A child that fails is not handled, so
 * it fails the instance: the benchmark counts instances that did not end `done`.
 */
export const fanout10 = setup({
  types: { context: {} as { ended: number }, events: {} as ChildEnd },
  actors: { noop },
}).createMachine({
  id: 'fanout10',
  initial: 'fanning',
  context: { ended: 0 },
  states: {
    fanning: {
      entry: enqueueActions(({ enqueue }) => {
        for (let i = 0; i < FANOUT_WIDTH; i++) enqueue.spawnChild('noop', { id: `noop-${i}`, input: { step: i } });
      }),
      on: { 'xstate.done.actor.*': { actions: assign({ ended: ({ context }) => context.ended + 1 }) } },
      always: { guard: ({ context }) => context.ended === FANOUT_WIDTH, target: 'done' },
    },
    done: { type: 'final' },
  },
});

export function workflowRegistry(): HandlerRegistry {
  return new HandlerRegistry()
    .register(NOOP_JOB_TYPE, async () => null)
    .workflow(SEQUENTIAL3, sequential3, { version: 1 })
    .workflow(FANOUT10, fanout10, { version: 1 });
}

/**
 * A single no-op job as the baseline submits it: the type and the options a
 * workflow's child gets (engine/workflows.ts DEFAULT_CHILD_JOB), so the two
 * sides run the same jobs.
 */
export function noopSpec(i: number): JobSpec {
  return { type: NOOP_JOB_TYPE, payload: { step: i }, ...DEFAULT_CHILD_JOB };
}

export type WorkflowSystemName = 'ats-mysql' | 'ats-embedded';
export const WORKFLOW_SYSTEMS: readonly WorkflowSystemName[] = ['ats-mysql', 'ats-embedded'];

export interface WorkflowBenchSystem {
  readonly system: System;
  readonly settings: string;
  /** The servers whose CPU the run charges to this system. */
  readonly servers: readonly ServerName[];
  /** A read on the system's database (`?` placeholders), apart from the scheduler's own connections. */
  query<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Stops the scheduler and removes what the run created. */
  stop(): Promise<void>;
}

const DEFAULTS_NOTE = 'scheduler defaults otherwise (relay batch 500, relay poll 50 ms, timers poll 250 ms, Kafka topics of 3 partitions; Prometheus metrics on)';

const composeWith = async (raw: RawConfig): Promise<System> => {
  const system = await compose(compileConfig(raw, { hostname: 'bench', pid: process.pid }), { registry: workflowRegistry(), logger: createLogger('error') });
  await system.start();
  return system;
};

/** A fresh system of `name` with the benchmark's workflows registered. */
export async function openWorkflowSystem(name: WorkflowSystemName, concurrency: number): Promise<WorkflowBenchSystem> {
  return name === 'ats-mysql' ? openMysql(concurrency) : openEmbedded(concurrency);
}

async function openMysql(concurrency: number): Promise<WorkflowBenchSystem> {
  const id = runId();
  const db = await createBenchDatabase(id);
  const prefix = `ats-bench-${id}.`;
  let system: System;
  try {
    system = await composeWith({
      mysqlUrl: db.url, kafkaBrokers: kafkaBrokers().join(','), topicPrefix: prefix, concurrency, logLevel: 'error', port: 0, rateLimit: 0,
    });
  } catch (err) {
    await db.drop();
    throw err;
  }
  const reads = createPool({ uri: db.url, connectionLimit: 2, supportBigNumbers: true, bigNumberStrings: false });
  return {
    system,
    settings: `one process, all roles, MariaDB + Kafka; worker concurrency ${concurrency}; ${DEFAULTS_NOTE}`,
    servers: ['mariadb', 'kafka'],
    query: async <T>(sql: string, params: readonly unknown[] = []) => (await reads.query(sql, params as unknown[]))[0] as T[],
    async stop() {
      await reads.end();
      try {
        await system.stop();
      } finally {
        await db.drop();
        await deleteTopicsWithPrefix(prefix).catch(() => undefined);
      }
    },
  };
}

async function openEmbedded(concurrency: number): Promise<WorkflowBenchSystem> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-bench-'));
  let system: System;
  try {
    system = await composeWith({ dataDir: dir, concurrency, logLevel: 'error', port: 0, rateLimit: 0 });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const reads = new Database(join(dir, 'ats.sqlite'), { readonly: true });
  return {
    system,
    settings: `one process, all roles, SQLite (WAL, synchronous=FULL) + in-process log; worker concurrency ${concurrency}; scheduler defaults otherwise (Prometheus metrics on)`,
    servers: [],
    query: async <T>(sql: string, params: readonly unknown[] = []) => reads.prepare(sql).all(...params) as T[],
    async stop() {
      reads.close();
      try {
        await system.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
