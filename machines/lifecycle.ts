/**
 * Pure helpers around the job machine: the only way the engine steps a job.
 * Steps run on the transition table derived from the machine's definition
 * (`table.ts`); `startXState` / `stepXState` step through XState's pure
 * `initialTransition()` / `transition()` and are the reference the table is
 * tested against. Nothing here does I/O, reads a clock or draws a random number.
 */
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import {
  jobMachine, JOB_MACHINE_VERSION, JOB_STATES, TERMINAL_STATES, USER_EVENT_TYPES,
  type JobContext, type JobEvent, type JobEventType, type JobInput, type JobState,
} from './job.machine.js';
import { tableAccepts, tableStart, tableStep } from './table.js';

export type JobSnapshot = SnapshotFrom<typeof jobMachine>;

/** The serialisable form stored in the jobs row. */
export interface PersistedJob {
  /**
   * The version of the job machine that wrote it (`JOB_MACHINE_VERSION`):
   * what `value` and `context` mean. Always set once read (`fromStored`).
   */
  machine: number;
  value: JobState;
  context: JobContext;
}

/** The version of the snapshots stored before snapshots carried one: the machine they were written by is version 1. */
export const UNVERSIONED_JOB_MACHINE = 1;

/**
 * A snapshot of a job machine version this code does not run: a newer
 * deployment wrote it (or an older version nothing here upgrades). Stepping
 * it with this machine would read its state and context as they may no
 * longer mean, so it is refused instead.
 */
export class UnknownJobMachineError extends Error {
  /** What is wrong, for a message naming the job: "written by job machine version 2, and this code runs version 1 (…)". */
  readonly detail: string;
  constructor(readonly machine: unknown) {
    const newer = typeof machine === 'number' && machine > JOB_MACHINE_VERSION;
    const detail = `written by job machine version ${String(machine)}, and this code runs version ${JOB_MACHINE_VERSION}${newer ? ' (a newer deployment wrote it)' : ''}`;
    super(`the job's snapshot was ${detail}`);
    this.name = 'UnknownJobMachineError';
    this.detail = detail;
  }
}

/**
 * A snapshot as stored (its parsed JSON), with its machine version always
 * set: one stored before snapshots carried a version reads as
 * `UNVERSIONED_JOB_MACHINE`. Sets the field on the parsed object itself (no
 * copy): every read of a job row goes through here.
 */
export function fromStored(stored: Omit<PersistedJob, 'machine'> & { machine?: number }): PersistedJob {
  if (stored.machine === undefined) (stored as PersistedJob).machine = UNVERSIONED_JOB_MACHINE;
  return stored as PersistedJob;
}

/** Whether this code's machine can step the snapshot (it was written by the version this code runs). */
export const runsMachineOf = (job: PersistedJob): boolean => job.machine === JOB_MACHINE_VERSION;

function assertRunsMachineOf(job: PersistedJob): void {
  if (!runsMachineOf(job)) throw new UnknownJobMachineError(job.machine);
}

/** Side effects a transition asks for; the engine turns them into outbox rows. */
export interface Effects {
  /** Issue a dispatch message for attempt `context.attempt + 1`. */
  dispatch: boolean;
  /** The job just became `dead`: publish it to the dead-letter topic. */
  deadLetter: boolean;
}

export type StepResult =
  | { ok: true; next: PersistedJob; effects: Effects }
  | { ok: false; state: JobState };

export function stateOf(s: JobSnapshot): JobState {
  return s.value as JobState;
}

export function persist(s: JobSnapshot): PersistedJob {
  return { machine: JOB_MACHINE_VERSION, value: stateOf(s), context: s.context };
}

/** The XState snapshot of a stored job; throws `UnknownJobMachineError` on another machine version's. */
export function restore(p: PersistedJob): JobSnapshot {
  assertRunsMachineOf(p);
  return jobMachine.resolveState({ value: p.value, context: p.context });
}

function effectsOf(prev: PersistedJob | null, next: PersistedJob): Effects {
  return {
    dispatch: next.context.dispatches > (prev?.context.dispatches ?? 0),
    deadLetter: next.value === 'dead' && prev?.value !== 'dead',
  };
}

/** The first state of a new job. */
export function start(input: JobInput): { next: PersistedJob; effects: Effects } {
  const next = tableStart(input);
  return { next, effects: effectsOf(null, next) };
}

/**
 * Step a job by one event. An event the machine does not accept in this state
 * (or whose guard fails, e.g. a stale attempt) is rejected: `ok: false`. A
 * snapshot of another machine version throws `UnknownJobMachineError`: not a
 * rejection, which callers read as a verdict on the event (a worker would
 * drop its attempt as fenced off).
 */
export function step(current: PersistedJob, event: JobEvent): StepResult {
  assertRunsMachineOf(current);
  const next = tableStep(current.value, current.context, event);
  if (!next) return { ok: false, state: current.value };
  return { ok: true, next, effects: effectsOf(current, next) };
}

/** `start` through XState's `initialTransition()`: the reference for tests and benchmarks. */
export function startXState(input: JobInput): { next: PersistedJob; effects: Effects } {
  const [snapshot] = initialTransition(jobMachine, input);
  const next = persist(snapshot);
  return { next, effects: effectsOf(null, next) };
}

/**
 * `step` through XState (`resolveState`, `can`, `transition()`): the reference
 * for tests and benchmarks (24-29 µs a step against 1.0-1.3 µs on the table, in
 * `bench/limits/machine-step.ts`).
 */
export function stepXState(current: PersistedJob, event: JobEvent): StepResult {
  const snapshot = restore(current);
  if (!snapshot.can(event)) return { ok: false, state: current.value };
  const [nextSnapshot] = transition(jobMachine, snapshot, event);
  const next = persist(nextSnapshot);
  return { ok: true, next, effects: effectsOf(current, next) };
}

/**
 * Replay a job's whole history with this code's machine (the result carries
 * `JOB_MACHINE_VERSION`); throws on an event the machine rejects.
 */
export function replay(input: JobInput, events: readonly JobEvent[]): PersistedJob {
  let job = start(input).next;
  for (const [i, e] of events.entries()) {
    const r = step(job, e);
    if (!r.ok) throw new Error(`event #${i + 1} (${e.type}) is not accepted in state ${r.state}`);
    job = r.next;
  }
  return job;
}

export const isTerminal = (s: JobState): boolean => TERMINAL_STATES.includes(s);

/**
 * User events (CANCEL, REDRIVE) the machine accepts now, for the API's
 * `allowed`. None for a snapshot of another machine version: `step` refuses
 * every event on it, and a read of the job (a list of jobs) still answers.
 */
export function allowedActions(job: PersistedJob, at: number): JobEventType[] {
  if (!runsMachineOf(job)) return [];
  return USER_EVENT_TYPES.filter((type) => tableAccepts(job.value, job.context, { type, at } as JobEvent));
}

/** Columns the store keeps beside the snapshot, for its claims and queries. */
export interface Projection {
  state: JobState;
  attempt: number;
  /**
   * When the timers must look at the job: a delayed job's or a retry's due
   * time, a running job's lease end; else null. One column (and one index,
   * `state, due_at`) serves both the due and the expired-lease scans.
   */
  dueAt: number | null;
  leaseUntil: number | null;
}

export function project(job: PersistedJob): Projection {
  const c = job.context;
  const waiting =
    job.value === 'retrying' || (job.value === 'pending' && c.dispatchedFor !== c.attempt + 1);
  return {
    state: job.value,
    attempt: c.attempt,
    dueAt: waiting ? c.runAt : job.value === 'running' ? c.leaseUntil : null,
    leaseUntil: job.value === 'running' ? c.leaseUntil : null,
  };
}

/** One edge of the machine, for `GET /v1/machine` and the visualizer. */
export interface MachineEdge {
  from: JobState;
  to: JobState;
  event: JobEventType;
  guard?: string;
}

export interface MachineGraph {
  id: string;
  initial: JobState;
  states: { id: JobState; terminal: boolean; description?: string }[];
  edges: MachineEdge[];
}

/** The machine's states and transitions, read from its definition. */
export function machineGraph(): MachineGraph {
  const states = JOB_STATES.map((id) => {
    const node = jobMachine.states[id]!;
    return { id, terminal: TERMINAL_STATES.includes(id), description: node.description };
  });
  const edges: MachineEdge[] = [];
  for (const from of JOB_STATES) {
    const node = jobMachine.states[from]!;
    for (const [event, transitions] of node.transitions) {
      for (const t of transitions) {
        const to = (t.target?.[0]?.key as JobState | undefined) ?? from;
        const guard = t.guard ? describeGuard(t.guard) : undefined;
        edges.push({ from, to, event: event as JobEventType, ...(guard ? { guard } : {}) });
      }
    }
  }
  return { id: jobMachine.id, initial: jobMachine.config.initial as JobState, states, edges };
}

function describeGuard(guard: unknown): string {
  if (typeof guard === 'string') return guard;
  // xstate's and([...]) is a function carrying its parts in `guards`.
  const g = guard as { type?: string; guards?: unknown[] };
  if (Array.isArray(g.guards)) return g.guards.map(describeGuard).join(' && ');
  return g.type ?? 'guard';
}
