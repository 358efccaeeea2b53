/**
 * The metrics port: named hooks the engine and the adapters call where
 * something worth measuring happens. The engine knows no metrics library:
 * `NO_METRICS` (every hook does nothing) is the default, so code and tests
 * that do not care stay as they are; the composition root hands the
 * Prometheus implementation (`adapters/metrics/prometheus.ts`) to the roles.
 *
 * Every hook is synchronous, cheap and never throws: it runs on the hot path
 * (after each commit, each relay batch, each transaction).
 */
import type { JobRecord, TransitionWrite } from './ports.js';

/** What a store transaction did, as a metrics label. */
export type StoreOp = 'insert' | 'update' | 'delete' | 'purge' | 'relay';

/**
 * Why a store transaction was run again: the compare-and-set on a job row
 * found another version (`version_conflict`), or the database picked it as a
 * deadlock victim or timed out its lock wait.
 */
export type ConflictReason = 'version_conflict' | 'deadlock' | 'lock_wait_timeout';

export interface Metrics {
  /**
   * Transitions this process committed (submits included: their event's
   * `from` is null), by the transition service and by the workflow service
   * (the child jobs a step submits and the CANCELs of those it leaves). `before[i]` is the job as read before `writes[i]` (null
   * for a submit). Called once per commit, with what that commit wrote: a
   * transaction that lost a race and ran again is reported once, as it
   * committed.
   */
  transitionsCommitted(writes: readonly TransitionWrite[], before: readonly (JobRecord | null)[]): void;
  /** A handler of this worker ran `ms` (from its start to its settling, whatever the outcome). */
  attemptRan(type: string, queue: string, ms: number): void;
  /** The relay published a batch of `rows` outbox rows; the log took `ms` to acknowledge it. */
  relayPublished(rows: number, ms: number): void;
  /** A relay batch did not go out: the log refused it or had not acknowledged it when the relay gave up (its rows are published again). */
  relayPublishFailed(): void;
  /** A store transaction committed after `ms` (from its first statement to its COMMIT). */
  dbTransaction(op: StoreOp, ms: number): void;
  /** A store transaction lost a race and is run again (or given up after the last try). */
  dbConflict(op: StoreOp, reason: ConflictReason): void;
  /** The stream closed a client that fell too far behind (close code 4000). */
  streamSlowConsumer(): void;
  /**
   * The API answered a request: `route` is the template of the route that
   * answered (`/v1/jobs/:id`), null when none matched (never the URL, which
   * the caller chooses).
   */
  httpResponded(method: string, route: string | null, status: number): void;
}

const nothing = (): void => undefined;

/** Measures nothing: the default of every hook's owner. */
export const NO_METRICS: Metrics = Object.freeze({
  transitionsCommitted: nothing,
  attemptRan: nothing,
  relayPublished: nothing,
  relayPublishFailed: nothing,
  dbTransaction: nothing,
  dbConflict: nothing,
  streamSlowConsumer: nothing,
  httpResponded: nothing,
});
