/**
 * `GET /v1/workflows/:id/graph`: a workflow instance's machine as a graph
 * (machines/workflow-graph.ts) with the state nodes its state value names,
 * for the console to draw. The graph is of the definition version the
 * instance runs, so an instance started before a new version shows its own
 * machine. Beside it: how many of the tenant's active instances of that
 * version are in each state (live counts), and the states each step of the
 * instance's history left it in (time travel). The caller's tenant's instances only (another tenant's is the 404
 * of an unknown id); an instance whose definition version this process has
 * not registered is a 503, as its signals are.
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import { activeNodeIds, workflowGraph, type WorkflowGraph } from '../../machines/workflow-graph.js';
import type { WorkflowDefinition } from '../../machines/workflow.js';
import type { WorkflowHistoryStep, WorkflowRecord } from '../../engine/ports.js';
import type { StateValue } from 'xstate';
import type { RouteOptions } from '../deps.js';
import { described, errorResponses, ref, WorkflowGraphView, WorkflowParams } from '../schemas.js';

/** Active instances one graph request counts per state; beyond, the counts say they are capped. */
export const COUNTED_INSTANCES = 10_000;
/** Steps of the history a graph gives the states of. */
export const HISTORY_STEPS = 500;

const graphSchema = {
  operationId: 'getWorkflowGraph',
  summary: 'A workflow instance\'s machine as a graph',
  description:
    'The state nodes (with their invocations, the job types they run, and their after delays) and the transitions of the machine the ' +
    'instance runs (its definition version), and `active`: the state nodes its state value names; `counts`: how many of the tenant\'s active ' +
    `instances of that version are in each state node (read from at most ${COUNTED_INSTANCES.toLocaleString('en-US')} of them: \`capped\` says so); ` +
    `\`steps\`: the state nodes each step of the instance's history left it in (its last ${HISTORY_STEPS} steps), for time travel. 503 ` +
    'ATS_ERR_WORKFLOW_DEFINITION_MISSING: this server lacks the definition version the instance runs.',
  tags: ['workflows'],
  params: WorkflowParams,
  response: { 200: described(ref(WorkflowGraphView), 'The machine and the states the instance is in'), ...errorResponses(400, 404, 503) },
};

export const workflowGraphRoute: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const service = deps.workflows!;
  // A definition never changes once registered: its graph is computed once.
  const graphs = new WeakMap<WorkflowDefinition, WorkflowGraph>();
  const graphOf = (def: WorkflowDefinition): WorkflowGraph => {
    let g = graphs.get(def);
    if (!g) graphs.set(def, (g = workflowGraph(def)));
    return g;
  };

  app.get<{ Params: WorkflowParams }>('/v1/workflows/:id/graph', { schema: graphSchema }, async (request): Promise<WorkflowGraphView> => {
    const { id } = request.params;
    const wf = await service.get(id, request.principal.tenant);
    if (!wf) throw new AtsError('ATS_ERR_WORKFLOW_NOT_FOUND', `No workflow instance has id ${id}`);
    const def = service.definitionOf(wf);
    if (!def) {
      throw new AtsError('ATS_ERR_WORKFLOW_DEFINITION_MISSING', undefined, {
        cause: new Error(`workflow ${wf.name} version ${wf.definitionVersion} is not registered in this process`),
      });
    }
    const g = graphOf(def);
    // The steps without their data: a signal's may be a megabyte, and only their states are drawn.
    const [values, history] = await Promise.all([service.activeValues(wf, COUNTED_INSTANCES + 1), service.steps(wf, HISTORY_STEPS)]);
    const counted = values.slice(0, COUNTED_INSTANCES);
    return {
      id: wf.id, name: wf.name, definitionVersion: wf.definitionVersion, status: wf.state.status, value: wf.state.value,
      active: activeNodeIds(g, wf.state.value),
      root: g.root, nodes: g.nodes, edges: g.edges, actors: g.actors,
      counts: { instances: counted.length, capped: values.length > COUNTED_INSTANCES, nodes: countByNode(g, counted) },
      steps: stepsOf(g, wf, history),
    };
  });
};

/** How many of `values` are in each state node (a node counts an instance once), nodes without one left out, in the graph's order. */
function countByNode(g: WorkflowGraph, values: readonly unknown[]): { id: string; active: number }[] {
  const counts = new Map<string, number>();
  for (const v of values) for (const id of activeNodeIds(g, v as StateValue)) counts.set(id, (counts.get(id) ?? 0) + 1);
  return g.nodes.filter((n) => counts.has(n.id)).map((n) => ({ id: n.id, active: counts.get(n.id)! }));
}

/**
 * The states each step left the instance in, on this version's graph. A step
 * before a migration ran another version's machine: its states are not
 * drawn on this one (none active), and it says which version it ran.
 */
export function stepsOf(g: WorkflowGraph, wf: WorkflowRecord, events: readonly WorkflowHistoryStep[]): WorkflowGraphView['steps'] {
  // Walking back from now: the version changes at each MIGRATE, to its `from` before it.
  let version = wf.definitionVersion;
  const versions = events.map(() => 0);
  for (let i = events.length - 1; i >= 0; i--) {
    versions[i] = version;
    if (events[i]!.type === 'MIGRATE') version = (events[i]!.data as { from: number }).from;
  }
  return events.map((e, i) => ({
    seq: e.seq, type: e.type, status: e.status, definitionVersion: versions[i]!,
    active: versions[i] === wf.definitionVersion ? activeNodeIds(g, e.value as StateValue) : [],
  }));
}
