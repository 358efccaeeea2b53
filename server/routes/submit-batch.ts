/**
 * `POST /v1/jobs/batch`: submit up to 1,000 jobs in one request and one store
 * transaction. Each item is the body of `POST /v1/jobs` (its Idempotency-Key
 * as an `idempotencyKey` field) and gets the answer that route would have
 * given it, in order: a bad item is its own 4xx and the others still go in.
 * Only a bad envelope (not `{jobs: [1..1000 items]}`, or too large) fails the
 * whole request, before anything is written.
 */
import type { FastifyPluginAsync, FastifySchemaCompiler } from 'fastify';
import { AtsError, isAtsError } from '../../engine/errors.js';
import type { JobSpec } from '../../engine/ports.js';
import type { SubmitResult } from '../../engine/transitions.js';
import { DEFAULT_BATCH_BODY_LIMIT_BYTES, DEFAULT_BODY_LIMIT_BYTES, DEFAULT_MAX_PAYLOAD_DEPTH, type RouteOptions } from '../deps.js';
import {
  BatchBody, BatchEnvelope, BatchItem, BatchResponse, BODY_STATUSES, described, errorResponses, ref, SHARED_SCHEMAS, type BatchResult,
} from '../schemas.js';
import { toErrorReply } from '../error-handler.js';
import { jsonByteLength } from '../json-body.js';
import { toJobSpec, type SpecRules } from '../submit-spec.js';
import { compileBodySchema, formatValidationError } from '../validation.js';
import { ATTR, traceContextOf, withRequestSpan, type Span } from '../../engine/tracing.js';

const schema = {
  operationId: 'submitJobs',
  summary: 'Submit up to 1,000 jobs at once',
  description:
    'All valid items are written in one transaction. `results[i]` answers `jobs[i]`: `{status: 201, id, state}` created, ' +
    '`{status: 200, id, state}` the job an earlier submit with this idempotencyKey created (the key is each item\'s: an Idempotency-Key header is a 400), or the item\'s own ' +
    '`{status, code, message}` (400, 409, 413, 422), which does not fail the other items; an item whose ' +
    'idempotencyKey was taken and whose holder could not be read once the others were written is its own 503 ' +
    '(send it again with its key). The whole request fails only when the envelope is wrong (400; so is a body holding, in any item too, a __proto__ key or ' +
    'an integer a JSON number would not keep, as every body is), or the body is ' +
    'over the batch limit (413), writing nothing, or when the database is unreachable (503): nothing was written, ' +
    'unless the connection was lost as the transaction committed, which a client cannot tell; items sent again ' +
    'with their idempotencyKey are then answered with the jobs written.',
  tags: ['jobs'],
  body: BatchBody,
  response: { 200: described(ref(BatchResponse), 'One result per item, in order'), ...errorResponses(400, ...BODY_STATUSES, 503) },
};

export const submitBatchRoute: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const rules: SpecRules = {
    defaults: deps.defaults,
    maxPayloadDepth: deps.limits.maxPayloadDepth ?? DEFAULT_MAX_PAYLOAD_DEPTH,
    knownTypes: deps.knownTypes,
    checkPayload: deps.checkPayload,
  };
  const itemLimit = deps.limits.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const envelope = compileBodySchema(BatchEnvelope);
  const validItem = compileBodySchema(BatchItem, SHARED_SCHEMAS);
  // The documented schema types every item; fastify checks only the envelope (see BatchEnvelope).
  const validatorCompiler: FastifySchemaCompiler<unknown> = ({ httpPart }) => {
    if (httpPart !== 'body') throw new Error(`POST /v1/jobs/batch declares no ${httpPart ?? 'other'} schema`);
    return envelope;
  };

  /**
   * The item as a JobSpec, or throws the AtsError `POST /v1/jobs` would have answered for its job with
   * its key as the header, checked in that route's order: the size, the schema, then toJobSpec's checks.
   */
  const specOf = (raw: unknown, i: number): JobSpec => {
    const where = `body/jobs/${i}`;
    // POST /v1/jobs refuses a body over bodyLimitBytes before reading it; so does the batch, item by item.
    // What is measured is the job that route would take, as compact JSON: without the key, which it takes
    // as a header. Counted without JSON.stringify, which a payload nested thousands deep would overflow.
    if (jsonByteLength(jobOf(raw), itemLimit) > itemLimit) {
      throw new AtsError('ATS_ERR_PAYLOAD_TOO_LARGE', `${where} is larger than the ${itemLimit}-byte limit of one job (ATS_BODY_LIMIT_BYTES; its idempotencyKey not counted)`);
    }
    if (!validItem(raw)) throw new AtsError('ATS_ERR_VALIDATION', formatValidationError(validItem.errors ?? [], where).message);
    const { idempotencyKey, ...body } = raw as BatchItem;
    return toJobSpec(body, idempotencyKey, rules, where);
  };

  const submitAll = async (tenant: string, items: unknown[], span?: Span): Promise<{ results: BatchResult[] }> => {
    const results: BatchResult[] = new Array<BatchResult>(items.length);
    const specs: JobSpec[] = [];
    const slots: number[] = [];
    items.forEach((raw, i) => {
      try {
        const spec = specOf(raw, i);
        spec.tenant = tenant;
        specs.push(spec);
        slots.push(i);
      } catch (err) {
        if (!isAtsError(err)) throw err;
        results[i] = { status: err.status, code: err.code, message: err.message };
      }
    });
    if (specs.length > 0) {
      const trace = span ? traceContextOf() : undefined;
      if (trace) for (const spec of specs) spec.traceContext = trace;
      // Settled item by item: once the transaction committed, an item that fails after it (its key's
      // holder could not be read) is its own 503, and the written items are answered as written.
      const submitted = await deps.transitions.submitManySettled(specs);
      submitted.forEach((r, k) => (results[slots[k]!] = r.status === 'fulfilled' ? toResult(r.value, slots[k]!) : failedItem(r.reason)));
    }
    span?.setAttributes({ [ATTR.jobCount]: specs.length, [ATTR.httpStatus]: 200 });
    return { results };
  };

  app.post<{ Body: { jobs: unknown[] } }>('/v1/jobs/batch', {
    schema,
    validatorCompiler,
    bodyLimit: deps.limits.batchBodyLimitBytes ?? DEFAULT_BATCH_BODY_LIMIT_BYTES,
    // What a 413 names as the setting that raises the limit (server/error-handler.ts).
    // And the field its 400 to an Idempotency-Key header names (server/validation.ts).
    config: { bodyLimitSetting: 'ATS_BATCH_BODY_LIMIT_BYTES', idempotencyKeyField: 'body/jobs/N/idempotencyKey, one for each job' },
  }, async (request) => {
    // Traced: one span for the request (a child of the caller's `traceparent`); every job it creates keeps its context.
    // Every job (and idempotencyKey) is the caller's tenant's.
    const { tenant } = request.principal;
    if (deps.tracer) return withRequestSpan(deps.tracer, { method: 'POST', route: '/v1/jobs/batch', headers: request.headers }, (span) => submitAll(tenant, request.body.jobs, span));
    return submitAll(tenant, request.body.jobs);
  });
};

/** An item as the body `POST /v1/jobs` would take for it: without its `idempotencyKey` (that route's header). */
function jobOf(raw: unknown): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || !Object.hasOwn(raw, 'idempotencyKey')) return raw;
  const { idempotencyKey: _key, ...job } = raw as Record<string, unknown>;
  return job;
}

/**
 * An item that failed after the batch's transaction committed: its own error,
 * as the error handler would answer it alone (an unexpected one as
 * ATS_ERR_INTERNAL; a 5xx with its registry message, never what went wrong inside).
 */
export function failedItem(reason: unknown): BatchResult {
  const { status, body } = toErrorReply(reason);
  return { status, code: body.code, message: body.message };
}

function toResult(r: SubmitResult, i: number): BatchResult {
  if (!r.ok) {
    const e = new AtsError('ATS_ERR_IDEMPOTENCY_CONFLICT', `body/jobs/${i}: idempotencyKey was used for job ${r.job.id} with a different request body`);
    return { status: e.status, code: e.code, message: e.message };
  }
  return { status: r.created ? 201 : 200, id: r.job.id, state: r.job.snapshot.value };
}
