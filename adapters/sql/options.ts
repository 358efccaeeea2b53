/**
 * Options both store factories take beside their connection settings.
 */
import type { Metrics } from '../../engine/metrics.js';

/**
 * Test-only fault injection: lets a test throw inside the write transaction,
 * after every statement ran and before COMMIT, to prove nothing of a
 * transition survives a failure. Never set it in production wiring.
 */
export interface StoreFaults {
  /** Called inside write transactions (inserts, updates, deletes, purges, key changes) just before COMMIT; a throw rolls back. */
  beforeCommit?(): void;
}

/** The time the store stamps on rows it changes itself (`outbox.published_at`). */
export interface StoreClock {
  now(): number;
}

export const SYSTEM_CLOCK: StoreClock = Object.freeze({ now: () => Date.now() });

/** Options every SQL store takes. */
export interface SqlStoreOptions {
  /** Stamps `outbox.published_at` and `schema_migrations.applied_at`. @defaultValue the system clock */
  clock?: StoreClock;
  /** Test-only: throw inside write transactions (see `StoreFaults`). */
  faults?: StoreFaults;
  /** Told each write transaction's latency and each lost race (engine/metrics.ts). @defaultValue none */
  metrics?: StoreMetrics;
}

/** The hooks a store reports to. */
export type StoreMetrics = Pick<Metrics, 'dbTransaction' | 'dbConflict'>;
