/**
 * Workflows: a user's own XState v5 machine, stepped purely, whose invoked
 * promise actors are jobs and whose delayed events are durable timers.
 *
 * A workflow instance is persisted as the machine's state (value, context,
 * history, status, output) plus what the engine tracks for it: the live
 * children (which job runs which invocation) and the pending timers. Each
 * step runs XState's pure `initialTransition()` / `transition()` and turns
 * the actions it returns into effects the engine writes in the same
 * transaction as the new state: jobs to start (`xstate.spawnChild`), jobs to
 * cancel (an invocation whose state was left), timers to set (a delayed
 * `xstate.raise`, as `after` makes), timers to drop (`xstate.cancel`) and
 * messages to other instances (`sendToWorkflow`). Other actions (custom
 * actions, `log`, other `emit`s) are not run: a workflow's actions are
 * `assign`, `raise` and `sendToWorkflow`, and side effects happen in jobs.
 *
 * Nothing here does I/O, reads a clock or draws a random number: every step
 * takes its time (`at`), so replaying an instance's events gives its state.
 */
import type { BackoffPolicy } from './backoff.js';
import { completeBackoff, jobOptionsProblem, jobTypeProblem, LAST_INSTANT_MS } from './job-bounds.js';
import { jsonSize } from './json-size.js';
import { isBoxedPrimitive, MAX_NESTING_DEPTH } from './json-integers.js';
import { cutText } from './text.js';
import {
  emit, initialTransition, transition, type ActionArgs, type ActionFunction, type AnyEventObject, type AnyStateMachine, type EventObject,
  type MachineContext, type ParameterizedObject, type PromiseActorLogic, type StateValue,
} from 'xstate';

/** What a job invoked by a workflow runs under (the job's own policy). */
export interface WorkflowJobOptions {
  queue?: string;
  maxAttempts?: number;
  backoff?: BackoffPolicy;
  timeoutMs?: number;
  priority?: number;
}

const JOB_TYPE = Symbol.for('ats.workflow.jobType');
const JOB_OPTIONS = Symbol.for('ats.workflow.jobOptions');

interface JobLogic {
  [JOB_TYPE]: string;
  [JOB_OPTIONS]: WorkflowJobOptions;
}

/**
 * An actor that runs as a job of `type` (a handler registered on its own):
 * `invoke: { src: job('payment.charge'), input: ... }`, or named in
 * `setup({ actors: { charge: job('payment.charge') } })`. Its input is the
 * job's payload; `onDone` gets the job's result, `onError` its last error.
 * It cannot run outside the scheduler: started by a plain XState actor, it
 * fails with an error saying so. `options` outside a submit's bounds
 * (machines/job-bounds.ts) throw a WorkflowDefinitionError.
 */
export function job<TOutput = unknown, TInput = unknown>(type: string, options: WorkflowJobOptions = {}): PromiseActorLogic<TOutput, TInput> {
  if (typeof type !== 'string' || type.length === 0) throw new TypeError('job(type): the job type must be a non-empty string');
  const problem = jobTypeProblem(type);
  if (problem) throw new WorkflowDefinitionError(`job(${JSON.stringify(type)}): ${problem}`);
  const logic = {
    config: () => Promise.reject(new Error(`job(${type}) runs only as a job of the scheduler`)),
    transition: (state: unknown) => state,
    start: () => undefined,
    getInitialSnapshot: (_scope: unknown, input: unknown) => ({ status: 'active', output: undefined, error: undefined, input }),
    getPersistedSnapshot: (s: unknown) => s,
    [JOB_TYPE]: type,
    [JOB_OPTIONS]: checkedJobOptions(`job(${type})`, options),
  };
  return logic as unknown as PromiseActorLogic<TOutput, TInput>;
}

const jobTypeOf = (logic: unknown): string | undefined => (logic as Partial<JobLogic> | null)?.[JOB_TYPE];

/** The `emit`ted event type that carries a message to another instance (`sendToWorkflow`). */
export const SEND_TO_WORKFLOW = 'ats.workflow.send';

/**
 * An action that sends `event` to the workflow instance `to` (its id, or a
 * function of the context and event giving it), delivered durably: the step
 * that takes the action stores the message with the sender's new state (one
 * transaction), and the engine delivers it to the target once, in the order
 * this instance sent it:
 * `actions: sendToWorkflow(({ context }) => context.parentId, { type: 'ITEM_DONE' })`.
 * XState's own `sendTo` written in a workflow's machine is made this at
 * registration (XState would reach only actors the machine holds).
 * The target takes the event as it would a signal; one it does not take
 * now is dropped, as XState drops an event no transition takes. An instance
 * of another tenant, or none, gets nothing.
 */
export function sendToWorkflow<
  TContext extends MachineContext, TExpressionEvent extends EventObject, TParams extends ParameterizedObject['params'] | undefined, TEvent extends EventObject,
>(
  to: string | ((args: ActionArgs<TContext, TExpressionEvent, TEvent>, params: TParams) => string),
  event: AnyEventObject | ((args: ActionArgs<TContext, TExpressionEvent, TEvent>, params: TParams) => AnyEventObject),
): ActionFunction<TContext, TExpressionEvent, TEvent, TParams, never, never, never, never, never> {
  // XState's emit: the pure transition returns it with the expressions resolved, and effectsOf reads it back.
  return emit((args: ActionArgs<TContext, TExpressionEvent, TEvent>, params: TParams) => ({
    type: SEND_TO_WORKFLOW,
    to: typeof to === 'function' ? to(args, params) : to,
    event: typeof event === 'function' ? event(args, params) : event,
  })) as unknown as ActionFunction<TContext, TExpressionEvent, TEvent, TParams, never, never, never, never, never>;
}

/**
 * What makes a delay differ between the step and its replay: the clock or
 * a random draw. A timer's due time is stored from the delay, so replay must
 * compute the same; a delay comes from the context or the event (a deadline
 * the input or a signal carries).
 */
const NONDETERMINISTIC = /\bDate\.now\b|\bnew\s+Date\s*\(\s*\)|\bperformance\.now\b|\bMath\.random\b/;

/** The delay functions of a state (its `after`, and its actions' delayed `raise`), with what names them. */
function* delayFunctions(node: StateNodeLike, delays: Record<string, unknown>): Generator<{ fn: unknown; what: string }> {
  const config = (node as unknown as { config: { after?: Record<string, unknown> } }).config;
  for (const key of Object.keys(config.after ?? {})) {
    if (Object.hasOwn(delays, key)) yield { fn: delays[key], what: `after delay ${key}` };
  }
  for (const a of actionListsOf(node).flat()) {
    const delay = (a as { type?: unknown; delay?: unknown } | null)?.delay;
    if (typeof delay === 'function') yield { fn: delay, what: 'a delayed raise' };
    else if (typeof delay === 'string' && Object.hasOwn(delays, delay)) yield { fn: delays[delay], what: `a raise delayed by ${delay}` };
  }
}

/**
 * Whether `logic` is XState's promise logic (`fromPromise`), told by what its
 * own transition does with a resolve: a promise actor is done with the value,
 * a callback or observable actor is not.
 */
function isPromiseLogic(logic: unknown): logic is { config: (args: object) => PromiseLike<unknown> } {
  const l = logic as { config?: unknown; transition?: unknown; root?: unknown } | null;
  if (!l || typeof l.config !== 'function' || typeof l.transition !== 'function' || l.root !== undefined) return false;
  const marker = {};
  try {
    const r = (l.transition as (s: object, e: object, scope: object) => { status?: string; output?: unknown })(
      { status: 'active', output: undefined, error: undefined, input: undefined },
      { type: 'xstate.promise.resolve', data: marker },
      { self: {} },
    );
    return r?.status === 'done' && r.output === marker;
  } catch {
    return false;
  }
}

/** One invocation's job: where it comes from and what runs it. */
export interface WorkflowActor {
  /** The name in `setup({ actors })`, or null for an inline `src`. */
  name: string | null;
  /** The job type it runs as. */
  jobType: string;
  options: WorkflowJobOptions;
  /** The promise creator, for a `fromPromise` actor: registered as the job type's handler. Absent for `job(type)`. */
  run?: (args: { input: unknown; signal: AbortSignal }) => PromiseLike<unknown>;
}

/** A workflow as registered: a name, a version and a machine that passed the checks. */
export interface WorkflowDefinition {
  readonly name: string;
  readonly version: number;
  readonly machine: AnyStateMachine;
  /** The actors its invocations run, by `src` name (setup) or inline (`name` null). */
  readonly actors: readonly WorkflowActor[];
  /** The ids of its states' invocations: any other child is spawned (`spawnChild`). */
  readonly invokeIds: ReadonlySet<string>;
  /** How a live instance of version `from` moves to this version (machines/workflow-migration.ts). */
  readonly migrate?: WorkflowMigration;
}

/**
 * Moves a live instance of the previous version `from` to this one: given its
 * state value and context, the state value and context it has in this
 * version. Pure: it runs again when the history is replayed.
 */
export interface WorkflowMigration {
  from: number;
  state: (old: { value: StateValue; context: unknown }) => { value: StateValue; context: unknown };
}

export class WorkflowDefinitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkflowDefinitionError';
  }
}

/**
 * A step the store cannot keep as the machine left it (`checkStorable`): past
 * a bound of bytes (`tooLarge`), or of jobs, messages or nesting, or holding
 * what JSON would not give back. Its name stays WorkflowDefinitionError's, as
 * the instances it ended record it.
 */
export class WorkflowStorageError extends WorkflowDefinitionError {
  constructor(message: string, readonly tooLarge = false) {
    super(message);
  }
}

/**
 * `options` as a job of a workflow runs under: held to a submit's bounds here,
 * at definition, because the engine copies them into the child job's spec
 * unchecked (maxAttempts 0 makes a job no worker can start; a backoff missing
 * a field, a retry due at NaN). A frozen copy, so a later change to the
 * object given does not reach the jobs.
 */
function checkedJobOptions(where: string, options: unknown): WorkflowJobOptions {
  const problem = jobOptionsProblem(options);
  if (problem !== null) throw new WorkflowDefinitionError(`${where}: ${problem}`);
  const given = options as WorkflowJobOptions;
  return Object.freeze({ ...given, ...(given.backoff ? { backoff: Object.freeze(completeBackoff(given.backoff)) } : {}) });
}

/** What the engine reads of an XState state node. */
export interface StateNodeLike {
  id: string;
  key: string;
  states: Record<string, StateNodeLike>;
  invoke: { id: string; src: unknown; input?: unknown }[];
  /** Its `after` transitions, each with the event type its timer sends. */
  after: { eventType: string }[];
  /** The state's config as written: an inline actor is its invoke's `src` there (XState names it in `invoke`). */
  config: { invoke?: { src?: unknown } | { src?: unknown }[] };
}

/** A state node's action lists as XState keeps them. */
interface NodeActions {
  entry: unknown[];
  exit: unknown[];
  transitions: Map<string, { actions: unknown[] }[]>;
  always?: { actions: unknown[] }[];
  /** A compound state's initial transition (`initial: { target, actions }`). */
  initial?: { actions: unknown[] };
}

/** Every action list of a state: entry, exit, each transition's (its `after` and `always` included) and its initial transition's. */
function actionListsOf(node: StateNodeLike): unknown[][] {
  const n = node as unknown as NodeActions;
  // `transitions` first: reading it makes XState add the `after` timers' raise and cancel to entry and exit.
  const transitions = [...n.transitions.values()].flat().map((t) => t.actions);
  return [n.entry, n.exit, ...transitions, ...(n.always ?? []).map((t) => t.actions), n.initial?.actions ?? []];
}

/**
 * Replaces each action list of a state (as `actionListsOf` lists them) by
 * `map` of it. New arrays: a transition's list may be the config's own array.
 */
function mapActionLists(node: StateNodeLike, map: (list: readonly unknown[]) => unknown[]): void {
  const n = node as unknown as NodeActions;
  for (const t of [...n.transitions.values()].flat()) t.actions = map(t.actions);
  for (const t of n.always ?? []) t.actions = map(t.actions);
  if (n.initial) n.initial.actions = map(n.initial.actions);
  n.entry = map(n.entry);
  n.exit = map(n.exit);
}

/** XState's `sendTo` action (and `sendParent`, `forwardTo`) as its creator made it. */
interface SendToAction {
  type: 'xstate.sendTo';
  to: unknown;
  event: unknown;
  delay?: unknown;
}

const isSendTo = (a: unknown): a is SendToAction => typeof a === 'function' && (a as { type?: unknown }).type === 'xstate.sendTo';

/**
 * A `sendTo` written in the machine, made durable: the same target (an
 * instance id, or a function of the context and event giving one) and event,
 * sent as `sendToWorkflow` sends. XState itself would reach only actors the
 * machine holds. A parent (`sendParent`) and a delay cannot be made durable.
 */
function durableSend(where: string, a: SendToAction): unknown {
  if (typeof a.to === 'string' && a.to.startsWith('#_')) {
    throw new WorkflowDefinitionError(`${where}: sendParent (or sendTo ${a.to}): a workflow instance has no parent actor; send to an instance by its id`);
  }
  if (a.delay !== undefined) throw new WorkflowDefinitionError(`${where}: a delayed sendTo cannot be made durable; enter a state whose after sends`);
  if (typeof a.to !== 'string' && typeof a.to !== 'function') {
    throw new WorkflowDefinitionError(`${where}: sendTo in a workflow sends to an instance by its id (a string, or a function giving one), not to an actor reference`);
  }
  return sendToWorkflow(a.to as Parameters<typeof sendToWorkflow>[0], a.event as Parameters<typeof sendToWorkflow>[1]);
}

/**
 * A copy of `machine` whose `sendTo` actions (inline or named in `setup({
 * actions })`) send to other instances durably. The copy has state nodes of
 * its own, so the machine as given is unchanged. A `sendTo` queued at run
 * time (`enqueueActions`) is not seen here: its step ends the instance in error.
 */
function withDurableSends(name: string, machine: AnyStateMachine): AnyStateMachine {
  const named = (machine.implementations.actions ?? {}) as Record<string, unknown>;
  const replaced = Object.fromEntries(
    Object.entries(named).filter(([, a]) => isSendTo(a)).map(([key, a]) => [key, durableSend(`workflow ${name}, action ${key}`, a as SendToAction)]),
  );
  const copy = machine.provide({ actions: replaced } as never) as AnyStateMachine;
  for (const node of nodesOf(copy.root as unknown as StateNodeLike)) {
    mapActionLists(node, (list) => list.map((a) => (isSendTo(a) ? durableSend(`workflow ${name}, state ${node.id}`, a) : a)));
  }
  return copy;
}

/** The actor logic a state's `i`th invocation was written with, when inline. */
export function inlineLogic(node: StateNodeLike, i: number): unknown {
  const configs = node.config.invoke === undefined ? [] : Array.isArray(node.config.invoke) ? node.config.invoke : [node.config.invoke];
  const src = configs[i]?.src;
  return typeof src === 'object' && src !== null ? src : undefined;
}

function* nodesOf(node: StateNodeLike): Generator<StateNodeLike> {
  yield node;
  for (const child of Object.values(node.states)) yield* nodesOf(child);
}

/**
 * Checks `machine` and makes it a workflow. Every invocation must be a job:
 * `job(type)`, or a `fromPromise` actor (which becomes the job type
 * `<name>.<actor name>`, its promise creator that type's handler). A callback,
 * observable or machine actor cannot be made durable and is refused, naming
 * its state. `jobs` gives a `fromPromise` actor's job options, by its name,
 * held to the bounds `job(type, options)` holds its options to.
 */
export function defineWorkflow(
  name: string,
  given: AnyStateMachine,
  options: { version?: number; jobs?: ReadonlyMap<string, WorkflowJobOptions>; migrate?: WorkflowMigration } = {},
): WorkflowDefinition {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) {
    throw new WorkflowDefinitionError(`workflow name ${JSON.stringify(name)}: 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  const version = options.version ?? 1;
  if (!Number.isSafeInteger(version) || version < 1) throw new WorkflowDefinitionError(`workflow ${name}: version must be a positive integer`);
  if (!given || typeof given !== 'object' || !('root' in given)) throw new WorkflowDefinitionError(`workflow ${name}: not an XState machine`);
  const jobOptions = checkedJobsOptions(name, options.jobs);
  const machine = withDurableSends(name, given);
  // A step that never ends (an eventless loop, events raised back and forth) would hold the process: cut it.
  const own = (machine.options as { maxIterations?: unknown } | undefined)?.maxIterations;
  const maxIterations = typeof own === 'number' && own >= 1 && own < MAX_MICROSTEPS_PER_STEP ? own : MAX_MICROSTEPS_PER_STEP;
  machine.options = { ...machine.options, maxIterations };
  const implementations = (machine.implementations.actors ?? {}) as Record<string, unknown>;
  const actors = new Map<unknown, WorkflowActor>();
  /** Adds the actor `logic` (named in setup, or inline: `named` null); `where` names it in errors. */
  const addActor = (logic: unknown, named: string | null, where: string): void => {
    if (actors.has(logic)) return;
    const jobType = jobTypeOf(logic);
    if (jobType !== undefined) {
      actors.set(logic, { name: named, jobType, options: (logic as unknown as JobLogic)[JOB_OPTIONS] });
      return;
    }
    if (!isPromiseLogic(logic)) {
      throw new WorkflowDefinitionError(
        `${where}: only job(type) and fromPromise actors run durably (as jobs); a callback, observable or machine actor cannot`,
      );
    }
    if (named === null) throw new WorkflowDefinitionError(`${where}: an inline fromPromise actor needs a name: declare it in setup({ actors })`);
    const problem = jobTypeProblem(`${name}.${named}`);
    if (problem) throw new WorkflowDefinitionError(`${where}: its jobs' type ${JSON.stringify(`${name}.${named}`)} (<workflow>.<actor>): ${problem}`);
    actors.set(logic, {
      name: named, jobType: `${name}.${named}`, options: jobOptions.get(named) ?? {},
      run: ({ input, signal }) => logic.config({ input, signal, self: undefined, system: undefined, emit: () => undefined }),
    });
  };
  const invokeIds = new Set<string>();
  const delays = (machine.implementations.delays ?? {}) as Record<string, unknown>;
  for (const node of nodesOf(machine.root as unknown as StateNodeLike)) {
    const longId = node.after.find((a) => a.eventType.length > MAX_TIMER_ID_CHARS);
    if (longId) {
      throw new WorkflowDefinitionError(`workflow ${name}, state ${node.id}: its after timer's id is ${longId.eventType.length} characters, more than the ${MAX_TIMER_ID_CHARS} a store keeps: shorten the state's id or path`);
    }
    for (const { fn, what } of delayFunctions(node, delays)) {
      if (typeof fn === 'function' && NONDETERMINISTIC.test(Function.prototype.toString.call(fn))) {
        throw new WorkflowDefinitionError(
          `workflow ${name}, state ${node.id}: ${what} reads the clock or draws a random number, which replay cannot repeat; compute it from the context or the event`,
        );
      }
    }
    for (const [i, inv] of node.invoke.entries()) {
      invokeIds.add(inv.id);
      // A name from setup({ actors }), or an inline actor (XState names it; its logic is in the state's config).
      const named = typeof inv.src === 'string' && Object.hasOwn(implementations, inv.src) ? inv.src : null;
      const logic = named !== null ? implementations[named] : inlineLogic(node, i);
      const where = `workflow ${name}, state ${node.id}, invoke ${inv.id}`;
      if (logic === undefined) throw new WorkflowDefinitionError(`${where}: actor ${String(inv.src)} is not in setup({ actors })`);
      addActor(logic, named, where);
    }
  }
  // A spawned child named as an invocation would be taken for it (and its end dropped once that state is left).
  // Only actions written here with their id as text are seen; the others are refused when they run (effectsOf).
  const namedActions = Object.entries((machine.implementations.actions ?? {}) as Record<string, unknown>).map(([key, a]) => ({ where: `action ${key}`, list: [a] }));
  for (const { where, list } of [...namedActions, ...[...nodesOf(machine.root as unknown as StateNodeLike)].flatMap((node) => actionListsOf(node).map((l) => ({ where: `state ${node.id}`, list: l })))]) {
    for (const a of list) {
      const id = typeof a === 'function' && (a as { type?: unknown }).type === 'xstate.spawnChild' ? (a as { id?: unknown }).id : undefined;
      if (typeof id === 'string' && invokeIds.has(id)) {
        throw new WorkflowDefinitionError(`workflow ${name}, ${where}: spawnChild id ${JSON.stringify(id)} is also an invocation's id; give the spawned child an id of its own`);
      }
    }
  }
  // The rest of setup({ actors }): spawned by spawnChild actions (a fan-out), or unused.
  for (const [actorName, logic] of Object.entries(implementations)) addActor(logic, actorName, `workflow ${name}, actor ${actorName}`);
  const migrate = options.migrate;
  if (migrate !== undefined && (!Number.isSafeInteger(migrate.from) || migrate.from < 1 || migrate.from >= version || typeof migrate.state !== 'function')) {
    throw new WorkflowDefinitionError(`workflow ${name} version ${version}: migrate needs from (an earlier version) and a state function`);
  }
  return Object.freeze({ name, version, machine, actors: Object.freeze([...actors.values()]), invokeIds, ...(migrate ? { migrate } : {}) });
}

/** The `jobs` option of defineWorkflow, each actor's options checked as job(type, options) checks its own. */
function checkedJobsOptions(name: string, jobs: ReadonlyMap<string, WorkflowJobOptions> | undefined): ReadonlyMap<string, WorkflowJobOptions> {
  const checked = new Map<string, WorkflowJobOptions>();
  for (const [actor, options] of jobs ?? []) checked.set(actor, checkedJobOptions(`workflow ${name}, jobs ${actor}`, options));
  return checked;
}

// ---------------------------------------------------------------- state

export type WorkflowStatus = 'active' | 'done' | 'error' | 'cancelled';
export const WORKFLOW_STATUSES: readonly WorkflowStatus[] = Object.freeze(['active', 'done', 'error', 'cancelled']);

/**
 * A live child: the job running an invocation (a state's `invoke`, which
 * lives while its state does) or a spawned actor (a `spawnChild` action,
 * which lives until it ends, a `stopChild` names it, or the instance ends).
 */
export interface WorkflowChild {
  /** The invocation's or spawned actor's id. */
  invokeId: string;
  jobId: string;
  jobType: string;
  /** Present for a spawned child. */
  spawned?: true;
}

/** A delayed event waiting to fire. */
export interface WorkflowTimer {
  /** XState's send id (`xstate.after.<delay>.<state>` for `after`). */
  id: string;
  dueAt: number;
  event: AnyEventObject;
}

/** The serialisable form stored in the workflows row. */
export interface PersistedWorkflow {
  value: StateValue;
  context: unknown;
  /** History states' last children, by history node id (node ids). */
  history: { node: string; states: string[] }[];
  status: WorkflowStatus;
  output?: unknown;
  error?: unknown;
  children: WorkflowChild[];
  timers: WorkflowTimer[];
}

/** A job to start for an invocation the step entered. */
export interface JobStart {
  invokeId: string;
  /** The id `newJobId` gave it. */
  jobId: string;
  jobType: string;
  input: unknown;
  options: WorkflowJobOptions;
}

/** What a step asks the engine to do beside storing the new state. */
export interface WorkflowEffects {
  start: JobStart[];
  /** Jobs of invocations the step left (or replaced): cancel them. */
  cancel: WorkflowChild[];
  /** Timers set by this step (also in the new state's `timers`). */
  setTimers: WorkflowTimer[];
  /** Timers dropped by this step. */
  dropTimers: string[];
  /** Messages to other instances (`sendToWorkflow`), in the order the step sent them. */
  send: WorkflowSend[];
}

/** A message one instance sends another. */
export interface WorkflowSend {
  /** The target instance's id. */
  to: string;
  event: AnyEventObject;
}

/** A step that does nothing beside storing the new state. */
export const NO_EFFECTS = (): WorkflowEffects => ({ start: [], cancel: [], setTimers: [], dropTimers: [], send: [] });

export type WorkflowStep =
  /**
   * `unstorable`: the step the machine took could not be stored (`checkStorable`), so `next` ends the
   * instance in error; the engine refuses a signal that would take it, writing nothing.
   */
  | { ok: true; next: PersistedWorkflow; effects: WorkflowEffects; unstorable?: WorkflowStorageError }
  /** The machine took no transition for the event: nothing to store. */
  | { ok: false };

interface HistoryNode {
  id: string;
}

export type Snapshot = ReturnType<AnyStateMachine['resolveState']>;

export function persistSnapshot(snapshot: Snapshot, status: WorkflowStatus, children: WorkflowChild[], timers: WorkflowTimer[]): PersistedWorkflow {
  const s = snapshot as unknown as { value: StateValue; context: unknown; historyValue: Record<string, HistoryNode[]>; output?: unknown; error?: unknown };
  const history = Object.entries(s.historyValue ?? {}).map(([node, states]) => ({ node, states: states.map((n) => n.id) }));
  const p: PersistedWorkflow = { value: s.value, context: s.context, history, status, children, timers };
  if (s.output !== undefined) p.output = s.output;
  if (s.error !== undefined) p.error = errorValue(s.error);
  return p;
}

/** Longest message of an Error an instance's `error` keeps (as a job's last error keeps its own). */
export const MAX_WORKFLOW_ERROR_MESSAGE_CHARS = 8000;
/** Most characters (UTF-16 code units) of JSON a thrown value that is no Error may take as an instance's `error`. */
export const MAX_WORKFLOW_ERROR_JSON_CHARS = 64 * 1024;

/**
 * An error as JSON keeps it: an Error's name and message (JSON.stringify would
 * give `{}`), the message cut to MAX_WORKFLOW_ERROR_MESSAGE_CHARS. A thrown value
 * that is no Error is kept as it is when JSON writes it within
 * MAX_WORKFLOW_ERROR_JSON_CHARS, nested at most MAX_NESTING_DEPTH levels; otherwise (a BigInt, a cycle, a huge or deep object)
 * as an Error of its text: stored as it was, the instance's last write would fail.
 */
function errorValue(e: unknown): unknown {
  if (e instanceof Error) {
    try {
      return { name: cutText(String(e.name), 200), message: cutText(String(e.message), MAX_WORKFLOW_ERROR_MESSAGE_CHARS) };
    } catch {
      // A name or message that is no string and cannot become one (an object without a prototype).
      return { name: 'Error', message: 'an Error whose message cannot be read as text' };
    }
  }
  let json: string | undefined;
  try {
    // Nested at most as deep as a context (a deeper one is kept as its text, as one JSON cannot store).
    json = JSON.stringify(e, storedReplacer('the thrown value').replacer);
  } catch {
    json = undefined;
  }
  if (json !== undefined && json.length <= MAX_WORKFLOW_ERROR_JSON_CHARS) return e;
  let text: string;
  try {
    text = String(e);
  } catch {
    text = typeof e;
  }
  return { name: 'Error', message: cutText(`a thrown value too large to keep, or that JSON cannot store: ${text}`, MAX_WORKFLOW_ERROR_MESSAGE_CHARS) };
}

export function restoreSnapshot(def: WorkflowDefinition, p: PersistedWorkflow): Snapshot {
  const historyValue = Object.fromEntries(p.history.map((h) => [h.node, h.states.map((id) => def.machine.getStateNodeById(id))]));
  const snapshot = def.machine.resolveState({
    value: p.value, context: p.context as never, historyValue: historyValue as never,
    status: p.status === 'active' ? 'active' : p.status === 'done' ? 'done' : 'error', output: p.output, error: p.error,
  } as never);
  // The live children by id, as XState keeps them: a `stopChild` resolves its target there (the engine
  // reads the id back from the action). Stand-ins: a step never runs an action.
  (snapshot as unknown as { children: Record<string, { id: string }> }).children = Object.fromEntries(
    p.children.map((c) => [c.invokeId, { id: c.invokeId }]),
  );
  return snapshot;
}

/** The invoke ids of the states `snapshot` is in. */
export function activeInvokeIds(snapshot: Snapshot): Set<string> {
  const nodes = (snapshot as unknown as { _nodes: StateNodeLike[] })._nodes;
  return new Set(nodes.flatMap((n) => n.invoke.map((i) => i.id)));
}

/** The event type XState gives an `after` transition's timer (`xstate.after.<delay>.<state node id>`). */
export const AFTER_EVENT_PREFIX = 'xstate.after.';

/**
 * Whether a stored timer is one the states a snapshot is in can still fire:
 * any delayed event but an `after`'s, and an `after` timer whose transition
 * (its state and its delay) they have. One they lack would fire an event
 * nothing takes.
 */
export function timerFits(snapshot: Snapshot): (timer: WorkflowTimer) => boolean {
  const nodes = (snapshot as unknown as { _nodes: StateNodeLike[] })._nodes;
  const delays = new Set(nodes.flatMap((n) => n.after.map((t) => t.eventType)));
  return (timer) => !timer.event.type.startsWith(AFTER_EVENT_PREFIX) || delays.has(timer.event.type);
}

interface ActionLike {
  type: string;
  params?: Record<string, unknown>;
}

export function jobTypeFor(def: WorkflowDefinition, src: unknown, logic: unknown): { jobType: string; options: WorkflowJobOptions } {
  const named = typeof src === 'string' ? def.actors.find((a) => a.name === src) : undefined;
  if (named) return named;
  const type = jobTypeOf(logic ?? src);
  if (type !== undefined) return { jobType: type, options: (logic as unknown as JobLogic)[JOB_OPTIONS] };
  throw new WorkflowDefinitionError(`workflow ${def.name}: an invocation of ${String(src)} is not a job`);
}

/**
 * Turns the actions of a pure transition into effects, against the children
 * and timers the instance had. `newJobId` names each started job (the engine
 * derives it; the step stays pure).
 */
/**
 * The id of a child a `spawnChild` action starts, as XState resolved it: an
 * `id` given as a function was called, and the resolved id is on the actor it
 * made. A spawn without an id would get a random one, which replay could not
 * give again: refused. (A spawned id must not be a state's invoke id: the
 * child would be taken for that invocation. `defineWorkflow` refuses an id
 * written as text; one a function gives is not checked.)
 */
function childIdOf(def: WorkflowDefinition, p: Record<string, unknown>): string {
  const id = typeof p.id === 'string' ? p.id : p.id === undefined ? undefined : (p.actorRef as { id?: unknown } | undefined)?.id;
  if (typeof id !== 'string' || id.length === 0) {
    throw new WorkflowDefinitionError(`workflow ${def.name}: spawnChild needs an id (one per child: a job per item needs an id per item)`);
  }
  return id;
}

/** An instance id as the engine makes them (a ULID) or a caller could: what `sendToWorkflow` may name. */
const INSTANCE_ID = /^[0-9A-Za-z]{1,64}$/;

/** A `sendToWorkflow` as its action resolved it: a target id and an event the target's machine may take. */
function sendOf(def: WorkflowDefinition, p: { to?: unknown; event?: unknown }): WorkflowSend {
  if (typeof p.to !== 'string' || !INSTANCE_ID.test(p.to)) {
    throw new WorkflowDefinitionError(`workflow ${def.name}: sendToWorkflow needs an instance id (letters and digits), got ${JSON.stringify(p.to) ?? 'undefined'}`);
  }
  const event = p.event as AnyEventObject | null | undefined;
  if (typeof event !== 'object' || event === null || typeof event.type !== 'string' || !isUserEventType(event.type)) {
    throw new WorkflowDefinitionError(`workflow ${def.name}: sendToWorkflow needs an event object whose type is not XState's own (xstate.*)`);
  }
  return { to: p.to, event };
}

function effectsOf(
  def: WorkflowDefinition,
  snapshot: Snapshot,
  actions: readonly ActionLike[],
  before: { children: WorkflowChild[]; timers: WorkflowTimer[] },
  at: number,
  newJobId: (invokeId: string, index: number) => string,
): { effects: WorkflowEffects; children: WorkflowChild[]; timers: WorkflowTimer[] } {
  const effects: WorkflowEffects = NO_EFFECTS();
  const live = new Map(before.children.map((c) => [c.invokeId, c]));
  const timers = new Map(before.timers.map((t) => [t.id, t]));
  let drawn = 0;
  let timerCount = 0;
  // Invocation ids this step spawned and no stopChild has stopped since: each the invocation of a state
  // the step entered (and, if it left it again, stopped), or a spawn named as one (checked below).
  const unstopped = new Set<string>();
  const stopped = (child: WorkflowChild): void => {
    const started = effects.start.findIndex((x) => x.jobId === child.jobId);
    if (started >= 0) effects.start.splice(started, 1);
    else effects.cancel.push(child);
  };
  for (const action of actions) {
    const p = action.params ?? {};
    if (action.type === 'xstate.spawnChild') {
      const invokeId = childIdOf(def, p);
      const old = live.get(invokeId);
      if (old) {
        // Replaced: cancelled, or not started at all when this step started it (a child started twice in one step).
        stopped(old);
        live.delete(invokeId);
      }
      const { jobType, options } = jobTypeFor(def, p.src, (p.actorRef as { logic?: unknown } | undefined)?.logic);
      const jobId = newJobId(invokeId, drawn++);
      effects.start.push({ invokeId, jobId, jobType, input: p.input, options });
      live.set(invokeId, def.invokeIds.has(invokeId) ? { invokeId, jobId, jobType } : { invokeId, jobId, jobType, spawned: true });
      if (def.invokeIds.has(invokeId)) unstopped.add(invokeId);
    } else if (action.type === 'xstate.stopChild') {
      // An invocation stops when its state is left (below); a spawned child when an action names it.
      const id = (action.params as { id?: unknown } | undefined)?.id;
      if (typeof id === 'string') unstopped.delete(id);
      const child = typeof id === 'string' ? live.get(id) : undefined;
      if (child?.spawned) {
        live.delete(id as string);
        stopped(child);
      }
    } else if (action.type === 'xstate.raise' && typeof p.delay === 'number') {
      const dueAt = at + p.delay;
      if (!Number.isFinite(dueAt) || dueAt < 0 || dueAt > MAX_TIMER_DUE_AT) {
        throw new WorkflowDefinitionError(`workflow ${def.name}: a delay of ${p.delay} ms (of ${(p.event as AnyEventObject).type}): a delay is a finite number of milliseconds, due from 1970 to 9999-12-31T23:59:59.999Z`);
      }
      // A delayed raise without an id gets one from its event, time and place in the step (XState's would be
      // random), and never one a timer the instance holds has: two of them due at once are two timers.
      let id = typeof p.id === 'string' ? p.id : '';
      while (id === '' || (typeof p.id !== 'string' && timers.has(id))) id = `raise.${(p.event as AnyEventObject).type}.${dueAt}.${timerCount++}`;
      if (id.length > MAX_TIMER_ID_CHARS) {
        throw new WorkflowDefinitionError(`workflow ${def.name}: a timer id of ${id.length} characters (${JSON.stringify(id.slice(0, 80))}…): at most ${MAX_TIMER_ID_CHARS}`);
      }
      const timer: WorkflowTimer = { id, dueAt, event: p.event as AnyEventObject };
      timers.set(id, timer);
      effects.setTimers.push(timer);
    } else if (action.type === 'xstate.cancel') {
      const id = String(p.sendId);
      if (timers.delete(id)) effects.dropTimers.push(id);
    } else if (action.type === 'xstate.emit' && (p.event as AnyEventObject | undefined)?.type === SEND_TO_WORKFLOW) {
      const send = sendOf(def, p.event as { to?: unknown; event?: unknown });
      if (live.has(send.to) || def.invokeIds.has(send.to)) {
        throw new WorkflowDefinitionError(`workflow ${def.name}: a send to ${send.to}, a child of the instance: a job takes no events`);
      }
      effects.send.push(send);
    } else if (action.type === 'xstate.sendTo' || action.type === 'xstate.sendParent') {
      throw new WorkflowDefinitionError(`workflow ${def.name}: a sendTo queued at run time (enqueueActions) cannot be made durable; use sendToWorkflow(id, event) there`);
    }
  }
  // Invocations of states the step left (every child once the instance ended): their jobs are
  // cancelled, or not started at all when the step entered and left the state (an eventless transition).
  const active = activeInvokeIds(snapshot);
  for (const [invokeId, child] of live) {
    if (snapshot.status === 'active' && !child.spawned && !active.has(invokeId) && unstopped.has(invokeId)) {
      // Started by this step, never stopped, yet of no state the instance is in: not an invocation XState
      // started on entering its state (leaving it would have stopped it) but a spawn named as one, which
      // registration could not see (queued by enqueueActions, or an id a function gives). Taken for that
      // invocation, it would be dropped here, its job never started and the instance waiting for its end.
      throw new WorkflowDefinitionError(
        `workflow ${def.name}: spawnChild id ${JSON.stringify(invokeId)} is the id of an invocation of a state the instance is not in; give the spawned child an id of its own`,
      );
    }
    if (snapshot.status !== 'active' || (!child.spawned && !active.has(invokeId))) {
      stopped(child);
      live.delete(invokeId);
    }
  }
  if (snapshot.status !== 'active') {
    for (const id of timers.keys()) effects.dropTimers.push(id);
    timers.clear();
  }
  return { effects, children: [...live.values()], timers: [...timers.values()] };
}

/**
 * The most microsteps one step may take (XState's `maxIterations`): an eventless
 * transition or a raised event that loops for ever would otherwise hold the
 * process's event loop for ever. A step past it ends the instance in error (a
 * start is refused); a machine's own lower `options.maxIterations` is kept.
 */
export const MAX_MICROSTEPS_PER_STEP = 10_000;
/** Jobs one step may start, and messages it may send (a fan-out's list beyond it is split by the machine, or refused). */
export const MAX_STARTS_PER_STEP = 1000;
/**
 * The most timers an instance may hold: each step writes its timer rows again, and the timers role fires
 * them one step each, so an instance holding tens of thousands would hold up every other instance's
 * timers. A step that sets a timer past it is refused (one that sets none is not).
 */
export const MAX_TIMERS_PER_INSTANCE = 1000;
/** The latest a timer may fall due: the last instant the API's date-times write (its view shows `dueAt`). */
export const MAX_TIMER_DUE_AT = LAST_INSTANT_MS;
/** The longest timer id (a delayed event's: `xstate.after.<delay>.<state id>`, or a raise's own), as the stores keep it. */
export const MAX_TIMER_ID_CHARS = 512;

/**
 * The most bytes of JSON an instance's state (its context, output, error, live
 * children and timers) may take, and one input of a job it starts or one
 * message it sends: a step past it ends the instance in error. Larger rows
 * would not fit one statement on MariaDB (`max_allowed_packet`, 16 MiB, with the
 * text escaped), and an instance that rewrites megabytes at every step is one
 * to keep its data elsewhere and a reference in the context.
 */
export const MAX_WORKFLOW_VALUE_BYTES = 4 * 1024 * 1024;
/** The most bytes of JSON one step writes in all (its state, its jobs' inputs, its messages): a fan-out of 1,000 jobs of 4 MiB each would be 4 GiB in one transaction. */
export const MAX_WORKFLOW_STEP_BYTES = 16 * 1024 * 1024;

/** What `storedReplacer` refused: the part of the value, and why. */
interface StoredRefusal {
  part: string;
  problem: string;
}

/**
 * A JSON.stringify replacer for what an instance stores. Arrays and objects
 * nest at most MAX_NESTING_DEPTH levels (a job's payload and result have the
 * same bound) below the top of their part: the top of the value, or where
 * `partOf` names a part (a state's context, its output, a timer's event).
 * Checked as JSON comes to each, so a deep value is refused before the
 * recursion nears the stack's end, with one reason whatever the depth. With
 * `faithful`, also what JSON would give back as something else: a number that
 * is not finite (null), a Map or a Set (`{}`, without its entries), a Date
 * (its text). `inner` runs first. `refused()` says what it refused, if anything
 * (it throws to stop the writing, and JSON.stringify passes that on).
 */
function storedReplacer(
  top: string, options: { partOf?: (holder: unknown, key: string) => string | null; faithful?: boolean; inner?: (key: string, value: unknown) => unknown } = {},
): { replacer: (this: unknown, key: string, value: unknown) => unknown; refused: () => StoredRefusal | null } {
  // The arrays and objects JSON is in (each an ancestor of the next), with their levels: JSON asks about a
  // value with its holder, so those after the holder are done.
  const holders: unknown[] = [];
  const levels: number[] = [];
  let part = top;
  let refusal: StoredRefusal | null = null;
  const refuse = (problem: string): never => {
    refusal = { part, problem };
    throw new Error(`${part} ${problem}`);
  };
  return {
    refused: () => refusal,
    replacer(this: unknown, key: string, given: unknown): unknown {
      const value = options.inner ? options.inner(key, given) : given;
      const named = options.partOf?.(this, key) ?? null;
      if (named !== null) part = named;
      // A Date's toJSON ran before the replacer is asked (its text, or null for an invalid one): the holder still has it.
      if (options.faithful && (this as Record<string, unknown>)[key] instanceof Date) {
        refuse('holds a Date, which JSON stores as its text: keep the text, or its milliseconds, instead');
      }
      // A boxed number, string or boolean is written as the value it holds: no level of its own.
      if (typeof value !== 'object' || value === null || isBoxedPrimitive(value)) {
        if (!options.faithful) return value;
        if (typeof value === 'number' && !Number.isFinite(value)) refuse(`holds the number ${value}, which JSON stores as null`);
        return value;
      }
      if (options.faithful && (value instanceof Map || value instanceof Set)) {
        refuse(`holds a ${value instanceof Map ? 'Map' : 'Set'}, which JSON stores as {} without its entries: keep an object or an array instead`);
      }
      while (holders.length > 0 && holders[holders.length - 1] !== this) {
        holders.pop();
        levels.pop();
      }
      const level = named !== null || levels.length === 0 ? 0 : levels[levels.length - 1]! + 1;
      if (level >= MAX_NESTING_DEPTH) {
        refuse(`nests deeper than ${MAX_NESTING_DEPTH} levels of arrays and objects, more than a workflow keeps (a job's payload and result have the same bound): flatten it, or keep it elsewhere and a reference in the context`);
      }
      holders.push(value);
      levels.push(level);
      return value;
    },
  };
}

/**
 * A step the store can keep: at most MAX_STARTS_PER_STEP jobs started, at most
 * MAX_TIMERS_PER_INSTANCE timers held once it set one (or no more than the
 * `heldBefore` an instance of an earlier release held), and a
 * state, job inputs and messages that JSON can write (no BigInt, no cycle; an
 * actor reference in the context, from `spawn` inside `assign`, is refused here too),
 * each within MAX_WORKFLOW_VALUE_BYTES and all within MAX_WORKFLOW_STEP_BYTES,
 * each nested at most MAX_NESTING_DEPTH levels, and a state JSON gives back as
 * it is (no NaN or Infinity, Map, Set or Date: `storedReplacer`). Throws a
 * WorkflowStorageError otherwise; the step then ends the instance in error (the
 * engine refuses a signal that would take it), and replay does the same (a
 * migration's move, refused, leaves the instance on its version).
 */
export function checkStorable(def: WorkflowDefinition, next: PersistedWorkflow, effects: WorkflowEffects, heldBefore = 0): void {
  if (effects.start.length > MAX_STARTS_PER_STEP) {
    throw new WorkflowStorageError(`workflow ${def.name}: one step starts ${effects.start.length} jobs, more than ${MAX_STARTS_PER_STEP}`);
  }
  if (effects.send.length > MAX_STARTS_PER_STEP) {
    throw new WorkflowStorageError(`workflow ${def.name}: one step sends ${effects.send.length} messages, more than ${MAX_STARTS_PER_STEP}`);
  }
  // Past the bound and more than before: an instance that held more (from an earlier release) may still set one in a place it frees.
  if (effects.setTimers.length > 0 && next.timers.length > Math.max(MAX_TIMERS_PER_INSTANCE, heldBefore)) {
    throw new WorkflowStorageError(`workflow ${def.name}: the instance would hold ${next.timers.length} timers, more than the ${MAX_TIMERS_PER_INSTANCE} it may`);
  }
  const refs = (v: unknown): boolean => typeof v === 'object' && v !== null && typeof (v as { send?: unknown }).send === 'function' && 'sessionId' in v;
  const noRefs = (_k: string, v: unknown): unknown => {
    if (refs(v)) throw new Error('it holds an actor reference (from spawn inside assign): use the spawnChild action');
    return v;
  };
  /** The bytes of JSON of `value` (what `what` names); throws unless JSON can write it, as `stored` allows, within MAX_WORKFLOW_VALUE_BYTES. */
  const bytesOf = (what: string, value: unknown, stored = storedReplacer(what)): number => {
    const json = jsonSize(value, stored.replacer);
    const refused = stored.refused();
    if (refused) throw new WorkflowStorageError(`workflow ${def.name}: ${refused.part} ${refused.problem}`);
    if ('error' in json) throw new WorkflowStorageError(`workflow ${def.name}: ${what} cannot be stored as JSON: ${json.error}`);
    if (json.bytes > MAX_WORKFLOW_VALUE_BYTES) {
      throw new WorkflowStorageError(
        `workflow ${def.name}: ${what} is ${json.bytes} bytes of JSON, more than the ${MAX_WORKFLOW_VALUE_BYTES} a workflow may store there: keep large data elsewhere and a reference in the context`,
        true,
      );
    }
    return json.bytes;
  };
  const timers = new Set<unknown>(next.timers);
  // The state's parts, each nested from its own top: the context, the output, each timer's event; the rest from the state's.
  const partOf = (holder: unknown, key: string): string | null => {
    if (holder === next) return key === 'context' ? 'the context' : key === 'output' ? 'the output' : `the state's ${key}`;
    return key === 'event' && timers.has(holder) ? 'a timer\'s event' : null;
  };
  let total: number;
  const state = storedReplacer('the state', { partOf, faithful: true, inner: noRefs });
  try {
    total = bytesOf('the state (context, output, live children and timers)', next, state);
  } catch (err) {
    // Named by its part where one is the cause: the context (what a machine most often fills), the output.
    if (state.refused()) throw err;
    bytesOf('the context', next.context, storedReplacer('the context', { faithful: true, inner: noRefs }));
    if (next.output !== undefined) bytesOf('the output', next.output, storedReplacer('the output', { faithful: true }));
    throw err;
  }
  for (const started of effects.start) total += bytesOf(`the input of ${started.invokeId} (${started.jobType})`, started.input);
  for (const m of effects.send) total += bytesOf(`a message to ${m.to}`, m.event);
  if (total > MAX_WORKFLOW_STEP_BYTES) {
    throw new WorkflowStorageError(
      `workflow ${def.name}: one step writes ${total} bytes of JSON (its state, ${effects.start.length} job inputs and ${effects.send.length} messages), more than the ${MAX_WORKFLOW_STEP_BYTES} a step may`,
      true,
    );
  }
}

/** The instance's status for a snapshot of its machine. */
export const statusOf = (snapshot: Snapshot): WorkflowStatus => (snapshot.status === 'done' ? 'done' : snapshot.status === 'error' ? 'error' : 'active');

/** The first state of a new instance. */
export function startWorkflow(
  def: WorkflowDefinition, input: unknown, at: number, newJobId: (invokeId: string, index: number) => string,
): { next: PersistedWorkflow; effects: WorkflowEffects } {
  const [snapshot, actions] = initialTransition(def.machine, input);
  // XState does not throw when the context factory (or a first action) does: it returns an errored snapshot.
  if (snapshot.status === 'error') throw snapshot.error instanceof Error ? snapshot.error : new Error(String(JSON.stringify(snapshot.error)));
  const { effects, children, timers } = effectsOf(def, snapshot, actions as ActionLike[], { children: [], timers: [] }, at, newJobId);
  const next = persistSnapshot(snapshot, statusOf(snapshot), children, timers);
  checkStorable(def, next, effects);
  return { next, effects };
}

/** The XState event a child job's end delivers: `xstate.done.actor.<id>` or `xstate.error.actor.<id>`. */
export function childEvent(invokeId: string, outcome: ChildOutcome): AnyEventObject {
  return outcome.state === 'done'
    ? { type: `xstate.done.actor.${invokeId}`, output: outcome.result, actorId: invokeId }
    : { type: `xstate.error.actor.${invokeId}`, error: outcome.error, actorId: invokeId };
}

/** How a child job ended. */
export type ChildOutcome =
  | { state: 'done'; result: unknown }
  | { state: 'dead' | 'cancelled'; error: unknown };

/**
 * Steps an instance by one outside event (a signal, a timer). An event no
 * transition takes changes nothing (`ok: false`).
 */
export function stepWorkflow(
  def: WorkflowDefinition, current: PersistedWorkflow, event: AnyEventObject, at: number,
  newJobId: (invokeId: string, index: number) => string,
): WorkflowStep {
  if (current.status !== 'active') return { ok: false };
  try {
    const snapshot = restoreSnapshot(def, current);
    const [next, actions] = transition(def.machine, snapshot, event);
    // No transition took the event. XState hands back the same snapshot also for a transition that
    // leaves the state as it was: one whose only action is a send (it has its action), and one that
    // targets a state the instance is in already (no action at all). That one took the event, as
    // XState's `can` says (a transition with neither target nor action is forbidden: it takes nothing).
    if (next === snapshot && actions.length === 0 && !snapshot.can(event)) return { ok: false };
    const { effects, children, timers } = effectsOf(def, next, actions as ActionLike[], current, at, newJobId);
    const persisted = persistSnapshot(next, statusOf(next), children, timers);
    checkStorable(def, persisted, effects, current.timers.length);
    return { ok: true, next: persisted, effects };
  } catch (err) {
    // The machine's own code threw (a guard, an assign, an input) or did what cannot be made durable:
    // as an XState actor would, the instance ends in error; replay throws the same and ends the same.
    const ended = endWith(current, 'error', { error: errorValue(err) });
    return err instanceof WorkflowStorageError ? { ...ended, unstorable: err } : ended;
  }
}

/**
 * Delivers the end of child job `jobId`. Fenced: a job that is not a live
 * child of the instance (a duplicate or late delivery, an invocation since
 * left or replaced) changes nothing (`ok: false`). Otherwise the child is
 * gone from the instance whatever the machine does with its event; an error
 * no transition takes ends the instance in `error`, as in XState, where an
 * unhandled child error fails its parent.
 */
export function deliverChild(
  def: WorkflowDefinition, current: PersistedWorkflow, jobId: string, outcome: ChildOutcome, at: number,
  newJobId: (invokeId: string, index: number) => string,
): WorkflowStep {
  if (current.status !== 'active') return { ok: false };
  const child = current.children.find((c) => c.jobId === jobId);
  if (!child) return { ok: false };
  const without: PersistedWorkflow = { ...current, children: current.children.filter((c) => c !== child) };
  const r = stepWorkflow(def, without, childEvent(child.invokeId, outcome), at, newJobId);
  if (r.ok) return r;
  if (outcome.state !== 'done') return endWith(without, 'error', { error: outcome.error ?? null });
  return { ok: true, next: without, effects: NO_EFFECTS() };
}

function endWith(current: PersistedWorkflow, status: WorkflowStatus, extra: { error?: unknown }): Extract<WorkflowStep, { ok: true }> {
  const next: PersistedWorkflow = { ...current, ...extra, status, children: [], timers: [] };
  return {
    ok: true, next,
    effects: { ...NO_EFFECTS(), cancel: [...current.children], dropTimers: current.timers.map((t) => t.id) },
  };
}

/** Cancels an active instance: its live children are cancelled and its timers dropped. */
export function cancelWorkflow(current: PersistedWorkflow): WorkflowStep {
  if (current.status !== 'active') return { ok: false };
  return endWith(current, 'cancelled', {});
}

/** The event types the instance's current states take (for the API's `accepts`), built-in ones left out. */
export function acceptedEvents(def: WorkflowDefinition, current: PersistedWorkflow): string[] {
  if (current.status !== 'active') return [];
  const snapshot = restoreSnapshot(def, current);
  const types = new Set<string>();
  for (const node of (snapshot as unknown as { _nodes: { ownEvents: string[] }[] })._nodes) {
    for (const t of node.ownEvents) if (!t.startsWith('xstate.') && t !== '*') types.add(t);
  }
  return [...types].sort();
}

/** Whether a user may send an event of this type (built-in events are the engine's). */
export const isUserEventType = (type: string): boolean => type.length > 0 && type.length <= 200 && !type.startsWith('xstate.');

/**
 * XState's wildcard: in a machine's `on`, any event; never an event's own
 * type. XState's development build (Node's `--conditions=development`)
 * throws on an event of this type, which would end the instance in error;
 * its default build takes no transition for it. A signal of this type is
 * refused before anything is written (the signal route, `WorkflowService.signal`).
 * Not part of `isUserEventType`, which `sendToWorkflow` and the replay of
 * recorded histories also check: they stay as they were.
 */
export const WILDCARD_EVENT_TYPE = '*';

// ---------------------------------------------------------------- recorded events

/** What entered an instance, as its history records it (the engine's `workflow_events`). */
export type WorkflowInputEvent =
  | { type: 'SIGNAL'; event: AnyEventObject }
  | { type: 'CHILD'; jobId: string; outcome: ChildOutcome }
  | { type: 'TIMER'; timerId: string }
  | { type: 'CANCEL'; reason?: string }
  /** A message another instance sent (`sendToWorkflow`): `messageId` is unique, `from` the sender's id. */
  | { type: 'MESSAGE'; from: string; messageId: string; event: AnyEventObject };

/**
 * The step one recorded event makes: what the engine decides when the event
 * arrives, and what replay does again. A timer fires only if the instance
 * still holds it; it is gone after firing whether a transition took its
 * event or not (`ok: true` with the state otherwise unchanged).
 */
export function applyWorkflowEvent(
  def: WorkflowDefinition, current: PersistedWorkflow, input: WorkflowInputEvent, at: number,
  newJobId: (invokeId: string, index: number) => string,
): WorkflowStep {
  switch (input.type) {
    case 'SIGNAL':
    case 'MESSAGE':
      return stepWorkflow(def, current, input.event, at, newJobId);
    case 'CHILD':
      return deliverChild(def, current, input.jobId, input.outcome, at, newJobId);
    case 'CANCEL':
      return cancelWorkflow(current);
    case 'TIMER': {
      // Only a timer whose time has come: one the instance set again since (same id) waits for its own.
      const timer = current.status === 'active' ? current.timers.find((t) => t.id === input.timerId) : undefined;
      if (!timer || timer.dueAt > at) return { ok: false };
      const without: PersistedWorkflow = { ...current, timers: current.timers.filter((t) => t !== timer) };
      const r = stepWorkflow(def, without, timer.event, at, newJobId);
      return r.ok ? r : { ok: true, next: without, effects: NO_EFFECTS() };
    }
  }
}

/** Job ids as a step recorded them, handed out in order; throws when the step starts more jobs than it recorded. */
export function recordedJobIds(jobIds: readonly string[]): (invokeId: string, index: number) => string {
  return (invokeId, index) => {
    const id = jobIds[index];
    if (id === undefined) throw new Error(`replay: the step starts job #${index + 1} (${invokeId}) but recorded ${jobIds.length}`);
    return id;
  };
}

/** A state as the store gives it back (JSON): what the next step starts from. */
export const asStored = (state: PersistedWorkflow): PersistedWorkflow => JSON.parse(JSON.stringify(state)) as PersistedWorkflow;
