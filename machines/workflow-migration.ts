/**
 * Moving live workflow instances from one definition version to the next,
 * and checking a migration against every state the old version can reach.
 *
 * A version registered with `migrate: { from, state }` says how an instance
 * of version `from` continues in it: `state` maps the old state value and
 * context to the new ones. The move is a step of its own (a MIGRATE event in
 * the instance's history), so replay goes through it as the instance did:
 * the old version's machine up to the MIGRATE, the new one after it.
 *
 * What the move does besides the new state value and context:
 * - an invocation of the new states whose job runs already (same invoke id)
 *   keeps its job; one without a job starts it, with its `input` computed
 *   from the new context; a running job whose invocation the new states do
 *   not have is cancelled; spawned jobs are kept;
 * - an `after` timer is kept when its state is still among the new states,
 *   dropped otherwise (a state entered by the move does not start its own:
 *   the move enters no state, it places the instance);
 * - history states start empty.
 *
 * Nothing here does I/O, reads a clock or draws a random number.
 */
import type { AnyEventObject, StateValue } from 'xstate';
import {
  activeInvokeIds, AFTER_EVENT_PREFIX, applyWorkflowEvent, asStored, checkStorable, inlineLogic, jobTypeFor, NO_EFFECTS, persistSnapshot, recordedJobIds, startWorkflow, statusOf, timerFits,
  WorkflowDefinitionError,
  type JobStart, type PersistedWorkflow, type Snapshot, type StateNodeLike, type WorkflowChild, type WorkflowDefinition, type WorkflowEffects,
  type WorkflowInputEvent, type WorkflowStep, type WorkflowTimer,
} from './workflow.js';

/**
 * Moves an active instance of `from` to `to` (whose `migrate.from` must be
 * `from.version`). Throws WorkflowDefinitionError when the migration gives a
 * state value the new machine does not have, or a context or job input JSON
 * cannot store.
 */
export function migrateWorkflow(
  fromVersion: number, to: WorkflowDefinition, current: PersistedWorkflow,
  newJobId: (invokeId: string, index: number) => string,
  rules: { carryTimers: boolean } = { carryTimers: true },
): WorkflowStep {
  if (current.status !== 'active') return { ok: false };
  if (!to.migrate || to.migrate.from !== fromVersion) {
    throw new WorkflowDefinitionError(`workflow ${to.name} version ${to.version} has no migration from version ${fromVersion}`);
  }
  const where = `workflow ${to.name}: the migration from version ${fromVersion} to ${to.version}`;
  try {
    return moveTo(to, current, newJobId, where, rules.carryTimers);
  } catch (err) {
    if (err instanceof WorkflowDefinitionError) throw err;
    throw new WorkflowDefinitionError(`${where} failed: ${(err as Error).message}`);
  }
}

function moveTo(
  to: WorkflowDefinition, current: PersistedWorkflow, newJobId: (invokeId: string, index: number) => string, where: string, carryTimers: boolean,
): WorkflowStep {
  const moved = to.migrate!.state({ value: current.value, context: structuredClone(current.context) });
  let snapshot: Snapshot;
  try {
    snapshot = to.machine.resolveState({ value: moved.value, context: moved.context as never } as never);
  } catch (err) {
    throw new WorkflowDefinitionError(`${where} gives ${JSON.stringify(moved.value)}, not a state of version ${to.version}: ${(err as Error).message}`);
  }
  const nodes = (snapshot as unknown as { _nodes: StateNodeLike[] })._nodes;
  const active = activeInvokeIds(snapshot);
  const effects: WorkflowEffects = NO_EFFECTS();
  const children: WorkflowChild[] = [];
  for (const child of current.children) {
    if (child.spawned || (active.has(child.invokeId) && snapshot.status === 'active')) children.push(child);
    else effects.cancel.push(child);
  }
  if (snapshot.status === 'active') {
    let drawn = 0;
    for (const node of nodes) {
      for (const [i, inv] of node.invoke.entries()) {
        if (children.some((c) => !c.spawned && c.invokeId === inv.id)) continue;
        const { jobType, options } = jobTypeFor(to, inv.src, inlineLogic(node, i));
        const input = typeof inv.input === 'function'
          ? (inv.input as (a: object) => unknown)({ context: moved.context, event: { type: 'xstate.migrate' }, self: undefined })
          : inv.input;
        const jobId = newJobId(inv.id, drawn++);
        const start: JobStart = { invokeId: inv.id, jobId, jobType, input, options };
        effects.start.push(start);
        children.push({ invokeId: inv.id, jobId, jobType });
      }
    }
  }
  // An `after` timer stays while its state and its delay do: one the new states lack would fire an event nothing takes.
  const fits = timerFits(snapshot);
  const live = snapshot.status === 'active';
  const timers: WorkflowTimer[] = current.timers.filter((t) => live && fits(t));
  const dropped = current.timers.filter((t) => !timers.includes(t));
  for (const t of dropped) effects.dropTimers.push(t.id);
  if (live && carryTimers) timers.push(...carried(nodes, timers, dropped));
  const next = persistSnapshot(snapshot, statusOf(snapshot), children, timers);
  // As for a step: a context or a job input the store could not write is the migration's problem, found here, not in the store.
  checkStorable(to, next, effects, current.timers.length);
  return { ok: true, next, effects };
}

/**
 * The timers a move carries over from those it drops: a state kept with one
 * `after` delay in place of the one its timer was set for takes that timer,
 * as the new delay's, due when it was (dropped, nothing would move the
 * instance on where only the timer would; the new delay takes effect the
 * next time the state is entered). Only where it is plain: the state held one
 * dropped timer, it has one `after` delay now (however many guarded
 * transitions it has), and no timer kept is for it. A state is the active
 * node whose id ends the timer's event type (`xstate.after.<delay>.<id>`):
 * the longest such id, as a delay's name may hold a dot.
 */
function carried(nodes: readonly StateNodeLike[], kept: readonly WorkflowTimer[], dropped: readonly WorkflowTimer[]): WorkflowTimer[] {
  const held = new Set(kept.map((t) => t.event.type));
  const byNode = new Map<StateNodeLike, WorkflowTimer[]>();
  for (const t of dropped) {
    if (!t.event.type.startsWith(AFTER_EVENT_PREFIX)) continue;
    let node: StateNodeLike | undefined;
    for (const n of nodes) if (t.event.type.endsWith(`.${n.id}`) && (!node || n.id.length > node.id.length)) node = n;
    if (!node) continue;
    const of = byNode.get(node);
    if (of) of.push(t);
    else byNode.set(node, [t]);
  }
  const out: WorkflowTimer[] = [];
  for (const [node, ts] of byNode) {
    const delays = [...new Set(node.after.map((a) => a.eventType))];
    if (ts.length !== 1 || delays.length !== 1 || held.has(delays[0]!)) continue;
    out.push({ id: delays[0]!, dueAt: ts[0]!.dueAt, event: { type: delays[0]! } });
  }
  return out;
}

/** What `checkMigration` found. */
export interface MigrationCheck {
  /** Distinct active states of the old version reached (state value and context). */
  states: number;
  /** States whose migration failed, with why (empty: every one moved). */
  problems: { value: StateValue; context: unknown; problem: string }[];
  /** The search stopped at `limit` states before it had seen them all. */
  truncated: boolean;
}

/**
 * Checks `to.migrate` against every active state `from` reaches from `input`
 * by the events the engine delivers: each signal of `signals`, each live
 * child ending done (its result from `outputs(jobType)`) or dead, and each
 * pending timer firing. A breadth-first search over the engine's own steps
 * (machines/workflow.ts), so it sees exactly the states instances can be in.
 */
export function checkMigration(
  from: WorkflowDefinition,
  to: WorkflowDefinition,
  opts: { input: unknown; signals?: readonly AnyEventObject[]; outputs?: (jobType: string) => unknown; limit?: number },
): MigrationCheck {
  const limit = opts.limit ?? 10_000;
  let n = 0;
  const newJobId = (invokeId: string) => `check-${invokeId}-${n++}`;
  const keyOf = (s: PersistedWorkflow) => JSON.stringify([s.value, s.context]);
  const first = startWorkflow(from, opts.input, 0, newJobId).next;
  const seen = new Set<string>([keyOf(first)]);
  const queue: PersistedWorkflow[] = [first];
  const problems: MigrationCheck['problems'] = [];
  let states = 0;
  while (queue.length > 0) {
    const state = queue.shift()!;
    if (state.status !== 'active') continue;
    states++;
    try {
      migrateWorkflow(from.version, to, state, newJobId);
    } catch (err) {
      problems.push({ value: state.value, context: state.context, problem: (err as Error).message });
    }
    if (seen.size >= limit) continue;
    const inputs: WorkflowInputEvent[] = [
      ...(opts.signals ?? []).map((event): WorkflowInputEvent => ({ type: 'SIGNAL', event })),
      ...state.children.flatMap((c): WorkflowInputEvent[] => [
        { type: 'CHILD', jobId: c.jobId, outcome: { state: 'done', result: opts.outputs?.(c.jobType) ?? null } },
        { type: 'CHILD', jobId: c.jobId, outcome: { state: 'dead', error: { message: 'failed', retryable: false } } },
      ]),
      ...state.timers.map((t): WorkflowInputEvent => ({ type: 'TIMER', timerId: t.id })),
    ];
    for (const input of inputs) {
      const r = applyWorkflowEvent(from, state, input, 0, newJobId);
      if (!r.ok) continue;
      const key = keyOf(r.next);
      if (seen.has(key)) continue;
      seen.add(key);
      queue.push(r.next);
    }
  }
  return { states, problems, truncated: seen.size >= limit };
}

/** A recorded step of an instance's history, MIGRATE included. */
export type HistoryInput = WorkflowInputEvent | {
  type: 'MIGRATE'; from: number; to: number;
  /** Timers were carried over to a changed delay (`carried`): recorded by the moves that did, so older ones replay as they were taken. */
  carryTimers?: true;
};

/** A recorded step of a history, as replay takes it. */
export interface RecordedStep { input: HistoryInput; at: number; jobIds: readonly string[] }

/** Feeds a history to replay a step at a time (a long one in pages); `result` is where it ends. */
export interface HistoryReplay {
  /** Replays the next step; throws when it does not replay (or its version is not registered). */
  feed(step: RecordedStep): void;
  result(): { state: PersistedWorkflow; version: number };
}

/**
 * Replays a history that may cross versions: each event through the machine
 * of the version the instance was at, a MIGRATE through the new version's
 * migration. Each state goes through JSON, as the store keeps it between
 * steps, so replay sees what a live step saw. Starts from `start`, the
 * history's START; each `feed` replays the next step, and throws on a step
 * that does not replay (or a version not registered).
 */
export function historyReplay(
  definitionOf: (version: number) => WorkflowDefinition | undefined,
  start: { version: number; input: unknown; at: number; jobIds: readonly string[] },
): HistoryReplay {
  const need = (v: number): WorkflowDefinition => {
    const def = definitionOf(v);
    if (!def) throw new Error(`replay: version ${v} of the workflow is not registered`);
    return def;
  };
  let version = start.version;
  let state = asStored(startWorkflow(need(version), start.input, start.at, recordedJobIds(start.jobIds)).next);
  let fed = 0;
  return {
    feed: (e) => {
      fed++;
      const r = e.input.type === 'MIGRATE'
        ? migrateWorkflow(e.input.from, need(e.input.to), state, recordedJobIds(e.jobIds), { carryTimers: e.input.carryTimers === true })
        : applyWorkflowEvent(need(version), state, e.input, e.at, recordedJobIds(e.jobIds));
      if (!r.ok) throw new Error(`event #${fed + 1} (${e.input.type}) is not taken in state ${JSON.stringify(state.value)}`);
      if (e.input.type === 'MIGRATE') version = e.input.to;
      state = asStored(r.next);
    },
    result: () => ({ state, version }),
  };
}

/** `historyReplay` of a whole history at once: the state and the version it ends at. */
export function replayHistory(
  definitionOf: (version: number) => WorkflowDefinition | undefined,
  start: { version: number; input: unknown; at: number; jobIds: readonly string[] },
  events: readonly RecordedStep[],
): { state: PersistedWorkflow; version: number } {
  const replay = historyReplay(definitionOf, start);
  for (const e of events) replay.feed(e);
  return replay.result();
}
