/**
 * `GET /v1/workflows/:id/graph`: a workflow instance's machine as a graph
 * (machines/workflow-graph.ts) with the state nodes its state value names,
 * for the console to draw. The graph is of the definition version the
 * instance runs, so an instance started before a new version shows its own
 * machine. The caller's tenant's instances only (another tenant's is the 404
 * of an unknown id); an instance whose definition version this process has
 * not registered is a 503, as its signals are.
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import { activeNodeIds, workflowGraph, type WorkflowGraph } from '../../machines/workflow-graph.js';
import type { WorkflowDefinition } from '../../machines/workflow.js';
import type { RouteOptions } from '../deps.js';
import { described, errorResponses, ref, WorkflowGraphView, WorkflowParams } from '../schemas.js';

const graphSchema = {
  operationId: 'getWorkflowGraph',
  summary: 'A workflow instance\'s machine as a graph',
  description:
    'The state nodes (with their invocations, the job types they run, and their after delays) and the transitions of the machine the ' +
    'instance runs (its definition version), and `active`: the state nodes its state value names. 503 ' +
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
    return {
      id: wf.id, name: wf.name, definitionVersion: wf.definitionVersion, status: wf.state.status, value: wf.state.value,
      active: activeNodeIds(g, wf.state.value),
      root: g.root, nodes: g.nodes, edges: g.edges, actors: g.actors,
    };
  });
};
