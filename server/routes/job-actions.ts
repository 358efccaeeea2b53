/**
 * `POST /v1/jobs/:id/cancel` and `POST /v1/jobs/:id/redrive`: user events sent
 * through the machine. A rejected event writes nothing and answers 409 naming
 * the state and what the machine would accept. A redrive of a workflow's
 * finished child whose instance has not taken its end yet is refused too (409
 * ATS_ERR_JOB_AWAITED, decided in the store's transaction: see
 * adapters/sql/awaited.ts), as a delete of it is. Only the caller's tenant's
 * jobs: another's is a 404 before anything is written. A done action is
 * recorded in the audit log with the key that did it.
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import type { EventInput } from '../../engine/transitions.js';
import { allowedActions } from '../../machines/lifecycle.js';
import type { Principal } from '../../engine/auth.js';
import type { AppDeps, RouteOptions } from '../deps.js';
import { recordDone } from '../audit-record.js';
import { jobNotFound, tenantJob } from '../tenant-jobs.js';
import { toJobView } from '../job-views.js';
import { BODY_STATUSES, CancelBody, described, errorResponses, JobParams, JobView, RedriveBody, ref, type JobView as JobViewT } from '../schemas.js';

/** What either action answers when it cannot run the event: the store unreachable, or a job written by a machine this server lacks. */
const UNAVAILABLE =
  ' A 503 is ATS_ERR_STORE_UNAVAILABLE (the database is not reachable) or ATS_ERR_JOB_MACHINE_UNKNOWN (a newer deployment ' +
  'wrote the job with a machine version this server does not run); retry either.';

const actionSchema = (operationId: string, summary: string, description: string) => ({
  operationId,
  summary,
  description: description + UNAVAILABLE,
  tags: ['jobs'],
  params: JobParams,
  response: { 200: described(ref(JobView), 'The job after the event'), ...errorResponses(400, 404, 409, ...BODY_STATUSES, 503) },
});

// x-body-optional: openapi.ts marks the request body as not required.
const cancelSchema = {
  ...actionSchema(
    'cancelJob',
    'Cancel a job',
    'Sends CANCEL through the job machine: a pending, published, running or retrying job becomes cancelled. A done, dead ' +
      'or cancelled job answers 409 ATS_ERR_TRANSITION_NOT_ALLOWED naming what it accepts now, and nothing is written.',
  ),
  body: CancelBody,
  'x-body-optional': true,
};

const redriveSchema = {
  ...actionSchema(
    'redriveJob',
    'Start a new run of a dead or cancelled job',
    'Sends REDRIVE through the job machine: a dead or cancelled job goes back to pending with a fresh set of attempts, due ' +
      'at once. In any other state it answers 409 ATS_ERR_TRANSITION_NOT_ALLOWED and nothing is written. A workflow\'s finished ' +
      'child whose instance has not taken its end yet answers 409 ATS_ERR_JOB_AWAITED and nothing is written (redriven, the ' +
      'instance would still take that end, and drop the new run\'s); it can be redriven once the instance has taken it or ended. It takes no fields: ' +
      'a body other than {} is a 400.',
  ),
  body: RedriveBody,
  'x-body-optional': true,
};

async function applyUserEvent(deps: AppDeps, principal: Principal, id: string, event: EventInput, action: 'job.cancel' | 'job.redrive'): Promise<JobViewT> {
  // The tenant first: another tenant's job is not found, and nothing is written.
  await tenantJob(deps, id, principal);
  const r = await deps.transitions.apply(id, event);
  if (r.ok) {
    await recordDone(deps, principal, action, id);
    return toJobView(r.job, deps.clock.now());
  }
  if (r.reason === 'not-found') throw jobNotFound(id);
  if (r.reason === 'awaited') {
    throw new AtsError(
      'ATS_ERR_JOB_AWAITED',
      `Job ${id} is ${r.job.snapshot.value}, but its workflow instance ${r.workflowId} has not taken its end yet; ` +
        'it can be redriven once the instance has (redriven now, the instance would still take this end, and not the new run\'s)',
    );
  }
  const state = r.job.snapshot.value;
  const allowed = allowedActions(r.job.snapshot, deps.clock.now());
  throw new AtsError(
    'ATS_ERR_TRANSITION_NOT_ALLOWED',
    `${event.type} is not allowed in state ${state}; allowed now: ${allowed.length ? allowed.join(', ') : 'none'}`,
  );
}

export const jobActionRoutes: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  app.post<{ Params: JobParams; Body: CancelBody }>(
    '/v1/jobs/:id/cancel',
    { schema: cancelSchema },
    async (request) => {
      const reason = request.body?.reason;
      const event: EventInput = reason === undefined ? { type: 'CANCEL' } : { type: 'CANCEL', reason };
      return applyUserEvent(deps, request.principal, request.params.id, event, 'job.cancel');
    },
  );

  app.post<{ Params: JobParams }>(
    '/v1/jobs/:id/redrive',
    { schema: redriveSchema },
    async (request) => applyUserEvent(deps, request.principal, request.params.id, { type: 'REDRIVE' }, 'job.redrive'),
  );
};
