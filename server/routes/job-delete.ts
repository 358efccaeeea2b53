/**
 * `DELETE /v1/jobs/:id`: delete a finished job (done, dead, cancelled) and its
 * events now, instead of waiting for retention. A live job answers 409
 * ATS_ERR_JOB_LIVE and is left alone (cancel it first). Its Idempotency-Key
 * is free afterwards: a submit with it creates a new job. Only the caller's
 * tenant's jobs (another's is a 404 and stays); a delete is recorded in the
 * audit log with the key that did it.
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import type { RouteOptions } from '../deps.js';
import { auditJob, jobNotFound, tenantJob } from '../tenant-jobs.js';
import { errorResponses, JobParams } from '../schemas.js';

const schema = {
  operationId: 'deleteJob',
  summary: 'Delete a done, dead or cancelled job and its events',
  description:
    'Deletes a finished job and its events now, instead of waiting for retention; its Idempotency-Key is free afterwards. ' +
    'A live job answers 409 ATS_ERR_JOB_LIVE and is left alone (cancel it first).',
  tags: ['jobs'],
  params: JobParams,
  response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses(400, 404, 409, 413, 415, 503) },
};

export const jobDeleteRoute: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  app.delete<{ Params: JobParams }>('/v1/jobs/:id', { schema }, async (request, reply) => {
    const { id } = request.params;
    await tenantJob(deps, id, request.principal);
    const r = await deps.store.deleteJob(id);
    if (r.ok) {
      await auditJob(deps, request.principal, 'job.delete', id);
      return reply.code(204).send();
    }
    if (r.reason === 'not-found') throw jobNotFound(id);
    throw new AtsError('ATS_ERR_JOB_LIVE', `Job ${id} is ${r.state}; only a done, dead or cancelled job can be deleted (cancel it first)`);
  });
};
