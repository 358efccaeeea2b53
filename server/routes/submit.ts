/**
 * `POST /v1/jobs`: submit one job. With an `Idempotency-Key`, a repeat of the
 * same body answers 200 with the job the first call created; the same key with
 * another body is a 409 and writes nothing (TransitionService decides both;
 * a field left out matches the job's, whatever this instance's default).
 * A key is per queue: in another queue the same key makes another job.
 * The job belongs to the caller's tenant; so does the key (another tenant may
 * use the same key for its own job).
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import { DEFAULT_MAX_PAYLOAD_DEPTH, type RouteOptions } from '../deps.js';
import { toJobView } from '../job-views.js';
import { relativeLocation } from '../location.js';
import { BODY_STATUSES, described, withLocation, errorResponses, JobView, ref, SubmitBody, SubmitHeaders } from '../schemas.js';
import { toJobSpec } from '../submit-spec.js';
import { singleHeader } from '../validation.js';
import { ATTR, traceContextOf, withRequestSpan, type Span } from '../../engine/tracing.js';

const schema = {
  operationId: 'submitJob',
  summary: 'Submit a job',
  description:
    'Creates a job in pending (201, with its Location). With an Idempotency-Key (per queue), the same key and body again answer 200 with the job ' +
    'the first call created, and the same key with another body in that queue 409 ATS_ERR_IDEMPOTENCY_CONFLICT; neither writes anything. ' +
    'A field the body leaves out (maxAttempts, backoff, timeoutMs, priority) matches the job\'s value, so a repeat that reaches an instance with other ATS_DEFAULT_* settings still answers 200. ' +
    'A queue not named before, once ATS_MAX_QUEUES queues are (or a quarter of them by the tenant, for a tenant other than the default), is a 409 ATS_ERR_QUEUE_LIMIT, writing nothing. ' +
    'A type no handler serves is a 422 ATS_ERR_UNKNOWN_JOB_TYPE.',
  tags: ['jobs'],
  body: ref(SubmitBody),
  headers: SubmitHeaders,
  response: {
    201: withLocation(described(ref(JobView), 'Created'), 'the job'),
    200: withLocation(described(ref(JobView), 'The job an earlier submit with this Idempotency-Key created'), 'the job'),
    ...errorResponses(400, 409, ...BODY_STATUSES, 422, 503) },
};

export const submitRoute: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const rules = {
    defaults: deps.defaults,
    maxPayloadDepth: deps.limits.maxPayloadDepth ?? DEFAULT_MAX_PAYLOAD_DEPTH,
    knownTypes: deps.knownTypes,
    checkPayload: deps.checkPayload,
  };
  const { tracer } = deps;
  app.post<{ Body: SubmitBody; Headers: { 'idempotency-key'?: string } }>('/v1/jobs', { schema }, async (request, reply) => {
    const submit = async (span?: Span) => {
      const spec = toJobSpec(request.body, singleHeader(request, 'idempotency-key'), rules);
      // The job, and its Idempotency-Key, are the caller's tenant's.
      spec.tenant = request.principal.tenant;
      if (span) spec.traceContext = traceContextOf();
      const r = await deps.transitions.submit(spec);
      if (!r.ok) {
        throw new AtsError('ATS_ERR_IDEMPOTENCY_CONFLICT', `Idempotency-Key was used for job ${r.job.id} with a different request body`);
      }
      const status = r.created ? 201 : 200;
      span?.setAttributes({ [ATTR.jobId]: r.job.id, [ATTR.jobType]: r.job.type, [ATTR.jobQueue]: r.job.queue, [ATTR.httpStatus]: status });
      reply.header('location', relativeLocation(request.url, ['v1', 'jobs', r.job.id]));
      return reply.code(status).send(toJobView(r.job, deps.clock.now()));
    };
    // Traced: the request's span (a child of the caller's `traceparent`), whose context the job keeps.
    return tracer ? withRequestSpan(tracer, { method: 'POST', route: '/v1/jobs', headers: request.headers }, submit) : submit();
  });
};
