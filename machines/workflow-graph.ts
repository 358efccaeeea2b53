/**
 * A workflow's machine as a graph, for the console to draw: every state node
 * (with its invocations, the job types they run, and its `after` delays) and
 * every transition, read from the XState machine of a registered definition.
 * Pure: the same definition gives the same graph, so a version's graph can be
 * kept once computed.
 *
 * It reads XState's own state nodes (`transitions`, `always`, `invoke`,
 * `after`), so it shows exactly the transitions the engine steps through:
 * an invocation's `onDone`/`onError` are the `xstate.done.actor.<id>` /
 * `xstate.error.actor.<id>` edges, a state's `onDone` the
 * `xstate.done.state.<id>` edge, an `after` delay the `xstate.after.*` edge.
 */
import type { StateValue } from 'xstate';
import { jobTypeFor, type WorkflowDefinition } from './workflow.js';

export type WorkflowNodeType = 'atomic' | 'compound' | 'parallel' | 'final' | 'history';

/** One invocation of a state: a job, started when the state is entered. */
export interface WorkflowGraphInvoke {
  id: string;
  /** The actor's name in `setup({ actors })`, or null for an inline one. */
  src: string | null;
  jobType: string;
}

export interface WorkflowGraphNode {
  /** XState's id: the machine's id and the keys down to it, dot-separated (`order.fulfilling.stock`). */
  id: string;
  key: string;
  /** The parent's id; null for the root. */
  parent: string | null;
  type: WorkflowNodeType;
  /** A compound state's initial child's id. */
  initial: string | null;
  /** Its children's ids, as the machine lists them. */
  children: string[];
  invoke: WorkflowGraphInvoke[];
  /** Its `after` delays: in ms, or the name of a delay of `setup({ delays })`. */
  after: { delay: number | string; event: string }[];
  tags: string[];
  description: string | null;
}

/**
 * How the event came: `signal` (sent through the API), `done.actor` /
 * `error.actor` (a child's end), `done.state` (a compound or parallel state
 * reached its final states), `after` (a durable timer), `always` (eventless,
 * taken as soon as its guard holds).
 */
export type WorkflowEdgeKind = 'signal' | 'done.actor' | 'error.actor' | 'done.state' | 'after' | 'always';

export interface WorkflowGraphEdge {
  source: string;
  /** The target state's id; null for a transition without target (its actions run, the state stays). */
  target: string | null;
  /** The event type as XState names it (`APPROVE`, `xstate.done.actor.charge`, `xstate.after.5000.order.waiting`); `''` for `always`. */
  event: string;
  kind: WorkflowEdgeKind;
  /** The guard's name; `inline` for a guard written as a function; null without guard. */
  guard: string | null;
  /** Whether it exits and re-enters its target (`reenter: true`). */
  reenter: boolean;
}

export interface WorkflowGraph {
  name: string;
  version: number;
  /** The root node's id (the machine's id). */
  root: string;
  /** Parents before their children, children in the machine's order. */
  nodes: WorkflowGraphNode[];
  edges: WorkflowGraphEdge[];
  /** Every actor it may run, invoked or spawned (`spawnChild`), with its job type. */
  actors: { name: string | null; jobType: string }[];
}

interface TransitionLike {
  target?: readonly { id: string }[] | undefined;
  guard?: unknown;
  reenter?: boolean;
  eventType: string;
}

interface NodeLike {
  id: string;
  key: string;
  type: WorkflowNodeType;
  parent?: NodeLike | undefined;
  states: Record<string, NodeLike>;
  initial?: { target: readonly { id: string }[] } | undefined;
  invoke: { id: string; src: unknown }[];
  after: { delay: number | string; eventType: string }[];
  transitions: Map<string, TransitionLike[]>;
  always?: TransitionLike[] | undefined;
  tags: string[];
  description?: string | undefined;
  config: { invoke?: { src?: unknown } | { src?: unknown }[] };
}

function guardName(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') return 'inline';
  const type = (guard as { type?: unknown }).type;
  return typeof type === 'string' ? type : 'inline';
}

function kindOf(event: string): WorkflowEdgeKind {
  if (event.startsWith('xstate.done.actor.')) return 'done.actor';
  if (event.startsWith('xstate.error.actor.')) return 'error.actor';
  if (event.startsWith('xstate.done.state.')) return 'done.state';
  if (event.startsWith('xstate.after.')) return 'after';
  return 'signal';
}

function edgesOf(node: NodeLike): WorkflowGraphEdge[] {
  const all: { t: TransitionLike; kind: WorkflowEdgeKind }[] = [
    ...[...node.transitions.values()].flat().map((t) => ({ t, kind: kindOf(t.eventType) })),
    ...(node.always ?? []).map((t) => ({ t, kind: 'always' as const })),
  ];
  return all.flatMap(({ t, kind }): WorkflowGraphEdge[] => {
    const common = { source: node.id, event: kind === 'always' ? '' : t.eventType, kind, guard: guardName(t.guard), reenter: t.reenter === true };
    const targets = t.target ?? [];
    return targets.length ? targets.map((target) => ({ ...common, target: target.id })) : [{ ...common, target: null }];
  });
}

function invokesOf(def: WorkflowDefinition, node: NodeLike): WorkflowGraphInvoke[] {
  const configs = node.config.invoke === undefined ? [] : Array.isArray(node.config.invoke) ? node.config.invoke : [node.config.invoke];
  return node.invoke.map((inv, i) => {
    const named = typeof inv.src === 'string' && def.actors.some((a) => a.name === inv.src) ? inv.src : null;
    const inline = configs[i]?.src;
    let jobType: string;
    try {
      jobType = jobTypeFor(def, named ?? inv.src, typeof inline === 'object' && inline !== null ? inline : undefined).jobType;
    } catch {
      jobType = String(inv.src); // defineWorkflow refused any invocation that is not a job: not reached for a registered one
    }
    return { id: inv.id, src: named, jobType };
  });
}

/** The graph of a registered workflow's machine. */
export function workflowGraph(def: WorkflowDefinition): WorkflowGraph {
  const nodes: WorkflowGraphNode[] = [];
  const edges: WorkflowGraphEdge[] = [];
  const visit = (node: NodeLike): void => {
    const children = Object.values(node.states);
    nodes.push({
      id: node.id,
      key: node.key,
      parent: node.parent?.id ?? null,
      type: node.type,
      initial: node.type === 'compound' ? (node.initial?.target[0]?.id ?? null) : null,
      children: children.map((c) => c.id),
      invoke: invokesOf(def, node),
      after: node.after.map((a) => ({ delay: a.delay, event: a.eventType })),
      tags: [...node.tags],
      description: node.description ?? null,
    });
    edges.push(...edgesOf(node));
    for (const child of children) visit(child);
  };
  const root = def.machine.root as unknown as NodeLike;
  visit(root);
  return {
    name: def.name, version: def.version, root: root.id, nodes, edges,
    actors: def.actors.map((a) => ({ name: a.name, jobType: a.jobType })),
  };
}

/**
 * The ids of the state nodes a state value names, the root first: a
 * compound state and the child its value names, a parallel state and every
 * region. A key the graph lacks is skipped (with what is under it).
 */
export function activeNodeIds(graph: WorkflowGraph, value: StateValue): string[] {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const childByKey = (parent: WorkflowGraphNode, key: string) =>
    parent.children.map((id) => byId.get(id)!).find((c) => c.key === key);
  const out: string[] = [];
  const walk = (node: WorkflowGraphNode, v: unknown): void => {
    out.push(node.id);
    if (typeof v === 'string') {
      const child = childByKey(node, v);
      if (child) walk(child, undefined);
    } else if (v !== null && typeof v === 'object') {
      for (const [key, sub] of Object.entries(v as Record<string, unknown>)) {
        const child = childByKey(node, key);
        if (child) walk(child, sub);
      }
    }
  };
  const root = byId.get(graph.root);
  if (root) walk(root, value);
  return out;
}
