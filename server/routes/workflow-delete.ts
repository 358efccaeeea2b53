/**
 * `DELETE /v1/workflows/:id`: delete an ended workflow instance (done, error,
 * cancelled) now, instead of waiting for retention: exactly what retention
 * deletes of it (its row with its input and context, its whole history with
 * the signals it took and their keys, its timer rows), in one transaction
 * (adapters/sql/workflows.ts `deleteWorkflowProgram`). An active instance
 * answers 409 ATS_ERR_WORKFLOW_ACTIVE and is left alone (cancel it first):
 * the store reads the status under the instance's row lock, which a step
 * (a signal, a child's end, a timer) takes first too, so a delete racing a
 * step either sees what the step left or the step finds no instance. Its
 * child jobs stay, as retention leaves them: they go by their own retention
 * or `DELETE /v1/jobs/:id`, which an ended or deleted instance no longer
 * blocks (ATS_ERR_JOB_AWAITED is for a child an active instance waits on).
 * Its idempotency key is free afterwards. Only the caller's tenant's
 * instances (another's is a 404 and stays); a delete is recorded in the
 * audit log (`workflow.delete`) with the key that did it.
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import { recordDone } from '../audit-record.js';
import type { RouteOptions } from '../deps.js';
import { BODY_STATUSES, errorResponses, WorkflowParams } from '../schemas.js';

const schema = {
  operationId: 'deleteWorkflow',
  summary: 'Delete a done, error or cancelled workflow instance and its history',
  description:
    'Deletes an ended instance now, instead of waiting for retention: its row (input, context, output or error), its whole history ' +
    '(with the signals it took) and its timers, in one transaction; its idempotency key is free afterwards. ' +
    'An active instance answers 409 ATS_ERR_WORKFLOW_ACTIVE and is left alone (cancel it first). ' +
    'Its child jobs stay: each goes by its own retention, or by DELETE /v1/jobs/{id}.',
  tags: ['workflows'],
  params: WorkflowParams,
  response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses(400, 404, 409, ...BODY_STATUSES, 503) },
};

export const workflowDeleteRoute: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const service = deps.workflows;
  if (!service) throw new Error('workflowDeleteRoute: the app was given no workflow service (deps.workflows)');
  app.delete<{ Params: WorkflowParams }>('/v1/workflows/:id', { schema }, async (request, reply) => {
    const { id } = request.params;
    const r = await service.delete(id, request.principal.tenant);
    if (r.ok) {
      await recordDone(deps, request.principal, 'workflow.delete', id);
      return reply.code(204).send();
    }
    if (r.reason === 'not-found') throw new AtsError('ATS_ERR_WORKFLOW_NOT_FOUND', `No workflow instance has id ${id}`);
    throw new AtsError('ATS_ERR_WORKFLOW_ACTIVE', `Workflow instance ${id} is active; only a done, error or cancelled instance can be deleted (cancel it first)`);
  });
};
