/**
 * `DELETE /v1/jobs/:id`: delete a finished job (done, dead, cancelled) and its
 * events now, instead of waiting for retention. A live job answers 409
 * ATS_ERR_JOB_LIVE and is left alone (cancel it first). So is a workflow's
 * finished child whose instance has not taken its end yet (409
 * ATS_ERR_JOB_AWAITED, thrown by the store, which reads the job's parent
 * under its row lock): retention keeps such a child too, since the sweep that
 * tells the instance the end reads the job, and would deliver a deleted one
 * as cancelled however it ended. Its Idempotency-Key is free afterwards: a
 * submit with it creates a new job. Only the caller's tenant's jobs
 * (another's is a 404 and stays); a delete is recorded in the audit log with
 * the key that did it.
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import type { RouteOptions } from '../deps.js';
import { recordDone } from '../audit-record.js';
import { jobNotFound, tenantJob } from '../tenant-jobs.js';
import { BODY_STATUSES, errorResponses, JobParams } from '../schemas.js';

const schema = {
  operationId: 'deleteJob',
  summary: 'Delete a done, dead or cancelled job and its events',
  description:
    'Deletes a finished job and its events now, instead of waiting for retention; its Idempotency-Key is free afterwards. ' +
    'A live job answers 409 ATS_ERR_JOB_LIVE and is left alone (cancel it first). ' +
    'A workflow\'s finished child whose instance has not taken its end yet answers 409 ATS_ERR_JOB_AWAITED and is left alone ' +
    '(deleted, its end would reach the instance as cancelled); it can be deleted once the instance has taken it or ended.',
  tags: ['jobs'],
  params: JobParams,
  response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses(400, 404, 409, ...BODY_STATUSES, 503) },
};

export const jobDeleteRoute: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  app.delete<{ Params: JobParams }>('/v1/jobs/:id', { schema }, async (request, reply) => {
    const { id } = request.params;
    await tenantJob(deps, id, request.principal);
    const r = await deps.store.deleteJob(id);
    if (r.ok) {
      await recordDone(deps, request.principal, 'job.delete', id);
      return reply.code(204).send();
    }
    if (r.reason === 'not-found') throw jobNotFound(id);
    if (r.reason === 'awaited') {
      throw new AtsError(
        'ATS_ERR_JOB_AWAITED',
        `Job ${id} is ${r.state}, but its workflow instance ${r.workflowId} has not taken its end yet; it can be deleted once the instance has`,
      );
    }
    throw new AtsError('ATS_ERR_JOB_LIVE', `Job ${id} is ${r.state}; only a done, dead or cancelled job can be deleted (cancel it first)`);
  });
};
