/**
 * The job machine: the single source of truth for a job's lifecycle.
 *
 * Everything that derives from the lifecycle (the engine's checks, the DB's
 * state column, the API's `allowed` list, the visualizer, the property tests'
 * model) reads this definition. The machine is pure: every event carries its
 * own time (`at`, epoch ms) and, where a retry delay is drawn, its own random
 * number (`rand` in [0, 1)), so replaying a job's events gives the same state.
 *
 * Glossary: an *attempt* is one run of the handler, numbered from 1 and never
 * reused (REDRIVE grants a new budget but keeps counting, so a zombie from an
 * earlier run can never match); a *dispatch* is one message asking a worker to
 * start attempt `attempt + 1`; a *lease* is the time until which a worker holds
 * its attempt.
 */
import { and, assign, setup } from 'xstate';
import { backoffDelay, type BackoffPolicy } from './backoff.js';

/**
 * The version of this machine's definition, stored in every job's snapshot
 * (`PersistedJob.machine`, machines/lifecycle.ts), as a workflow instance
 * stores the version of its definition.
 *
 * Bump it when a change to the machine would make a snapshot an older
 * version stored mean something else: a state renamed, split or dropped, a
 * context field added, renamed or read differently (say `attempt` counted
 * from another base), a guard or action that would take an old context
 * elsewhere. A change that every stored snapshot reads the same under (a
 * new event, a transition added between existing states, a description)
 * needs no bump. A server refuses to step a snapshot of a version it does
 * not run (a newer deployment wrote it); so a bump also needs the reading of
 * the older versions (`fromStored` in lifecycle.ts), or every live job of
 * the previous version stops too. `job.machine.test.ts` pins the machine's
 * shape beside this version, so a change to the shape asks for the decision.
 */
export const JOB_MACHINE_VERSION = 1;

/** An error recorded on a failed attempt. */
export interface JobError {
  message: string;
  name?: string;
  /** The handler's stack trace, shortened (FAILED only). */
  stack?: string;
  /** false: the job goes straight to `dead`. */
  retryable: boolean;
  /** Set when the advisor, not the handler, made the failure non-retryable (engine/advisor/). */
  decidedBy?: 'advisor';
  /** The advisor's reason, in one line. */
  advice?: string;
  /** Set when the job's own timeout (`timeoutMs`) ended the attempt: the worker aborted the handler (FAILED only). */
  timedOut?: true;
  /** The attempt that failed. */
  attempt: number;
}

/** A failure as a FAILED event carries it. */
export type FailureError = Omit<JobError, 'attempt'>;

export interface JobContext {
  /** The last attempt started (0 before the first). Monotonic, used as the fence. */
  attempt: number;
  /** `attempt` at the last REDRIVE: attempts of this run are `attempt - attemptBase`. */
  attemptBase: number;
  /** Attempts allowed per run (a REDRIVE starts a new run). */
  maxAttempts: number;
  backoff: BackoffPolicy;
  /** When the job is next due (first run, or next retry). */
  runAt: number;
  /** How many dispatch messages were issued; each increment is one outbox row. */
  dispatches: number;
  /** The attempt the last dispatch message asked for (null before the first). */
  dispatchedFor: number | null;
  leaseUntil: number | null;
  workerId: string | null;
  lastError: JobError | null;
  result: unknown;
  cancelReason: string | null;
  createdAt: number;
  updatedAt: number;
}

/** What a submit fixes about a job's lifecycle. */
export interface JobInput {
  at: number;
  runAt?: number;
  maxAttempts: number;
  backoff: BackoffPolicy;
}

export type JobEvent =
  | { type: 'DISPATCH'; at: number }
  | { type: 'PUBLISHED'; at: number; attempt: number }
  | { type: 'STARTED'; at: number; attempt: number; leaseUntil: number; workerId: string }
  | { type: 'HEARTBEAT'; at: number; attempt: number; leaseUntil: number }
  | { type: 'SUCCEEDED'; at: number; attempt: number; result?: unknown }
  /**
   * `delayMs`, when present, is the retry's delay as the advisor chose it
   * (recorded, so replay gives the same `runAt`); otherwise the policy's
   * backoff drawn with `rand`.
   */
  | { type: 'FAILED'; at: number; attempt: number; rand: number; error: FailureError; delayMs?: number }
  /**
   * `holderGone`, when present, says the process that held the lease is known
   * to have ended (the embedded scheduler's restart found the job running: its
   * folder lock holds out every other process), so the lease ends at once.
   */
  | { type: 'LEASE_EXPIRED'; at: number; attempt: number; rand: number; holderGone?: true }
  | { type: 'RETRY_DUE'; at: number }
  | { type: 'CANCEL'; at: number; reason?: string }
  | { type: 'REDRIVE'; at: number };

export type JobEventType = JobEvent['type'];

export const JOB_EVENT_TYPES: readonly JobEventType[] = Object.freeze([
  'DISPATCH', 'PUBLISHED', 'STARTED', 'HEARTBEAT', 'SUCCEEDED', 'FAILED',
  'LEASE_EXPIRED', 'RETRY_DUE', 'CANCEL', 'REDRIVE',
]);

/** Events a user may send through the API; the rest come from roles. */
export const USER_EVENT_TYPES: readonly JobEventType[] = Object.freeze(['CANCEL', 'REDRIVE']);

type Failure = Extract<JobEvent, { type: 'FAILED' | 'LEASE_EXPIRED' }>;

const failureOf = (e: Failure): FailureError =>
  e.type === 'FAILED' ? e.error
  : e.holderGone === true ? { message: 'lease ended: the process that ran it had ended (found running at the restart)', name: 'LeaseExpired', retryable: true }
  : { message: 'lease expired: the worker stopped heartbeating', name: 'LeaseExpired', retryable: true };

/** The recorded delay when the event carries one (the advisor's), else the policy's draw. */
const retryDelay = (c: JobContext, e: Failure): number =>
  e.type === 'FAILED' && e.delayMs !== undefined ? e.delayMs : backoffDelay(c.backoff, c.attempt - c.attemptBase, e.rand);

const attemptsLeft = (c: JobContext): boolean => c.attempt - c.attemptBase < c.maxAttempts;
/** The lease the context holds has ended by `at` (the machine's `leaseOver`; the engine refuses a heartbeat then). */
export const leaseOver = (c: JobContext, at: number): boolean => c.leaseUntil !== null && at >= c.leaseUntil;

export const jobMachine = setup({
  types: {
    context: {} as JobContext,
    events: {} as JobEvent,
    input: {} as JobInput,
  },
  guards: {
    /** The event is for the attempt the job holds now (the fence). */
    fenced: ({ context, event }) => 'attempt' in event && event.attempt === context.attempt,
    /** The event opens the next attempt, and the run has one left. */
    nextAttempt: ({ context, event }) =>
      'attempt' in event && event.attempt === context.attempt + 1 && attemptsLeft(context),
    /** The dispatch of the next attempt was issued and this is its ack. */
    publishedNext: ({ context, event }) =>
      'attempt' in event && event.attempt === context.attempt + 1 && context.dispatchedFor === event.attempt,
    due: ({ context, event }) => event.at >= context.runAt,
    /** The lease has ended by the event's time, or the event says its holder is gone. */
    leaseOver: ({ context, event }) => (event.type === 'LEASE_EXPIRED' && event.holderGone === true) || leaseOver(context, event.at),
    /** The failure is retryable and the run has attempts left. */
    canRetry: ({ context, event }) => failureOf(event as Failure).retryable && attemptsLeft(context),
  },
  actions: {
    touch: assign({ updatedAt: ({ event }) => event.at }),
    dispatch: assign(({ context }) => ({ dispatches: context.dispatches + 1, dispatchedFor: context.attempt + 1 })),
    start: assign(({ event }) => {
      const e = event as Extract<JobEvent, { type: 'STARTED' }>;
      return { attempt: e.attempt, leaseUntil: e.leaseUntil, workerId: e.workerId };
    }),
    extendLease: assign({
      leaseUntil: ({ event }) => (event as Extract<JobEvent, { type: 'HEARTBEAT' }>).leaseUntil,
    }),
    succeed: assign(({ event }) => ({
      result: (event as Extract<JobEvent, { type: 'SUCCEEDED' }>).result ?? null,
      leaseUntil: null,
      lastError: null,
    })),
    recordFailure: assign(({ context, event }) => ({
      lastError: { ...failureOf(event as Failure), attempt: context.attempt },
      leaseUntil: null,
    })),
    scheduleRetry: assign({
      runAt: ({ context, event }) => event.at + retryDelay(context, event as Failure),
    }),
    cancel: assign({
      cancelReason: ({ event }) => (event as Extract<JobEvent, { type: 'CANCEL' }>).reason ?? 'cancelled',
      leaseUntil: null,
    }),
    redrive: assign(({ context, event }) => ({
      attemptBase: context.attempt,
      runAt: event.at,
      cancelReason: null,
      result: null,
    })),
  },
}).createMachine({
  id: 'job',
  initial: 'pending',
  context: ({ input }) => {
    // XState's pure transition() builds a throwaway actor without input on every
    // step; answering it cheaply (instead of throwing on `input.runAt`, which
    // XState catches) halves the cost of a step. Real jobs always have input.
    if (!input) return {} as JobContext;
    const runAt = input.runAt ?? input.at;
    return {
      attempt: 0,
      attemptBase: 0,
      maxAttempts: input.maxAttempts,
      backoff: input.backoff,
      runAt,
      // A job due at submit is dispatched in the same transaction that accepts it.
      dispatches: runAt <= input.at ? 1 : 0,
      dispatchedFor: runAt <= input.at ? 1 : null,
      leaseUntil: null,
      workerId: null,
      lastError: null,
      result: null,
      cancelReason: null,
      createdAt: input.at,
      updatedAt: input.at,
    };
  },
  states: {
    pending: {
      description: 'Accepted and durable; waiting for its runAt, for the relay, or (dispatched) for a worker.',
      on: {
        // A delayed job coming due, or (embedded restart) a dispatch the in-process log lost.
        DISPATCH: { guard: 'due', actions: ['dispatch', 'touch'] },
        PUBLISHED: { guard: 'publishedNext', target: 'published', actions: 'touch' },
        // A worker may read the dispatch before the relay records PUBLISHED.
        STARTED: { guard: 'nextAttempt', target: 'running', actions: ['start', 'touch'] },
        CANCEL: { target: 'cancelled', actions: ['cancel', 'touch'] },
      },
    },
    published: {
      description: 'The dispatch message is acknowledged by Kafka and waits for a free worker.',
      on: {
        // A dispatch message that was lost: the timers issue another one.
        DISPATCH: { guard: 'due', actions: ['dispatch', 'touch'] },
        STARTED: { guard: 'nextAttempt', target: 'running', actions: ['start', 'touch'] },
        CANCEL: { target: 'cancelled', actions: ['cancel', 'touch'] },
      },
    },
    running: {
      description: 'A worker holds the lease of the current attempt.',
      on: {
        HEARTBEAT: { guard: 'fenced', actions: ['extendLease', 'touch'] },
        SUCCEEDED: { guard: 'fenced', target: 'done', actions: ['succeed', 'touch'] },
        FAILED: [
          { guard: and(['fenced', 'canRetry']), target: 'retrying', actions: ['recordFailure', 'scheduleRetry', 'touch'] },
          { guard: 'fenced', target: 'dead', actions: ['recordFailure', 'touch'] },
        ],
        LEASE_EXPIRED: [
          { guard: and(['fenced', 'leaseOver', 'canRetry']), target: 'retrying', actions: ['recordFailure', 'scheduleRetry', 'touch'] },
          { guard: and(['fenced', 'leaseOver']), target: 'dead', actions: ['recordFailure', 'touch'] },
        ],
        CANCEL: { target: 'cancelled', actions: ['cancel', 'touch'] },
      },
    },
    retrying: {
      description: 'The attempt failed; waiting for its backoff to elapse.',
      on: {
        RETRY_DUE: { guard: 'due', target: 'pending', actions: ['dispatch', 'touch'] },
        CANCEL: { target: 'cancelled', actions: ['cancel', 'touch'] },
      },
    },
    done: {
      description: 'The handler succeeded. Final.',
      tags: ['terminal'],
      type: 'final',
    },
    dead: {
      description: 'Out of attempts, or a non-retryable failure. REDRIVE starts a new run.',
      tags: ['terminal'],
      on: { REDRIVE: { target: 'pending', actions: ['redrive', 'dispatch', 'touch'] } },
    },
    cancelled: {
      description: 'Cancelled by a user. REDRIVE starts a new run.',
      tags: ['terminal'],
      on: { REDRIVE: { target: 'pending', actions: ['redrive', 'dispatch', 'touch'] } },
    },
  },
});

export type JobState = 'pending' | 'published' | 'running' | 'retrying' | 'done' | 'dead' | 'cancelled';
export const JOB_STATES: readonly JobState[] = Object.freeze(
  Object.keys(jobMachine.config.states ?? {}) as JobState[],
);
export const TERMINAL_STATES: readonly JobState[] = Object.freeze(
  JOB_STATES.filter((s) => (jobMachine.config.states?.[s]?.tags as string[] | undefined)?.includes('terminal')),
);
