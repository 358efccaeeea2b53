/**
 * What the workflows panel shows, shaped for display: the recent instances
 * (`GET /v1/workflows`), and of the one selected its machine with the states
 * it is in (`GET /v1/workflows/:id/graph`), its children and their jobs'
 * states, its timers, its outcome and its history
 * (`GET /v1/workflows/:id/events`); the live counts of the states (how many
 * active instances of that version are in each) and the time-travel slider
 * over its steps. And when the panel reads the selected instance again: on a
 * stream `workflow` message for it, or a job transition of one of its
 * children. Pure (no DOM, time passed in): tested under node.
 *
 * Workflow names, state keys, invocation ids and event types are strings the
 * workflow's author chose: shown as text, never keys of a plain object.
 */
import type { StreamEventMessage, StreamWorkflowMessage, Workflow, WorkflowEvent, WorkflowPage } from '../../../client/index.js';
import type { WorkflowGraphEdge, WorkflowGraphNode } from '../../../machines/workflow-graph.js';
import { countText, dateTime, jsonLine } from './dom.js';
import { relative } from './insights.js';

export type { Workflow, WorkflowEvent, WorkflowPage };

/** Live counts: the tenant's active instances of the graph's name and version, per state node (those with none left out). */
export interface WorkflowGraphCounts {
  instances: number;
  /** More active instances exist than the server counted. */
  capped: boolean;
  nodes: { id: string; active: number }[];
}

/** One step of the instance's history and the state nodes it left the instance in. */
export interface WorkflowGraphStep {
  seq: number;
  type: WorkflowEvent['type'];
  status: Workflow['status'];
  active: string[];
}

/**
 * `GET /v1/workflows/:id/graph`: the instance's machine and the state nodes it
 * is in; `counts` and `steps` are absent from an older server's answer (the
 * panel then shows no counts and no slider).
 */
export interface WorkflowGraphAnswer {
  id: string;
  name: string;
  definitionVersion: number;
  status: Workflow['status'];
  value: unknown;
  active: string[];
  root: string;
  nodes: WorkflowGraphNode[];
  edges: WorkflowGraphEdge[];
  actors: { name: string | null; jobType: string }[];
  counts?: WorkflowGraphCounts;
  steps?: WorkflowGraphStep[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTime = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const STATUSES: ReadonlySet<unknown> = new Set(['active', 'done', 'error', 'cancelled']);

/** Whether a body is an instance as the API shows it (what the panel relies on). */
export function isWorkflow(v: unknown): v is Workflow {
  return isObject(v) && typeof v.id === 'string' && typeof v.name === 'string' && STATUSES.has(v.status)
    && Number.isInteger(v.definitionVersion) && Array.isArray(v.children) && Array.isArray(v.timers)
    && isTime(v.createdAt) && isTime(v.updatedAt);
}

/** Whether a body is a page of `GET /v1/workflows`. */
export function isWorkflowPage(v: unknown): v is WorkflowPage {
  return isObject(v) && Array.isArray(v.workflows) && v.workflows.every(isWorkflow);
}

const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
const isCounts = (v: unknown): v is WorkflowGraphCounts => isObject(v) && isCount(v.instances) && typeof v.capped === 'boolean'
  && Array.isArray(v.nodes) && v.nodes.every((n) => isObject(n) && typeof n.id === 'string' && isCount(n.active));
const isSteps = (v: unknown): v is WorkflowGraphStep[] => Array.isArray(v)
  && v.every((st) => isObject(st) && isCount(st.seq) && typeof st.type === 'string' && STATUSES.has(st.status) && isStrings(st.active));

/** Whether a body is the answer of `GET /v1/workflows/:id/graph` (without `counts` and `steps`: an older server's). */
export function isWorkflowGraph(v: unknown): v is WorkflowGraphAnswer {
  return isObject(v) && typeof v.id === 'string' && typeof v.root === 'string' && isStrings(v.active)
    && Array.isArray(v.nodes) && v.nodes.every((n) => isObject(n) && typeof n.id === 'string' && isStrings(n.children))
    && Array.isArray(v.edges) && v.edges.every((e) => isObject(e) && typeof e.source === 'string')
    && (v.counts === undefined || isCounts(v.counts)) && (v.steps === undefined || isSteps(v.steps));
}

/** `charging`, `fulfilling: stock.reserved, shipping.booking`: a state value on one line. */
export function valueText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (!isObject(value)) return jsonLine(value);
  const leaves: string[] = [];
  const walk = (v: unknown, path: string): void => {
    if (typeof v === 'string') leaves.push(path ? `${path}.${v}` : v);
    else if (isObject(v)) {
      const entries = Object.entries(v);
      if (entries.length === 0) leaves.push(path);
      for (const [k, sub] of entries) walk(sub, path ? `${path}.${k}` : k);
    }
  };
  const entries = Object.entries(value);
  if (entries.length === 1) {
    const [top, sub] = entries[0]!;
    walk(sub, '');
    return leaves.length ? `${top}: ${leaves.join(', ')}` : top;
  }
  walk(value, '');
  return leaves.join(', ');
}

/** One row of the instances list. */
export interface WorkflowRow {
  id: string;
  name: string;
  version: number;
  status: Workflow['status'];
  state: string;
  /** Live children: `2 jobs`, or ''. */
  children: string;
  updatedAt: string;
  updatedLocal: string;
  updatedRelative: string;
}

export function workflowRows(page: WorkflowPage, now: number): WorkflowRow[] {
  return page.workflows.map((w) => ({
    id: w.id, name: w.name, version: w.definitionVersion, status: w.status,
    state: w.status === 'active' || w.status === 'done' ? valueText(w.value) : `${valueText(w.value)} (when it ended)`,
    children: w.children.length ? `${w.children.length} job${w.children.length === 1 ? '' : 's'}` : '',
    updatedAt: w.updatedAt, updatedLocal: dateTime(w.updatedAt), updatedRelative: relative(Date.parse(w.updatedAt), now),
  }));
}

/** A live child: its invocation, its job and the job's state now. */
export interface ChildRow {
  invokeId: string;
  jobId: string;
  jobType: string;
  /** `unknown` when the job is gone. */
  state: string;
}

export function childRows(w: Workflow): ChildRow[] {
  return w.children.map((c) => ({ invokeId: c.invokeId, jobId: c.jobId, jobType: c.jobType, state: c.state ?? 'unknown' }));
}

/** The child job of each invocation id (a Map: the ids are the author's). */
export function childByInvoke(w: Workflow): Map<string, ChildRow> {
  return new Map(childRows(w).map((c) => [c.invokeId, c]));
}

/** A pending timer: which delay of which state, due when. */
export interface TimerRow {
  id: string;
  /** `after 5 s in order.waiting` for an `after` timer, else its id. */
  text: string;
  dueAt: string;
  dueLocal: string;
  dueRelative: string;
}

const AFTER = /^xstate\.after\.([^.]+)\.(.+)$/;

export function timerRows(w: Workflow, now: number): TimerRow[] {
  return w.timers.map((t) => {
    const m = AFTER.exec(t.id);
    const delay = m ? (Number.isNaN(Number(m[1])) ? m[1]! : `${Number(m[1]) / 1000} s`) : '';
    return {
      id: t.id, text: m ? `after ${delay} in ${m[2]}` : t.id,
      dueAt: t.dueAt, dueLocal: dateTime(t.dueAt), dueRelative: relative(Date.parse(t.dueAt), now),
    };
  });
}

/** What the instance ended with, or null while it runs. */
export function outcomeOf(w: Workflow): { kind: 'output' | 'error' | 'cancelled'; value: unknown } | null {
  if (w.status === 'done') return { kind: 'output', value: w.output };
  if (w.status === 'error') return { kind: 'error', value: w.error };
  if (w.status === 'cancelled') return { kind: 'cancelled', value: w.error ?? null };
  return null;
}

/** One step of the history. */
export interface HistoryRow {
  seq: number;
  type: string;
  at: string;
  atLocal: string;
  status: string;
  /** What entered: the signal's type, the child's end, the timer, the versions of a move. */
  what: string;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** A history event's `data` as a short line (the full JSON goes in a tooltip). */
export function eventSummary(e: Pick<WorkflowEvent, 'type' | 'data'>): string {
  const d = isObject(e.data) ? e.data : {};
  switch (e.type) {
    case 'START':
      return d.input === undefined ? 'started' : `started with ${jsonLine(d.input, 80)}`;
    case 'SIGNAL': {
      const ev = isObject(d.event) ? d.event : {};
      return `signal ${text(ev.type) ?? '?'}`;
    }
    case 'MESSAGE': {
      const ev = isObject(d.event) ? d.event : {};
      return `message ${text(ev.type) ?? '?'} from workflow ${text(d.from) ?? '?'}`;
    }
    case 'CHILD': {
      const outcome = isObject(d.outcome) ? d.outcome : {};
      const job = text(d.jobId);
      return `child job ${job ?? '?'} ${text(outcome.state) ?? 'ended'}`;
    }
    case 'TIMER': {
      const id = text(d.timerId) ?? text(d.id) ?? (isObject(d.timer) ? text(d.timer.id) : undefined);
      return id ? `timer ${id}` : 'timer';
    }
    case 'CANCEL':
      return text(d.reason) ? `cancelled: ${text(d.reason)}` : 'cancelled';
    case 'MIGRATE':
      return `moved from version ${String(d.from ?? '?')} to ${String(d.to ?? '?')}`;
    default:
      return jsonLine(e.data, 80);
  }
}

export function historyRows(events: readonly WorkflowEvent[]): HistoryRow[] {
  return events.map((e) => ({ seq: e.seq, type: e.type, at: e.at, atLocal: dateTime(e.at), status: e.status, what: eventSummary(e) }));
}

/** The history rows the panel shows at most: its last steps, as many as the slider walks (the graph's `steps`). */
export const HISTORY_SHOWN = 500;

/** The history as the panel shows it: its last `max` steps, and how many older ones it leaves out. */
export function historyShown(events: readonly WorkflowEvent[], max = HISTORY_SHOWN): { rows: HistoryRow[]; older: number } {
  const shown = events.slice(Math.max(0, events.length - max));
  // `seq` counts from 1 without gaps: the first shown tells how many came before, read or not (`?last=`).
  return { rows: historyRows(shown), older: shown.length === 0 ? 0 : shown[0]!.seq - 1 };
}

/**
 * How to turn the history rows drawn (their `seq`s, in order) into `next`
 * without drawing again those that stay (a step never changes once taken):
 * drop the first `drop`, append `append`. Null when `next` does not follow on
 * from what is drawn (nothing drawn yet, another instance, all of it gone
 * past the cap): draw it all.
 */
export function historyPatch<R extends { seq: number }>(drawn: readonly number[], next: readonly R[]): { drop: number; append: R[] } | null {
  if (drawn.length === 0 || next.length === 0) return null;
  const drop = drawn.indexOf(next[0]!.seq);
  if (drop === -1) return null;
  const kept = drawn.length - drop;
  if (next.length < kept) return null;
  for (let i = 0; i < kept; i++) if (next[i]!.seq !== drawn[drop + i]) return null;
  return { drop, append: next.slice(kept) };
}

/** Whether a stream `workflow` message concerns the selected instance (read it again). */
export const concernsWorkflow = (m: Pick<StreamWorkflowMessage, 'workflowId'>, selected: string | null): boolean => selected !== null && m.workflowId === selected;

/** Whether a job transition is of one of the selected instance's live children (their states are shown). */
export function concernsChild(e: Pick<StreamEventMessage, 'jobId'>, selected: Workflow | null): boolean {
  return selected !== null && selected.children.some((c) => c.jobId === e.jobId);
}

/** The state node ids to mark active: none for an instance that ended in error or was cancelled (it is in no state). */
export function highlighted(graph: Pick<WorkflowGraphAnswer, 'active' | 'status'>): Set<string> {
  return new Set(graph.status === 'active' || graph.status === 'done' ? graph.active : []);
}

const instances = (n: number): string => `${countText(n)} active instance${n === 1 ? '' : 's'}`;

/**
 * Each state node's live count, by id (a Map: the ids are the author's);
 * a node with none is left out, as its box shows no number.
 */
export function stateCounts(graph: Pick<WorkflowGraphAnswer, 'counts'>): Map<string, number> {
  return new Map((graph.counts?.nodes ?? []).filter((n) => n.active > 0).map((n) => [n.id, n.active]));
}

/** A state's count as its tooltip says it: `3 active instances of order.fulfil v1 are in order.charging`. */
export function countTitle(id: string, n: number, graph: Pick<WorkflowGraphAnswer, 'name' | 'definitionVersion'>): string {
  return `${instances(n)} of ${graph.name} v${graph.definitionVersion} ${n === 1 ? 'is' : 'are'} in ${id}`;
}

/** What the numbers on the states are, and whether the server stopped counting; null without counts (an older server). */
export function countsNote(graph: Pick<WorkflowGraphAnswer, 'counts' | 'name' | 'definitionVersion'>): string | null {
  const c = graph.counts;
  if (!c) return null;
  const of = `${graph.name} v${graph.definitionVersion}`;
  if (c.instances === 0) return `No active instance of ${of} now: no state shows a number.`;
  if (c.capped) {
    return `Numbers on the states: how many of the first ${instances(c.instances)} of ${of} the server counted are in each `
      + '(capped: more are active, so the numbers are at least these).';
  }
  return `Numbers on the states: how many of the ${instances(c.instances)} of ${of} are in each, live.`;
}

/**
 * Where the time-travel slider is: null at the last step, following the
 * instance as it moves on; else the `seq` of the step it holds, so a live
 * read that brings new steps (or drops the oldest past the 500 the graph
 * gives) leaves it on the same step.
 */
export type TravelHold = number | null;

/** The step the panel shows: its place on the slider, the states to highlight, its line. */
export interface StepShown {
  /** Its place among the steps, from 1; the slider's value. */
  index: number;
  total: number;
  seq: number;
  /** At the last step: the panel shows the instance as it is now, and follows it. */
  following: boolean;
  /** The status after the step (the graph's colours: green once done, none highlighted after an error). */
  status: Workflow['status'];
  /** The state node ids to highlight. */
  active: Set<string>;
  /** `step 3 of 7: CHILD → fulfilling: stock.reserved, shipping.booking`. */
  label: string;
}

/**
 * The step to show for `hold`, or null when the graph has no step (an older
 * server). A held step still in the graph stays shown, at its new place; one
 * the graph no longer has (older than its last 500) gives way to the oldest
 * it has; at the last step it follows: the current states, not the step's.
 */
export function stepShown(graph: Pick<WorkflowGraphAnswer, 'steps' | 'active' | 'status'>, hold: TravelHold,
  events: readonly Pick<WorkflowEvent, 'seq' | 'value'>[] = []): StepShown | null {
  const steps = graph.steps ?? [];
  if (steps.length === 0) return null;
  const held = hold === null ? -1 : steps.findIndex((st) => st.seq >= hold);
  const i = held === -1 ? steps.length - 1 : held;
  const step = steps[i]!;
  const following = i === steps.length - 1;
  const value = events.find((e) => e.seq === step.seq)?.value;
  return {
    index: i + 1, total: steps.length, seq: step.seq, following,
    status: following ? graph.status : step.status,
    active: following ? highlighted(graph) : highlighted(step),
    label: `step ${i + 1} of ${steps.length}: ${step.type}${value === undefined ? '' : ` → ${valueText(value)}`}`,
  };
}

/** The slider moved to `index` (from 1): hold that step, or follow again at the last one. */
export function holdAt(graph: Pick<WorkflowGraphAnswer, 'steps'>, index: number): TravelHold {
  const steps = graph.steps ?? [];
  if (index >= steps.length) return null;
  return steps[Math.max(1, index) - 1]?.seq ?? null;
}
