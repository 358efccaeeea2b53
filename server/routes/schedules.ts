/**
 * `/v1/schedules`: create, read, change and delete cron schedules
 * (engine/schedules.ts). A schedule's job template is built from the body by
 * the same `toJobSpec` as `POST /v1/jobs` (same checks, same defaults, same
 * payload schema), so a tick's job is one a submit would have accepted.
 * Served only when the app is given a ScheduleService (`deps.schedules`).
 * Each route acts within the caller's tenant (`request.principal`, set by
 * server/auth.ts): another tenant's schedule is not there (404, never 403,
 * so a name in use elsewhere is not revealed), and a tick's job is submitted
 * into the schedule's tenant.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { JobSpec, JobTemplate } from '../../engine/ports.js';
import { AtsError } from '../../engine/errors.js';
import { MAX_TEMPLATE_PAYLOAD_BYTES, type SchedulePatch, type ScheduleService } from '../../engine/schedules.js';
import { DEFAULT_MAX_PAYLOAD_DEPTH, type RouteOptions } from '../deps.js';
import { iso } from '../job-views.js';
import { relativeLocation } from '../location.js';
import { toScheduleTickView, toScheduleView } from '../schedule-views.js';
import {
  BODY_STATUSES, CreateScheduleBody, described, withLocation, errorResponses, ref, ScheduleDetail, ScheduleList, ScheduleParams, ScheduleView,
  UpdateScheduleBody, type BackoffInput, type SubmitBody,
} from '../schemas.js';
import { toJobSpec, type SpecRules } from '../submit-spec.js';

/** Run times `GET /v1/schedules/{name}` shows. */
export const NEXT_RUNS_SHOWN = 5;

const createSchema = {
  operationId: 'createSchedule',
  summary: 'Create a cron schedule',
  description:
    'Creates a schedule (201, with its Location) that submits its job at each tick of the cron expression, read in its time zone. ' +
    'The job fields are those of POST /v1/jobs, checked the same way and given the same defaults, but for payload, which a schedule may leave out (null), and which is at most ' +
    `${MAX_TEMPLATE_PAYLOAD_BYTES} bytes of JSON (a 400 ATS_ERR_VALIDATION beyond). Each tick submits exactly one job, ` +
    'whose idempotency key `ats:schedule:<name>:<createdAtMs>:<tickMs>` makes a tick fired twice (two timers instances, a restart) ' +
    'find the job the first one created. The schedule belongs to the caller\'s tenant, and its ticks submit their jobs there; ' +
    'a name the tenant uses already is a 409 ATS_ERR_SCHEDULE_EXISTS (another tenant\'s schedule of the same name is no conflict), a tenant that has 1000 ' +
    'schedules (as many as the list shows) a 409 ATS_ERR_TOO_MANY_SCHEDULES, writing nothing (delete one first), a queue not ' +
    'named before, once ATS_MAX_QUEUES queues are (or the tenant\'s quarter of them), a 409 ATS_ERR_QUEUE_LIMIT; a bad expression 400 ATS_ERR_INVALID_CRON; ' +
    'an unknown time zone 400 ATS_ERR_INVALID_TIMEZONE; a type no handler serves 422 ATS_ERR_UNKNOWN_JOB_TYPE.',
  tags: ['schedules'],
  body: ref(CreateScheduleBody),
  response: { 201: withLocation(described(ref(ScheduleView), 'Created'), 'the schedule'), ...errorResponses(400, 409, ...BODY_STATUSES, 422) },
};

const listSchema = {
  operationId: 'listSchedules',
  summary: 'Every schedule, by name',
  description: 'The schedules of the caller\'s tenant (every one: a tenant has at most 1000), ordered by name, each with its next run time and the counts of its ticks.',
  tags: ['schedules'],
  response: { 200: described(ref(ScheduleList), 'The schedules'), ...errorResponses() },
};

const getSchema = {
  operationId: 'getSchedule',
  summary: 'A schedule with its next run times and recent ticks',
  description:
    `The schedule, its next ${NEXT_RUNS_SHOWN} run times (none while paused) and its recent ticks, newest first: ` +
    'what each tick did (submitted its job, or skipped it because the previous job was still live). ' +
    '404 ATS_ERR_SCHEDULE_NOT_FOUND when the caller\'s tenant has no schedule of the name.',
  tags: ['schedules'],
  params: ScheduleParams,
  response: { 200: described(ref(ScheduleDetail), 'The schedule'), ...errorResponses(400, 404) },
};

const updateSchema = {
  operationId: 'updateSchedule',
  summary: 'Change, pause or resume a schedule',
  description:
    'Changes the fields given (at least one). Job fields replace the template\'s, and the merged template is checked as a submit ' +
    `would be, its payload at most ${MAX_TEMPLATE_PAYLOAD_BYTES} bytes of JSON ` +
    '(422 for a type no handler serves; 409 ATS_ERR_QUEUE_LIMIT for a queue not named before, once ATS_MAX_QUEUES queues are, or the tenant\'s quarter of them). A new expression or time zone, or a resume (paused: false), computes the next run ' +
    'from now: the ticks of a pause are not caught up. Jobs already submitted are not changed.',
  tags: ['schedules'],
  params: ScheduleParams,
  body: ref(UpdateScheduleBody),
  response: { 200: described(ref(ScheduleView), 'The changed schedule'), ...errorResponses(400, 404, 409, ...BODY_STATUSES, 422) },
};

const deleteSchema = {
  operationId: 'deleteSchedule',
  summary: 'Delete a schedule',
  description: 'Deletes the schedule and its ticks; no tick fires after. The jobs it submitted stay.',
  tags: ['schedules'],
  params: ScheduleParams,
  response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses(400, 404, ...BODY_STATUSES) },
};

/** The job fields of a schedule body (or a merged template) as the body of a submit. */
type TemplateFields = Pick<SubmitBody, 'type' | 'queue' | 'maxAttempts' | 'backoff' | 'timeoutMs' | 'priority'> & { payload?: unknown };

const JOB_FIELDS = ['type', 'payload', 'queue', 'maxAttempts', 'backoff', 'timeoutMs', 'priority'] as const;

function templateOf(spec: JobSpec): JobTemplate {
  return {
    type: spec.type, payload: spec.payload, queue: spec.queue, maxAttempts: spec.maxAttempts, backoff: spec.backoff,
    timeoutMs: spec.timeoutMs, priority: spec.priority,
  };
}

export const scheduleRoutes: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const schedules: ScheduleService | undefined = deps.schedules;
  if (!schedules) throw new Error('scheduleRoutes: the app was given no ScheduleService (deps.schedules)');
  const rules: SpecRules = {
    defaults: deps.defaults,
    maxPayloadDepth: deps.limits.maxPayloadDepth ?? DEFAULT_MAX_PAYLOAD_DEPTH,
    knownTypes: deps.knownTypes,
    checkPayload: deps.checkPayload,
  };
  /** The job template, checked and defaulted as `POST /v1/jobs` would; throws its 400/422. */
  const toTemplate = (f: TemplateFields): JobTemplate => {
    const body: SubmitBody = {
      type: f.type, payload: f.payload ?? null, queue: f.queue, maxAttempts: f.maxAttempts, backoff: f.backoff,
      timeoutMs: f.timeoutMs, priority: f.priority,
    };
    const template = templateOf(toJobSpec(body, undefined, rules));
    const bytes = Buffer.byteLength(JSON.stringify(template.payload) ?? 'null');
    if (bytes > MAX_TEMPLATE_PAYLOAD_BYTES) {
      throw new AtsError(
        'ATS_ERR_VALIDATION',
        `body/payload is ${bytes} bytes of JSON; a schedule's is at most ${MAX_TEMPLATE_PAYLOAD_BYTES} (a tenant's schedules are listed in one answer): keep a large input elsewhere and name it in the payload`,
      );
    }
    return template;
  };

  app.post<{ Body: CreateScheduleBody }>('/v1/schedules', { schema: createSchema }, async (request, reply) => {
    const b = request.body;
    const job = toTemplate(b);
    const s = await schedules.create(request.principal.tenant, {
      name: b.name, cron: b.cron, timezone: b.timezone, overlap: b.overlap, catchUp: b.catchUp, paused: b.paused, job,
    });
    reply.header('location', relativeLocation(request.url, ['v1', 'schedules', s.name]));
    return reply.code(201).send(toScheduleView(s));
  });

  app.get('/v1/schedules', { schema: listSchema }, async (request) => ({
    schedules: (await schedules.list(request.principal.tenant)).map(toScheduleView),
  }));

  app.get<{ Params: ScheduleParams }>('/v1/schedules/:name', { schema: getSchema }, async (request) => {
    const s = await schedules.get(request.principal.tenant, request.params.name);
    const ticks = await schedules.ticks(s.tenant, s.name);
    return {
      ...toScheduleView(s),
      nextRuns: schedules.nextRuns(s, NEXT_RUNS_SHOWN).map(iso),
      ticks: ticks.map(toScheduleTickView),
    };
  });

  app.patch<{ Params: ScheduleParams; Body: UpdateScheduleBody }>('/v1/schedules/:name', { schema: updateSchema }, async (request) => {
    const { name } = request.params;
    const b = request.body;
    // Fields left out stay undefined: the service changes only those given.
    const patch: SchedulePatch = { cron: b.cron, timezone: b.timezone, overlap: b.overlap, catchUp: b.catchUp, paused: b.paused };
    const withJob = JOB_FIELDS.some((f) => Object.hasOwn(b, f));
    // A function of the schedule as read: merged again on fresh data if another change wins the race.
    return toScheduleView(await schedules.update(request.principal.tenant, name, (current) => {
      if (!withJob) return patch;
      const { job } = current;
      return {
        ...patch,
        job: toTemplate({
          type: b.type ?? job.type,
          payload: Object.hasOwn(b, 'payload') ? b.payload : job.payload,
          queue: b.queue ?? job.queue,
          maxAttempts: b.maxAttempts ?? job.maxAttempts,
          backoff: b.backoff ?? (job.backoff as BackoffInput),
          timeoutMs: b.timeoutMs ?? job.timeoutMs,
          priority: b.priority ?? job.priority,
        }),
      };
    }));
  });

  app.delete<{ Params: ScheduleParams }>('/v1/schedules/:name', { schema: deleteSchema }, async (request, reply) => {
    await schedules.remove(request.principal.tenant, request.params.name);
    return reply.code(204).send();
  });
};
