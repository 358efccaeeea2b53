/**
 * The job machine's transitions as a table, derived once from its definition
 * when this module loads.
 *
 * Stepping through XState (`resolveState`, `can`, `transition`) builds a
 * throwaway actor and evaluates the guards twice on every step; the engine
 * steps a job on every transition of every job, so that cost is on the hot
 * path. The table reads the same definition (`jobMachine.states[s].transitions`
 * with their guards, targets and named actions) and runs the machine's own
 * guard and `assign` implementations from `jobMachine.implementations`, so the
 * machine stays the single source of the lifecycle: nothing here restates a
 * guard or an action. Selection is XState's: the state's candidates for the
 * event type in document order, then the root's, and the first whose guard
 * holds wins; a winner without target and actions is forbidden (`can()` is
 * false for it).
 *
 * Building the table refuses, at start-up, any construct it does not
 * reproduce (nested or parallel states, entry/exit actions, `always`/`after`,
 * invoked actors, wildcard events, parameterised guards or actions, actions
 * other than `assign`), so a change to the machine that needs more than this
 * fails loudly instead of diverging. `lifecycle.test.ts` checks the table
 * against XState's own `transition()` on generated reachable jobs.
 */
import { and, not, or } from 'xstate';
import {
  jobMachine, JOB_EVENT_TYPES, JOB_MACHINE_VERSION, JOB_STATES,
  type JobContext, type JobEvent, type JobEventType, type JobInput, type JobState,
} from './job.machine.js';

type Guard = (context: JobContext, event: JobEvent) => boolean;
type Assign = (context: JobContext, event: JobEvent) => JobContext;

interface Candidate {
  guard: Guard | null;
  /** The target state; null for a targetless transition (the value stays). */
  target: JobState | null;
  actions: readonly Assign[];
  /** No target and no actions: selecting it rejects the event, as `can()` does. */
  forbidden: boolean;
}

/** XState's built-in combinators, recognised by their `check` (the functions it calls). */
const checkOf = (g: unknown): unknown => (g as { check: unknown }).check;
const AND = checkOf(and([]));
const OR = checkOf(or([]));
const NOT = checkOf(not('x'));

type AnyGuard = unknown;

function unsupported(what: string): never {
  throw new Error(`job machine table: ${what} is not supported; extend machines/table.ts or step through XState`);
}

function compileGuard(guard: AnyGuard): Guard {
  if (typeof guard === 'string') {
    const impl = (jobMachine.implementations.guards as Record<string, AnyGuard>)[guard];
    if (impl === undefined) unsupported(`guard '${guard}' without implementation`);
    if (typeof impl !== 'function') return compileGuard(impl);
    if ('check' in impl) return compileGuard(impl);
    const fn = impl as (args: { context: JobContext; event: JobEvent }, params: undefined) => boolean;
    return (context, event) => fn({ context, event }, undefined);
  }
  if (typeof guard === 'function') {
    const g = guard as { check?: unknown; guards?: AnyGuard[] };
    if (g.check === undefined) {
      const fn = guard as (args: { context: JobContext; event: JobEvent }, params: undefined) => boolean;
      return (context, event) => fn({ context, event }, undefined);
    }
    const parts = (g.guards ?? []).map(compileGuard);
    if (g.check === AND) return (c, e) => parts.every((p) => p(c, e));
    if (g.check === OR) return (c, e) => parts.some((p) => p(c, e));
    if (g.check === NOT) return (c, e) => !parts[0]!(c, e);
    unsupported(`built-in guard '${(g.check as { name?: string }).name ?? '?'}'`);
  }
  return unsupported(`guard ${JSON.stringify(guard)}`);
}

/** Evaluates an `assign` action object as XState's `resolveAssign` does, without an actor. */
function compileAction(action: unknown): Assign {
  if (typeof action !== 'string') unsupported(`inline or parameterised action ${JSON.stringify(action)}`);
  const impl = (jobMachine.implementations.actions as Record<string, unknown>)[action] as
    | { type?: string; assignment?: unknown }
    | undefined;
  if (!impl || impl.type !== 'xstate.assign') unsupported(`action '${action}' (only assign actions are)`);
  const assignment = impl.assignment;
  const args = (context: JobContext, event: JobEvent) => ({ context, event, spawn: noSpawn, self: undefined, system: undefined });
  if (typeof assignment === 'function') {
    const fn = assignment as (a: ReturnType<typeof args>, params: undefined) => Partial<JobContext>;
    return (context, event) => Object.assign({}, context, fn(args(context, event), undefined));
  }
  const entries = Object.entries(assignment as Record<string, unknown>);
  return (context, event) => {
    const partial: Record<string, unknown> = {};
    const a = args(context, event);
    for (const [key, v] of entries) partial[key] = typeof v === 'function' ? v(a, undefined) : v;
    return Object.assign({}, context, partial) as JobContext;
  };
}

function noSpawn(): never {
  throw new Error('job machine table: the job machine does not spawn actors');
}

type Node = (typeof jobMachine.states)[string];

function checkNode(node: Node, where: string): void {
  if (node.entry.length || node.exit.length) unsupported(`entry/exit actions on ${where}`);
  if (node.invoke.length) unsupported(`invoke on ${where}`);
  if (node.always?.length) unsupported(`always on ${where}`);
  if (node.after.length) unsupported(`after on ${where}`);
  for (const key of node.transitions.keys()) {
    if (!JOB_EVENT_TYPES.includes(key as JobEventType)) unsupported(`event descriptor '${key}' on ${where}`);
  }
}

function candidatesOf(node: Node): Map<string, Candidate[]> {
  const out = new Map<string, Candidate[]>();
  for (const [type, transitions] of node.transitions) {
    out.set(type, transitions.map((t) => {
      if ((t.target?.length ?? 0) > 1) unsupported(`a transition with several targets in ${node.id}`);
      const targetNode = t.target?.[0];
      if (targetNode && targetNode.parent !== jobMachine.root) unsupported(`target ${targetNode.id}`);
      const actions = t.actions.map(compileAction);
      return {
        guard: t.guard ? compileGuard(t.guard) : null,
        target: targetNode ? (targetNode.key as JobState) : null,
        actions,
        forbidden: !targetNode && actions.length === 0,
      };
    }));
  }
  return out;
}

function build(): Map<string, Map<string, Candidate[]>> {
  const root = jobMachine.root;
  checkNode(root, 'the root');
  const rootCandidates = candidatesOf(root);
  const table = new Map<string, Map<string, Candidate[]>>();
  for (const s of JOB_STATES) {
    const node = jobMachine.states[s]!;
    if (node.type !== 'atomic' && node.type !== 'final') unsupported(`${node.type} state ${s}`);
    checkNode(node, `state ${s}`);
    const own = candidatesOf(node);
    // XState tries the root's transitions when the state selects none.
    for (const [type, cs] of rootCandidates) own.set(type, [...(own.get(type) ?? []), ...cs]);
    table.set(s, own);
  }
  return table;
}

const TABLE = build();

/** The candidate XState would select for `event` in `value`, or null when the machine rejects it. */
function select(value: JobState, context: JobContext, event: JobEvent): Candidate | null {
  const row = TABLE.get(value);
  if (!row) throw new Error(`job machine table: unknown state '${String(value)}'`);
  const candidates = row.get(event.type);
  if (!candidates) return null;
  for (const c of candidates) {
    if (c.guard === null || c.guard(context, event)) return c.forbidden ? null : c;
  }
  return null;
}

/** A state as stored: stamped with the version of the machine the table is derived from. */
export interface TableState {
  machine: number;
  value: JobState;
  context: JobContext;
}

/** The next state for `event`, or null when the machine rejects it. */
export function tableStep(value: JobState, context: JobContext, event: JobEvent): TableState | null {
  const c = select(value, context, event);
  if (!c) return null;
  let next = context;
  for (const a of c.actions) next = a(next, event);
  return { machine: JOB_MACHINE_VERSION, value: c.target ?? value, context: next };
}

/** Whether the machine accepts `event` in `value` (XState's `snapshot.can(event)`). */
export function tableAccepts(value: JobState, context: JobContext, event: JobEvent): boolean {
  return select(value, context, event) !== null;
}

/**
 * The first state of a job, from the machine's initial state and its `context`
 * factory (what `initialTransition` runs when there are no entry actions).
 */
export function tableStart(input: JobInput): TableState {
  const factory = jobMachine.config.context as unknown as (args: { input: JobInput; spawn: typeof noSpawn; self: undefined }) => JobContext;
  return { machine: JOB_MACHINE_VERSION, value: INITIAL, context: factory({ input, spawn: noSpawn, self: undefined }) };
}

const INITIAL = ((): JobState => {
  const initial = jobMachine.config.initial as JobState;
  if (typeof jobMachine.config.context !== 'function') unsupported('a context that is not a factory');
  if (!JOB_STATES.includes(initial)) unsupported(`initial state ${String(initial)}`);
  if (jobMachine.root.initial.actions.length) unsupported('actions on the initial transition');
  return initial;
})();
