/**
 * `/v1/workflows`: start an instance, read it and its history, signal it,
 * cancel it, list them and verify one's history, over WorkflowService
 * (engine/workflows.ts), which decides and records every step. The caller's
 * tenant's instances only: another tenant's is a 404 with the code of an id
 * that does not exist, and nothing is written. A signal or cancel the
 * machine does not take writes nothing and answers 409 with the event types
 * the instance takes now. A step of an instance whose definition version
 * this process has not registered is a 503 (another api process, or this
 * one restarted with it, can take it), never a 500. A wait (`/wait`, or a
 * start with `?wait=`) long-polls the instance (server/workflow-wait.ts).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { setMaxListeners } from 'node:events';
import type { AnyEventObject } from 'xstate';
import type { Principal } from '../../engine/auth.js';
import { AtsError, ERRORS } from '../../engine/errors.js';
import type { WorkflowFilter, WorkflowRecord } from '../../engine/ports.js';
import { signalTypeRefusal, type StepResult, type WorkflowService } from '../../engine/workflows.js';
import { recordDone } from '../audit-record.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { DEFAULT_LIST_PAGE_BYTES, DEFAULT_MAX_PAYLOAD_DEPTH, type RouteOptions } from '../deps.js';
import { relativeLocation } from '../location.js';
import {
  BODY_STATUSES, DEFAULT_PAGE, DEFAULT_WAIT_MS, DEFAULT_WORKFLOW_EVENTS_PAGE, described, withLocation, errorResponses, ref, SignalBody, SignalHeaders, StartWorkflowBody, StartWorkflowQuery, WorkflowCancelBody,
  WorkflowEventList, WorkflowEventsQuery, WorkflowListQuery, WorkflowPage, WorkflowParams, WorkflowRefusal, WorkflowVerifyView, WorkflowView, WorkflowWaitQuery,
} from '../schemas.js';
import { checkPayload, isReservedKey, RESERVED_KEY_PREFIX } from '../submit-spec.js';
import { toWorkflowEventView, toWorkflowView, toWorkflowViews } from '../workflow-views.js';
import { WWW_AUTHENTICATE } from '../auth.js';
import { holderOf, tenantOfKey } from '../security.js';
import { keyChecker } from '../stream/key-check.js';
import { Slots, slotLimits } from '../slots.js';
import { singleHeader } from '../validation.js';
import { conditionText, parseCondition, WaitRoom, waitFor, type WaitCondition, type WaitOutcome } from '../workflow-wait.js';

const TAGS = ['workflows'];
const refusal = (description: string) => ({ 409: described(ref(WorkflowRefusal), description) });

/**
 * Workflow waits open at once: per API key (per address without one), and in
 * the process (the keys of a tenant other than the default together a
 * quarter of it). A wait reads its instance after pauses growing from 50 ms
 * to 500 ms, so a full process's waits cost about 2,000 reads a second.
 */
export const MAX_WAITS_PER_KEY = 100;
export const MAX_WAITS = 1000;

const startSchema = {
  operationId: 'startWorkflow',
  summary: 'Start a workflow instance',
  description:
    'Starts an instance of a registered workflow (201, with its Location): its machine\'s first step, and the jobs it invokes, in one ' +
    'transaction. With an idempotencyKey, the same key, name and input again answer 200 with the instance the first call started, and the ' +
    'same key with another input 409 ATS_ERR_IDEMPOTENCY_CONFLICT, even when the machine registered now would refuse the start; neither writes anything (the key goes in the body: an Idempotency-Key header is a 400). A name no workflow is registered under is a 422 ' +
    'ATS_ERR_UNKNOWN_WORKFLOW; an input the machine refuses (its context factory threw, or its first step or the instance\'s row would be larger than a workflow may store) a 400 ATS_ERR_INVALID_WORKFLOW_INPUT; a first ' +
    'step that starts a job in a new queue beyond ATS_MAX_QUEUES (or the tenant\'s quarter of it) a 409 ATS_ERR_QUEUE_LIMIT, writing nothing. With `wait` ' +
    '(done or tag:NAME), it answers only once the instance meets that condition, as GET /v1/workflows/{id}/wait; a 408 ATS_ERR_WAIT_TIMEOUT or ' +
    '412 ATS_ERR_WAIT_UNMET then says the condition was not met, and the instance was started all the same: its Location names it.',
  tags: TAGS,
  querystring: StartWorkflowQuery,
  body: ref(StartWorkflowBody),
  response: {
    201: withLocation(described(ref(WorkflowView), 'Started (and, with wait, meeting the condition)'), 'the instance'),
    200: withLocation(described(ref(WorkflowView), 'The instance an earlier start with this idempotencyKey started'), 'the instance'),
    ...errorResponses(400, 408, 409, 412, ...BODY_STATUSES, 422, 503),
  },
};

const waitSchema = {
  operationId: 'waitWorkflow',
  summary: 'Wait for a workflow instance to end or reach a tagged state',
  description:
    'Long-polls the instance: answers 200 with it as soon as it meets `until` — `done` (the default): it has ended, whatever its status; ' +
    '`tag:NAME`: it is in a state tagged NAME (`tags` on a state node; an instance that ended error or cancelled is in no state). At once ' +
    'when it meets it already. 408 ATS_ERR_WAIT_TIMEOUT once timeoutMs passed; 412 ATS_ERR_WAIT_UNMET when the instance ended without ' +
    'meeting it (a tag wait), so that waiting longer cannot help. 503 ATS_ERR_WORKFLOW_DEFINITION_MISSING: a tag wait on a server that lacks ' +
    'the definition version the instance runs (it knows its tags); 503 ATS_ERR_NOT_READY: the server is shutting down; 401 ATS_ERR_UNAUTHORIZED: ' +
    'the key was revoked while it waited (or, made without a key, keys are required now).',
  tags: TAGS,
  params: WorkflowParams,
  querystring: WorkflowWaitQuery,
  response: {
    200: described(ref(WorkflowView), 'The instance, meeting the condition'),
    ...errorResponses(400, 404, 408, 412, 503),
  },
};

const getSchema = {
  operationId: 'getWorkflow',
  summary: 'A workflow instance',
  description: 'The instance: its machine\'s state value, context and output, its live children with their jobs\' states, its timers and `accepts` (the signals it takes now).',
  tags: TAGS,
  params: WorkflowParams,
  response: { 200: described(ref(WorkflowView), 'The instance'), ...errorResponses(400, 404) },
};

const eventsSchema = {
  operationId: 'listWorkflowEvents',
  summary: 'A workflow instance\'s history',
  description: 'What entered the instance, oldest first: its start, each signal, message from another instance, child end, timer, cancel and migration it took, with what replay needs. ' +
    `A page at a time: at most \`limit\` events (${DEFAULT_WORKFLOW_EVENTS_PAGE.toLocaleString('en-US')} by default) after seq \`after\`, and about 8 MiB of their data: a page may end before \`limit\`; ` +
    '`next` is the `after` of the next page, null at the end. ' +
    'With `last`, only the newest events (a page following a long-lived instance), as many of them as fit in those bytes; `last` with `after` or `limit` is a 400.',
  tags: TAGS,
  params: WorkflowParams,
  querystring: WorkflowEventsQuery,
  response: { 200: described(ref(WorkflowEventList), 'The history'), ...errorResponses(400, 404) },
};

const signalSchema = {
  operationId: 'signalWorkflow',
  summary: 'Send an event to a workflow instance',
  description:
    'Sends the body, an XState event (`type` and any other fields), to the instance\'s machine: 200 with the instance after the step. With an ' +
    'Idempotency-Key, the same key and event again answer 200 with the instance as it is, and the event is not applied twice; the same key ' +
    'with another event is a 409 ATS_ERR_IDEMPOTENCY_CONFLICT (a key is the instance\'s: another instance may take it). An ' +
    'event no transition takes now (or sent to an ended instance) answers 409 ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED with `accepts`, and ' +
    'nothing is written; so does a step that would start a job in a new queue beyond ATS_MAX_QUEUES or the tenant\'s quarter of it (409 ATS_ERR_QUEUE_LIMIT). ' +
    'A step the machine takes but that cannot be stored (a context, output, job input or message JSON cannot write as it is, nested deeper than 32 levels, ' +
    'past 1,000 timers or jobs, or past 4 MiB: 413 ATS_ERR_PAYLOAD_TOO_LARGE) is a 400 ATS_ERR_VALIDATION, and nothing is written. ' +
    'Types starting with xstate. are the engine\'s, and * is XState\'s wildcard (any event, in a machine\'s on), not an event\'s type: each a 400 ATS_ERR_VALIDATION, and nothing is written. 503 ATS_ERR_WORKFLOW_DEFINITION_MISSING: this server lacks ' +
    'the definition version the instance runs.',
  tags: TAGS,
  params: WorkflowParams,
  headers: SignalHeaders,
  body: ref(SignalBody),
  response: {
    200: described(ref(WorkflowView), 'The instance after the event'),
    ...errorResponses(400, 404, 409, ...BODY_STATUSES, 503),
    ...refusal('The instance does not take this event now: {code, message, accepts}'),
  },
};

// x-body-optional: openapi.ts marks the request body as not required.
const cancelSchema = {
  operationId: 'cancelWorkflow',
  summary: 'Cancel a workflow instance',
  description:
    'Ends an active instance as cancelled: its live children\'s jobs are cancelled and its timers dropped, in one transaction. An ended ' +
    'instance answers 409 ATS_ERR_WORKFLOW_ENDED and nothing is written. A cancel needs no definition: it ends an instance of a definition ' +
    'version this server lacks too.',
  tags: TAGS,
  params: WorkflowParams,
  body: WorkflowCancelBody,
  'x-body-optional': true,
  response: {
    200: described(ref(WorkflowView), 'The instance, cancelled'),
    ...errorResponses(400, 404, 409, ...BODY_STATUSES, 503),
    ...refusal('The instance has ended: {code, message, accepts}'),
  },
};

const listSchema = {
  operationId: 'listWorkflows',
  summary: 'Workflow instances, newest first',
  description: 'One page of instances, newest first, optionally only of one workflow or status. A page holds at most `limit` instances and about 8 MiB of their inputs and states: it may end before `limit` with a `nextCursor`. A name with a status reads at most 5,000 of the tenant\'s instances of that name: such a page may end short, or empty, with a `nextCursor` from where it stopped. Pass the answer\'s `nextCursor` as `cursor` for the next page; none means no more.',
  tags: TAGS,
  querystring: WorkflowListQuery,
  response: { 200: described(ref(WorkflowPage), 'One page of instances'), ...errorResponses(400) },
};

const verifySchema = {
  operationId: 'verifyWorkflow',
  summary: 'Replay a workflow instance\'s history',
  description: 'Replays the history through the instance\'s definition and compares the result with the stored state: `ok`, or the first `problem`.',
  tags: TAGS,
  params: WorkflowParams,
  response: { 200: described(ref(WorkflowVerifyView), 'The verification'), ...errorResponses(400, 404) },
};

const workflowNotFound = (id: string): AtsError => new AtsError('ATS_ERR_WORKFLOW_NOT_FOUND', `No workflow instance has id ${id}`);

/** The instance `id` if it is `principal`'s tenant's; else the 404 of an id that does not exist. */
async function tenantWorkflow(service: WorkflowService, id: string, principal: Principal): Promise<WorkflowRecord> {
  const wf = await service.get(id, principal.tenant);
  if (!wf) throw workflowNotFound(id);
  return wf;
}

/** A refused step: 409 with `accepts` (sent here: the error handler answers `{code, message}` only). */
function refuse(reply: FastifyReply, code: 'ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED' | 'ATS_ERR_WORKFLOW_ENDED', message: string, accepts: string[]) {
  return reply.code(ERRORS[code].status).send({ code, message, accepts });
}

/** The answer to a step that was not taken, other than the machine refusing it. */
function stepFailure(id: string, r: Exclude<StepResult, { ok: true } | { reason: 'not-accepted' }>): AtsError {
  if (r.reason === 'not-found') return workflowNotFound(id);
  if (r.reason === 'idempotency-conflict') {
    return new AtsError('ATS_ERR_IDEMPOTENCY_CONFLICT', `Idempotency-Key was used for another event sent to workflow instance ${id}`);
  }
  return definitionMissing(r.workflow);
}

const definitionMissing = (wf: WorkflowRecord): AtsError => new AtsError('ATS_ERR_WORKFLOW_DEFINITION_MISSING', undefined, {
  cause: new Error(`workflow ${wf.name} version ${wf.definitionVersion} is not registered in this process`),
});

/**
 * The error of a wait that did not end with its condition met. A client that
 * went away gets a 408 nobody reads (the request log shows it). `started`:
 * the instance was started by this request, and stays started whatever the
 * wait's end.
 */
function waitFailure(outcome: Exclude<WaitOutcome, { kind: 'met' }>, id: string, c: WaitCondition, timeoutMs: number, started: boolean): AtsError {
  // The id and the start first: a message is cut at 300 characters, and a state value can be long.
  const subject = started ? `Workflow instance ${id} was started but` : `Workflow instance ${id}`;
  const where = (wf: WorkflowRecord) => `${wf.state.status} in state ${JSON.stringify(wf.state.value)}`;
  switch (outcome.kind) {
    case 'timeout':
      return new AtsError('ATS_ERR_WAIT_TIMEOUT', `${subject} did not reach ${conditionText(c)} within ${timeoutMs} ms; it is ${where(outcome.workflow)}`);
    case 'unmet':
      return new AtsError('ATS_ERR_WAIT_UNMET', `${subject} ended ${where(outcome.workflow)} without reaching ${conditionText(c)}`);
    case 'gone':
      return workflowNotFound(id);
    case 'definition-missing':
      return definitionMissing(outcome.workflow);
    case 'aborted':
      // A client that only closed its side of the connection reads this (server/connections.ts): it says whether the start was made.
      return outcome.reason instanceof AtsError ? outcome.reason
        : new AtsError('ATS_ERR_WAIT_TIMEOUT', `${started ? `${subject} its wait ended` : `The wait for workflow instance ${id} ended`}: the client closed the connection, or its side of it`);
    case 'refused':
      // Nothing about the instance: the key may not read it any more.
      return new AtsError('ATS_ERR_UNAUTHORIZED', 'The API key stopped working while the request waited (revoked, or keys are required now): the wait ended');
  }
}

export const workflowRoutes: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const service = deps.workflows!;
  const maxDepth = deps.limits.maxPayloadDepth ?? DEFAULT_MAX_PAYLOAD_DEPTH;
  const room = new WaitRoom();
  // The slots bound what waits cost the database (MAX_WAITS).
  const cap = deps.limits.workflowWaits ?? { perKey: MAX_WAITS_PER_KEY, max: MAX_WAITS };
  const waits = new Slots(slotLimits(cap.perKey, cap.max), { code: 'ATS_ERR_TOO_MANY_WAITS', what: 'workflow waits', free: 'let one end first' });
  // Closing ends every wait (503, as any request while closing): a shutdown never waits for a long-poll's timeout.
  const closing = new AbortController();
  // Each open wait listens on it, and takes its listener off as it ends: as many at once as the slots let in (cap.max),
  // not a leak, so Node's warning past 10 (MaxListenersExceededWarning, "possible memory leak") would only mislead;
  // past the slots, it is one again.
  setMaxListeners(cap.max + 1, closing.signal);
  app.addHook('preClose', async () => {
    closing.abort(new AtsError('ATS_ERR_NOT_READY', 'The server is shutting down'));
  });

  // Whether a waiting caller's key still works (read as the auth hook reads keys, at most once per KEY_CACHE_MS a key, at once after a revoke here):
  // a wait lasts up to MAX_WAIT_MS, and a key revoked meanwhile (or keys required since an open one began) ends it with 401.
  const standing = deps.auth ? keyChecker(deps.auth, deps.clock, app.atsKeyCaches) : null;

  /** A wait slot for the request's key (or address) and tenant, or a 429 ATS_ERR_TOO_MANY_WAITS; taken before anything is written. */
  const takeWait = (request: FastifyRequest): (() => void) => waits.take(holderOf(request), tenantOfKey(request));

  /**
   * Waits for `first` to meet `c`, until `timeoutMs`, the client going away
   * or the app closing; answers the instance when met, else throws the wait's error.
   */
  async function waitOn(
    request: FastifyRequest, reply: FastifyReply, first: WorkflowRecord, c: WaitCondition, timeoutMs: number, started: boolean,
  ): Promise<WorkflowView> {
    const stop = new AbortController();
    const onClosing = () => stop.abort(closing.signal.reason);
    // 'close' before the answer is written: the connection was lost. Or the client closed its side ('end'): the
    // server answers such a client (server/connections.ts), but a wait is not held open for one, gone or not.
    const onGone = () => {
      if (!reply.raw.writableFinished) stop.abort(new Error('the client went away'));
    };
    const socket = request.raw.socket;
    if (closing.signal.aborted) onClosing();
    closing.signal.addEventListener('abort', onClosing, { once: true });
    reply.raw.once('close', onGone);
    socket?.once('end', onGone);
    // Gone already, while the instance was read or started: its 'close' came before anyone listened.
    if (socket?.destroyed || socket?.readableEnded) onGone();
    try {
      const { principal } = request;
      const holds = standing ? async () => (await standing(principal)) === 'valid' : undefined;
      const outcome = await waitFor({ service, clock: deps.clock, room, holds }, first, principal.tenant, c, timeoutMs, stop.signal);
      if (outcome.kind === 'met') return toWorkflowView(service, outcome.workflow);
      if (outcome.kind === 'aborted' && outcome.reason instanceof AtsError) reply.header('connection', 'close');
      if (outcome.kind === 'refused') reply.header('www-authenticate', WWW_AUTHENTICATE);
      throw waitFailure(outcome, first.id, c, timeoutMs, started);
    } finally {
      closing.signal.removeEventListener('abort', onClosing);
      reply.raw.off('close', onGone);
      socket?.off('end', onGone);
    }
  }

  app.post<{ Body: StartWorkflowBody; Querystring: StartWorkflowQuery }>('/v1/workflows', { schema: startSchema, config: { idempotencyKeyField: 'body/idempotencyKey' } }, async (request, reply) => {
    const { name, input, idempotencyKey } = request.body;
    const { wait, timeoutMs } = request.query;
    checkPayload(input, maxDepth, 'body', 'input');
    if (idempotencyKey !== undefined && isReservedKey(idempotencyKey)) {
      throw new AtsError('ATS_ERR_VALIDATION', `body/idempotencyKey must not start with '${RESERVED_KEY_PREFIX}' (the server's own keys start so)`);
    }
    if (timeoutMs !== undefined && wait === undefined) throw new AtsError('ATS_ERR_VALIDATION', 'querystring/timeoutMs is the timeout of wait: give wait too');
    const condition = wait === undefined ? undefined : parseCondition(wait);
    // Refused before the start: a 429 starts nothing.
    const giveBack = condition && takeWait(request);
    try {
      const r = await service.start({ tenant: request.principal.tenant, name, input: input ?? null, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) });
      if (!r.ok) {
        if (r.reason === 'unknown-workflow') throw new AtsError('ATS_ERR_UNKNOWN_WORKFLOW', `No workflow is registered under the name '${name}'`);
        if (r.reason === 'invalid-input') throw new AtsError('ATS_ERR_INVALID_WORKFLOW_INPUT', r.message);
        throw new AtsError('ATS_ERR_IDEMPOTENCY_CONFLICT', `idempotencyKey was used for workflow instance ${r.workflow.id} with a different input`);
      }
      reply.header('location', relativeLocation(request.url, ['v1', 'workflows', r.workflow.id]));
      const view = condition === undefined
        ? await toWorkflowView(service, r.workflow)
        : await waitOn(request, reply, r.workflow, condition, timeoutMs ?? DEFAULT_WAIT_MS, true);
      return reply.code(r.created ? 201 : 200).send(view);
    } finally {
      giveBack?.();
    }
  });

  app.get<{ Params: WorkflowParams; Querystring: WorkflowWaitQuery }>('/v1/workflows/:id/wait', { schema: waitSchema }, async (request, reply) => {
    const condition = parseCondition(request.query.until);
    const wf = await tenantWorkflow(service, request.params.id, request.principal);
    const giveBack = takeWait(request);
    try {
      return await waitOn(request, reply, wf, condition, request.query.timeoutMs ?? DEFAULT_WAIT_MS, false);
    } finally {
      giveBack();
    }
  });

  app.get<{ Params: WorkflowParams }>('/v1/workflows/:id', { schema: getSchema }, async (request) =>
    toWorkflowView(service, await tenantWorkflow(service, request.params.id, request.principal)));

  app.get<{ Params: WorkflowParams; Querystring: WorkflowEventsQuery }>('/v1/workflows/:id/events', { schema: eventsSchema }, async (request) => {
    const wf = await tenantWorkflow(service, request.params.id, request.principal);
    const { last, after, limit } = request.query;
    if (last !== undefined && (after !== undefined || limit !== undefined)) {
      throw new AtsError('ATS_ERR_VALIDATION', 'querystring: last takes the newest events; it does not go with after or limit');
    }
    const page = await service.events(
      wf, last !== undefined ? { last } : { after: after ?? 0, limit: limit ?? DEFAULT_WORKFLOW_EVENTS_PAGE }, deps.limits.listPageBytes ?? DEFAULT_LIST_PAGE_BYTES,
    );
    return { events: page.events.map(toWorkflowEventView), next: page.next };
  });

  app.post<{ Params: WorkflowParams; Body: SignalBody; Headers: SignalHeaders }>('/v1/workflows/:id/events', { schema: signalSchema }, async (request, reply) => {
    const event = request.body;
    const refused = signalTypeRefusal(event.type, 'body/type');
    if (refused) throw refused;
    // The body is the event: a fault in it is the body's.
    checkPayload(event, maxDepth, 'body', null);
    const { id } = request.params;
    const r = await service.signal(id, request.principal.tenant, event as AnyEventObject, singleHeader(request, 'idempotency-key'));
    if (r.ok) {
      room.wake(id);
      return toWorkflowView(service, r.workflow);
    }
    if (r.reason === 'not-accepted') {
      const why = r.workflow.state.status === 'active' ? ` in state ${JSON.stringify(r.workflow.state.value)}` : `: the instance is ${r.workflow.state.status}`;
      return refuse(reply, 'ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED', `${event.type} is not taken${why}; it takes now: ${r.accepts.length ? r.accepts.join(', ') : 'none'}`, r.accepts);
    }
    throw stepFailure(id, r);
  });

  app.post<{ Params: WorkflowParams; Body: WorkflowCancelBody }>('/v1/workflows/:id/cancel', { schema: cancelSchema }, async (request, reply) => {
    const { id } = request.params;
    const r = await service.cancel(id, request.principal.tenant, request.body?.reason);
    if (r.ok) {
      room.wake(id);
      await recordDone(deps, request.principal, 'workflow.cancel', id);
      return toWorkflowView(service, r.workflow);
    }
    if (r.reason === 'not-accepted') return refuse(reply, 'ATS_ERR_WORKFLOW_ENDED', `The workflow instance is ${r.workflow.state.status}`, r.accepts);
    throw stepFailure(id, r);
  });

  app.get<{ Querystring: WorkflowListQuery }>('/v1/workflows', { schema: listSchema }, async (request) => {
    const { name, status, cursor } = request.query;
    const limit = request.query.limit ?? DEFAULT_PAGE;
    const filter: WorkflowFilter = { tenant: request.principal.tenant, limit };
    if (name) filter.name = name;
    if (status) filter.status = status;
    if (cursor) filter.afterId = decodeCursor(cursor);
    const page = await service.list(filter, deps.limits.listPageBytes ?? DEFAULT_LIST_PAGE_BYTES);
    return {
      workflows: await toWorkflowViews(service, page.workflows),
      nextCursor: page.nextAfterId === null ? null : encodeCursor(page.nextAfterId),
    };
  });

  app.get<{ Params: WorkflowParams }>('/v1/workflows/:id/verify', { schema: verifySchema }, async (request) =>
    service.verify(await tenantWorkflow(service, request.params.id, request.principal)));
};
