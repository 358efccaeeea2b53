/**
 * `GET /v1/jobs/:id/verify`: the job's history checked against its row, on
 * demand (engine/verify.ts, what the crash and property tests check): no gap in
 * its `seq`, each event from the state the one before left, and a replay
 * through the job machine equal to the stored job. The caller's tenant's jobs
 * only (another's is a 404, as one that does not exist). It reads the job
 * (once: the tenant's check's read is the one replayed to) and its events, a
 * few per attempt: no heavier than `GET /v1/jobs/:id`.
 */
import type { FastifyPluginAsync } from 'fastify';
import { JOB_NOT_FOUND, verifyJob } from '../../engine/verify.js';
import type { RouteOptions } from '../deps.js';
import { described, errorResponses, JobParams, JobVerifyView, ref } from '../schemas.js';
import { jobNotFound, tenantJob } from '../tenant-jobs.js';

const schema = {
  operationId: 'verifyJob',
  summary: 'Replay a job\'s history',
  description: 'Checks the job\'s history up to its version: no gap in its `seq`, each event from the state the one before left, '
    + 'and a replay through the job machine equal to the stored job. `ok`, or each `problem` found. A job whose snapshot another '
    + 'version of the job machine wrote is reported, not replayed.',
  tags: ['jobs'],
  params: JobParams,
  response: { 200: described(ref(JobVerifyView), 'The verification'), ...errorResponses(400, 404, 503) },
};

export const jobVerifyRoute: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  app.get<{ Params: JobParams }>('/v1/jobs/:id/verify', { schema }, async (request): Promise<JobVerifyView> => {
    const { id } = request.params;
    const report = await verifyJob(deps.store, id, await tenantJob(deps, id, request.principal));
    // Deleted after the tenant's check (DELETE, or retention): a 404, as a job that does not exist, not a failed check.
    if (report.events === 0 && report.problems[0] === JOB_NOT_FOUND) throw jobNotFound(id);
    return { ok: report.ok, events: report.events, problems: report.problems };
  });
};
