/**
 * TypeBox schemas of the REST API (v1). They validate requests (see
 * `validation.ts`), shape responses (fast-json-stringify drops what a response
 * schema does not list, so every field shown must be here) and feed OpenAPI.
 *
 * The schemas a client names (the job, its events, an error, the submit
 * body...) carry an `$id`: `app.ts` registers `SHARED_SCHEMAS` with
 * `app.addSchema` (and with the request validators), routes point at them with
 * `ref(...)`, and the OpenAPI document lists them under `components.schemas`
 * by that name instead of inlining them in every operation. A `$ref` in the
 * document cannot carry a description of its own, so each named schema has a
 * description that also reads well as the description of a field using it.
 */
import { STATUS_CODES } from 'node:http';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { JOB_STATES, USER_EVENT_TYPES, jobMachine, type JobEventType, type JobState } from '../machines/job.machine.js';
import { ERRORS } from '../engine/errors.js';
import { MAX_LIMIT_CONCURRENCY, MAX_RATE, MAX_RATE_INTERVAL_MS } from '../engine/limits.js';
import { KEY_NAME_PATTERN, SCOPES, type Scope } from '../engine/auth.js';
import { CATCH_UPS, MAX_CRON_CHARS, MAX_SCHEDULE_NAME, MAX_TEMPLATE_PAYLOAD_BYTES, OVERLAPS, TICKS_KEPT, type CatchUp, type Overlap } from '../engine/schedules.js';
import { WORKFLOW_STATUSES, type WorkflowStatus } from '../machines/workflow.js';
import {
  JITTERS, LAST_INSTANT_MS, MAX_ATTEMPTS, MAX_BACKOFF_BASE_MS, MAX_BACKOFF_MS, MAX_NAME_CHARS, MAX_PRIORITY, MAX_TIMEOUT_MS, NAME_PATTERN,
} from '../machines/job-bounds.js';
import type { WorkflowEventType } from '../engine/ports.js';

// A job's policy bounds live in machines/: a workflow's jobs are held to them too, and never pass this schema.
export { MAX_ATTEMPTS, MAX_NAME_CHARS, MAX_PRIORITY, NAME_PATTERN };
/**
 * A name that is also a path segment (a schedule's name, a limit's key): as
 * NAME_PATTERN, but not `.` or `..`, which fetch, browsers and the CLI
 * resolve to another path, so nothing could read, change or delete it. (A
 * character other than a dot, or three dots or more: written without a
 * lookahead, which the fuzz tests' generator does not support.)
 */
export const PATH_NAME_PATTERN = '^([A-Za-z0-9._:-]*[A-Za-z0-9_:-][A-Za-z0-9._:-]*|[.][.][.]+)$';
/** A ULID as the engine issues it (canonical upper case; the first char ≤ 7 or it overflows 48 bits). */
export const ULID_PATTERN = '^[0-7][0-9A-HJKMNP-TV-Z]{25}$';
/** An idempotency key (the Idempotency-Key header, or a body's idempotencyKey): printable ASCII, no leading or trailing space. */
export const IDEMPOTENCY_KEY_PATTERN = '^[\\x21-\\x7E]([\\x20-\\x7E]*[\\x21-\\x7E])?$';
/** The longest idempotency key the API takes. */
export const MAX_IDEMPOTENCY_KEY_CHARS = 255;
/** The last representable instant we accept for `runAt` (9999-12-31T23:59:59.999Z). */
export const MAX_EPOCH_MS = LAST_INSTANT_MS;

export const MAX_PAGE = 500;
export const DEFAULT_PAGE = 50;

const Name = (description: string) => Type.String({ minLength: 1, maxLength: MAX_NAME_CHARS, pattern: NAME_PATTERN, description });
const PathName = (description: string) => Type.String({ minLength: 1, maxLength: MAX_NAME_CHARS, pattern: PATH_NAME_PATTERN, description });
const Ms = (min: number, max: number, description: string) => Type.Integer({ minimum: min, maximum: max, description });
const IsoTime = (description: string) => Type.String({ format: 'date-time', description });
const Nullable = <T extends TSchema>(schema: T, description: string) => Type.Union([schema, Type.Null()], { description });

/** A `$ref` to a named schema (one with an `$id`), typed as that schema. */
export const ref = <T extends TSchema>(schema: T) => {
  if (!schema.$id) throw new Error('ref(): the schema has no $id');
  return Type.Unsafe<Static<T>>(Type.Ref(schema.$id));
};

export const JobId = Type.String({ pattern: ULID_PATTERN, description: 'Job id (ULID)', minLength: 26, maxLength: 26 });
/** A string enum (TypeBox unions of literals become `anyOf`, whose errors say less). */
const StringEnum = <T extends string>(values: readonly T[], description: string, $id?: string) =>
  Type.Unsafe<T>({ ...($id ? { $id } : {}), type: 'string', enum: [...values], description });

const STATE_LIST = JOB_STATES.map((s) => `\`${s}\`: ${jobMachine.config.states?.[s]?.description ?? ''}`).join(' ');
/** The job's state (named, for responses; a query parameter uses `JobStateParam`, which can carry its own description). */
export const JobStateSchema = StringEnum<JobState>(JOB_STATES, `A state of the job machine. ${STATE_LIST}`, 'JobState');
const JobStateParam = StringEnum<JobState>(JOB_STATES, 'Only jobs in this state');
export const UserEventSchema = StringEnum<JobEventType>(USER_EVENT_TYPES, 'A user event: CANCEL (POST /v1/jobs/{id}/cancel) or REDRIVE (POST /v1/jobs/{id}/redrive)');
const ErrorCode = (description: string) => StringEnum(Object.keys(ERRORS), description);

// ---------------------------------------------------------------- backoff

const ExponentialIn = Type.Object(
  {
    kind: Type.Literal('exponential', { description: 'Exponential backoff: the delay doubles with each attempt' }),
    baseMs: Ms(1, MAX_BACKOFF_BASE_MS, 'Delay before the first retry, in ms, before jitter (with the default full jitter the delay is random, from 0 to it)'),
    maxMs: Ms(1, MAX_BACKOFF_MS, 'Upper bound of any delay, in ms (≥ baseMs)'),
    jitter: Type.Optional(StringEnum(JITTERS, 'Randomisation of each delay: full (0 to the delay), equal (half fixed, half random) or none; default full')),
  },
  { $id: 'ExponentialBackoff', additionalProperties: false, description: 'Retry after baseMs, then twice as long each time, up to maxMs; jitter draws each delay at random below that (full, the default: from 0 to it)' },
);
const FixedIn = Type.Object(
  {
    kind: Type.Literal('fixed', { description: 'Fixed backoff: the same delay before every retry' }),
    delayMs: Ms(0, MAX_BACKOFF_MS, 'Delay before every retry, in ms'),
  },
  { $id: 'FixedBackoff', additionalProperties: false, description: 'Retry after the same delay each time' },
);
export type BackoffInput = Static<typeof ExponentialIn> | Static<typeof FixedIn>;

/**
 * `oneOf` + `discriminator` (not TypeBox's `anyOf`) so a bad backoff gets the
 * error of the branch its `kind` names instead of "must match a schema in anyOf".
 * The branches are `$ref`s: OpenAPI's discriminator selects named schemas only.
 */
export const BackoffIn = Type.Unsafe<BackoffInput>({
  $id: 'Backoff',
  type: 'object',
  required: ['kind'],
  discriminator: { propertyName: 'kind' }, // openapi.ts adds the mapping, which Ajv refuses
  oneOf: [ref(ExponentialIn), ref(FixedIn)],
  description: 'Retry backoff, chosen by `kind`; defaults to the server\'s policy',
});

const BackoffOut = Type.Union([
  Type.Object({
    kind: Type.Literal('exponential', { description: 'Exponential backoff' }),
    baseMs: Type.Integer({ description: 'Delay before the first retry, in ms, before jitter' }),
    maxMs: Type.Integer({ description: 'Upper bound of any delay, in ms' }),
    jitter: Type.String({ description: 'full, equal or none' }),
  }),
  Type.Object({
    kind: Type.Literal('fixed', { description: 'Fixed backoff' }),
    delayMs: Type.Integer({ description: 'Delay before every retry, in ms' }),
  }),
], { $id: 'BackoffPolicy', description: 'The retry backoff the job runs with: the one submitted, or the server\'s default' });

// ---------------------------------------------------------------- requests

export const SubmitBody = Type.Object(
  {
    type: Name('Handler type, e.g. demo.echo'),
    payload: Type.Unknown({ description: 'Any JSON value, given to the handler; arrays and objects nested at most 32 levels deep, numbers finite (1e400 is a 400)' }),
    queue: Type.Optional(Name('Queue; defaults to the server\'s default queue')),
    runAt: Type.Optional(
      Type.Union([
        Type.String({ format: 'date-time', maxLength: 64, description: 'An ISO 8601 date-time, at most 9999-12-31T23:59:59.999Z' }),
        Type.Integer({ minimum: 0, maximum: MAX_EPOCH_MS, description: 'Epoch milliseconds' }),
      ], { description: 'When the job is due: ISO 8601 date-time or epoch ms; default now, and a time in the past is due at once (runAt keeps the time given)' }),
    ),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_ATTEMPTS, description: 'Attempts before the job is dead; defaults to the server\'s' })),
    backoff: Type.Optional(ref(BackoffIn)),
    timeoutMs: Type.Optional(Ms(1, MAX_TIMEOUT_MS, 'Per-attempt timeout, in ms; defaults to the server\'s')),
    priority: Type.Optional(Type.Integer({
      minimum: -MAX_PRIORITY,
      maximum: MAX_PRIORITY,
      description: 'Within the queue, a job of a higher band (above 0, 0, below 0) starts before the lower bands\' waiting jobs, and a worker gives a free slot to the highest priority waiting (docs/queues.md); default 0',
    })),
    concurrencyKey: Type.Optional(PathName(
      'The key whose limit (PUT /v1/limits/{key}) the job\'s attempts count against: one over the limit waits, published, burning no attempt (docs/limits.md). ' +
      'A key without a limit is unlimited; default none',
    )),
  },
  { $id: 'SubmitRequest', additionalProperties: false, description: 'A job to run: its handler type, payload and retry policy' },
);
export type SubmitBody = Static<typeof SubmitBody>;

const IdempotencyKey = (description: string) =>
  Type.String({ minLength: 1, maxLength: MAX_IDEMPOTENCY_KEY_CHARS, pattern: IDEMPOTENCY_KEY_PATTERN, description });

export const SubmitHeaders = Type.Object({
  'idempotency-key': Type.Optional(IdempotencyKey(
    'Makes the submit repeatable within the job\'s queue (a key is per queue): the same key and body again answer 200 with the job the first call created; the same key with another body in that queue is a 409 (a field left out, maxAttempts, backoff, timeoutMs or priority, matches the job\'s value, whatever this instance\'s default). Sent at most once: the header twice is a 400',
  )),
});

export const SignalHeaders = Type.Object({
  'idempotency-key': Type.Optional(IdempotencyKey(
    'Makes the signal repeatable: the same key and event again answer 200 and apply nothing; the same key with another event is a 409. Sent at most once: the header twice is a 400',
  )),
});
export type SignalHeaders = Static<typeof SignalHeaders>;

/** Most items one `POST /v1/jobs/batch` takes (one store transaction). */
export const MAX_BATCH = 1000;

/**
 * One item of a batch: the body of `POST /v1/jobs`, plus the `Idempotency-Key`
 * header as a field (named like the job's own `idempotencyKey`). Inline in the
 * document (no `$id`): the batch body shows each item's fields where it is used.
 */
export const BatchItem = Type.Object(
  {
    ...SubmitBody.properties,
    idempotencyKey: Type.Optional(IdempotencyKey('What the Idempotency-Key header is to POST /v1/jobs, for this item')),
  },
  { additionalProperties: false, description: 'The body of POST /v1/jobs, with its Idempotency-Key as a field' },
);
export type BatchItem = Static<typeof BatchItem>;

const batchOf = <T extends TSchema>(item: T) => Type.Object(
  { jobs: Type.Array(item, { minItems: 1, maxItems: MAX_BATCH, description: `1 to ${MAX_BATCH} jobs, each answered on its own` }) },
  { additionalProperties: false, description: 'Jobs to submit in one transaction' },
);

/** The batch as OpenAPI shows it. */
export const BatchBody = batchOf(BatchItem);
export type BatchBody = Static<typeof BatchBody>;
/**
 * The batch as the route validates it: only the envelope, so one bad item is
 * that item's 400 in the results, not the whole batch's (the route checks
 * each item against `BatchItem`).
 */
export const BatchEnvelope = batchOf(Type.Unknown());

export const JobParams = Type.Object({ id: JobId }, { additionalProperties: false });
export type JobParams = Static<typeof JobParams>;

const CancelRequest = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 1000, description: 'Why; shown as the job\'s cancelReason' })) },
  { $id: 'CancelRequest', additionalProperties: false, description: 'Why the job is cancelled (the body is optional)' },
);
/** Optional body: `validation.ts` lets an absent body through because the schema is `Optional`. */
export const CancelBody = Type.Optional(ref(CancelRequest));
export type CancelBody = Static<typeof CancelBody>;

/** A redrive takes nothing: a field sent with it (attempts, a reason) would be ignored, so it is refused. */
const RedriveRequest = Type.Object(
  {},
  { $id: 'RedriveRequest', additionalProperties: false, description: 'A redrive takes no fields: the body is optional, and when sent it is {}' },
);
export const RedriveBody = Type.Optional(ref(RedriveRequest));

export const ListQuery = Type.Object(
  {
    state: Type.Optional(JobStateParam),
    type: Type.Optional(Name('Only jobs of this type')),
    queue: Type.Optional(Name('Only jobs of this queue')),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE, default: DEFAULT_PAGE, description: 'Most jobs on one page' })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'nextCursor of the previous page' })),
    createdAfter: Type.Optional(Type.String({
      format: 'date-time', maxLength: 64, description: 'Only jobs submitted at or after this time (ISO 8601 date-time, e.g. 2026-01-31T09:00:00Z)',
    })),
    createdBefore: Type.Optional(Type.String({
      format: 'date-time', maxLength: 64, description: 'Only jobs submitted before this time (ISO 8601 date-time)',
    })),
  },
  { additionalProperties: false },
);
export type ListQuery = Static<typeof ListQuery>;

// ---------------------------------------------------------------- responses

export const ErrorBody = Type.Object({
  code: ErrorCode('Stable error code (ATS_ERR_*); what a client branches on'),
  message: Type.String({ description: 'What went wrong, for a person; may change between versions' }),
}, { $id: 'Error', description: 'Every error the API answers: a stable code and a message' });

const JobError = Type.Object({
  message: Type.String({ description: 'The error\'s message' }),
  name: Type.Optional(Type.String({ description: 'The error\'s class name, e.g. LeaseExpired' })),
  stack: Type.Optional(Type.String({ description: 'The stack trace the handler\'s error carried, followed by those of its causes (`Caused by: ...`), shortened to its first 4,000 characters' })),
  retryable: Type.Boolean({ description: 'false: the handler (or, with decidedBy, the advisor) said another attempt cannot succeed' }),
  decidedBy: Type.Optional(Type.Literal('advisor', { description: 'Present when the advisor (enforce mode) made the failure non-retryable: its signature had proven hopeless' })),
  advice: Type.Optional(Type.String({ description: 'The advisor\'s reason, when decidedBy is set' })),
  timedOut: Type.Optional(Type.Literal(true, { description: 'Present when the job\'s own timeout (timeoutMs) ended the attempt, not an error the handler threw' })),
  attempt: Type.Integer({ description: 'The attempt that failed' }),
}, { $id: 'JobError', description: 'How an attempt of the job failed' });

export const JobView = Type.Object({
  id: JobId,
  type: Type.String({ description: 'Handler type' }),
  queue: Type.String({ description: 'Queue' }),
  state: ref(JobStateSchema),
  attempt: Type.Integer({ description: 'The last attempt started (0 before the first)' }),
  maxAttempts: Type.Integer({ description: 'Attempts this run may make' }),
  attemptBase: Type.Integer({ description: 'The attempt the job had reached when it was last redriven (0 if never): a redrive starts a new run of maxAttempts, and attempts keep counting, so this run\'s attempt is attempt - attemptBase' }),
  payload: Type.Unknown({ description: 'The payload as submitted' }),
  result: Type.Unknown({ description: 'What the handler returned (null until the job is done)' }),
  lastError: Nullable(ref(JobError), 'The last failure; null if no attempt failed, and once the job is done (a redrive keeps the previous run\'s until an attempt of the new run fails or succeeds)'),
  cancelReason: Nullable(Type.String(), 'The reason given when the job was cancelled, else null'),
  runAt: IsoTime('When the job is (or was) next due'),
  priority: Type.Integer({ description: 'Within the queue, a higher priority starts first: bands above 0, 0 and below 0, then the highest waiting for a worker\'s free slot (docs/queues.md)' }),
  timeoutMs: Type.Integer({ description: 'Per-attempt timeout, in ms' }),
  backoff: ref(BackoffOut),
  idempotencyKey: Nullable(Type.String(), 'The Idempotency-Key the job was submitted with, else null'),
  concurrencyKey: Nullable(Type.String(), 'The key whose concurrency and rate limit the job\'s attempts count against (docs/limits.md); null when it was submitted without one'),
  version: Type.Integer({ description: 'The last event\'s seq' }),
  createdAt: IsoTime('Submit time'),
  updatedAt: IsoTime('Last transition; for a job waiting to start, when a worker holding its dispatch, or the timers finding it still queued, last kept it (docs/limits.md)'),
  allowed: Type.Array(UserEventSchema, { description: 'User events the machine accepts now' }),
}, { $id: 'Job', description: 'A job: what was submitted, where it is in the job machine and what it may do next' });
export type JobView = Static<typeof JobView>;

export const EventView = Type.Object({
  seq: Type.Integer({ description: 'Position in the job\'s history, from 1' }),
  type: Type.String({ description: 'The event, e.g. SUBMITTED, STARTED, FAILED, CANCEL' }),
  from: Nullable(ref(JobStateSchema), 'The state before (null for the submit)'),
  to: ref(JobStateSchema),
  at: IsoTime('When the transition happened'),
  data: Type.Unknown({ description: 'What the event carried (attempt, error, reason...)' }),
}, { $id: 'JobEvent', description: 'One transition of the job machine, from the job\'s event log' });
export type EventView = Static<typeof EventView>;

export const EtaView = Type.Object({
  start: IsoTime('Predicted start (a running job: when its attempt started)'),
  finish: IsoTime('Predicted finish'),
  basis: Type.Object({
    startsPerSecond: Nullable(Type.Number(), 'The queue\'s start rate: the larger of its recent start rate (decaying: 0 once no job of it started for a long while) and the rate its running attempts free their slots (one start per mean run time of each one\'s type); null for a queue this server has not seen start a job'),
    medianRunMs: Type.Number({ description: 'The job type\'s median run time' }),
    ahead: Type.Integer({ minimum: 0, description: 'Jobs of the queue waiting ahead of this one; with `lowerBound` and no `held`, at least this many (the count stops after reading 1,000 waiting jobs of every queue, per read); with `held`, not what the prediction rests on' }),
    startLatencyMs: Nullable(Type.Number(), 'The queue\'s median wait lately from a job\'s due time to its first start, of jobs none started ahead of (a job starts no sooner); null before enough starts'),
    held: Type.Optional(Type.Union([Type.Literal('rate'), Type.Literal('concurrency')], { description: 'Present when the job\'s limit holds it (or, for a job not due yet, its rate allows no start by its due time), and then the limit decides its start, not the queue\'s jobs ahead or its start rate: `rate`, the next start the rate allows; `concurrency`, when a slot of its key frees (estimated: each of its running attempts taken to end a median run time after it started, now once that has passed), and not before its rate allows (docs/limits.md)' })),
  }, { description: 'What the prediction rests on' }),
  lowerBound: Type.Optional(Type.Boolean({ description: 'True: `start` and `finish` are the earliest the job can start and finish: more jobs may wait ahead than were counted (the count stopped at its bound), or its limit\'s rate holds it (`basis.held` is `rate`: no start before the next the rate allows, and the key\'s own jobs waiting ahead of it, not counted, may take the starts after). Absent is false' })),
}, { $id: 'Eta', description: 'The advisor\'s prediction of a live job\'s start and finish (docs/advisor.md)' });

export const ProgressView = Type.Object({
  value: Type.Union([
    Type.Number({ minimum: 0, maximum: 100, description: 'A share done, from 0 to 100' }),
    Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true, description: 'A JSON object of at most 1 KiB, as the handler made it' }),
  ], { description: 'What the handler reported: a number from 0 to 100, or a JSON object' }),
  attempt: Type.Integer({ minimum: 1, description: 'The attempt that reported it' }),
  at: IsoTime('When it was stored'),
}, { $id: 'JobProgress', description: 'The latest progress the job\'s handler reported (`ctx.progress`): not a transition, not kept in the history' });
export type ProgressView = Static<typeof ProgressView>;

export const WAITING_REASONS = ['scheduled', 'backoff', 'dispatching', 'no-worker', 'paused', 'concurrency', 'rate', 'queued'] as const;

export const WaitingView = Type.Object({
  reason: Type.Union(WAITING_REASONS.map((r) => Type.Literal(r)), {
    description: 'What it waits for. `scheduled`: its run time (`until`). `backoff`: its retry time (`until`). Due: `no-worker`: no live worker runs its type on its queue; ' +
      '`paused`: its limit\'s concurrency is 0; `concurrency`: as many of its key run as its limit allows; `rate`: its limit\'s rate allows the next start at `until`; ' +
      'with none of these: `dispatching`, its dispatch on its way to the workers, or `queued`, dispatched, for a worker\'s free slot after the jobs before it in its queue',
  }),
  until: Nullable(IsoTime('When'), 'When the wait ends by itself: for `scheduled`, `backoff` and `rate`; null otherwise'),
  // Inline, not a $ref to Limit: a server without limits (no limit store) has no Limit schema, and jobs all the same.
  limit: Nullable(Type.Object({
    key: Type.String({ description: 'The key, as `GET /v1/limits/:key` names it: the job\'s own concurrency key, or `type:<type>` or `queue:<queue>`' }),
    concurrency: Nullable(Type.Integer({ minimum: 0 }), 'Most attempts of the key running at once; 0: paused; null: no cap'),
    rate: Nullable(Type.Object({
      max: Type.Integer({ minimum: 1, description: 'Starts allowed per interval' }),
      intervalMs: Type.Integer({ minimum: 1, description: 'The interval, in ms' }),
    }), 'Most starts of the key per interval; null: no cap'),
    running: Type.Integer({ minimum: 0, description: 'Attempts of the key running now, with a lease that holds' }),
  }), 'The limit its attempts count against (its own key\'s, else its type\'s or queue\'s default), as read with the job; null when none applies, and for a job not due'),
}, { $id: 'JobWaiting', description: 'What a job that has not started waits for (docs/limits.md, docs/architecture.md)' });
export type WaitingView = Static<typeof WaitingView>;

export const JobDetail = Type.Intersect([
  ref(JobView),
  Type.Object({
    events: Type.Array(ref(EventView), { description: 'The job\'s history, oldest first' }),
    streamCursor: Type.String({
      description: 'The stream cursor (opaque) of the newest event in `events`: a stream subscription to this job (`filter.jobId`) from it is sent every later transition of the job, each once, in order, and none of those shown (docs/stream.md)',
    }),
    eta: Nullable(ref(EtaView), 'Predicted start and finish of a live job; null for a finished job, with the advisor off, before its type has history, or for a waiting job no live worker can run or whose concurrency limit is paused (or when that could not be read)'),
    progress: Nullable(ref(ProgressView), 'The latest progress its handler reported (kept after the attempt ends, replaced by the next attempt\'s first report); null when none did'),
    waiting: Nullable(ref(WaitingView), 'What it waits for while it has not started (pending, published, retrying); null once it runs or ended, or when what it waits for could not be read'),
  }),
], { $id: 'JobDetail', description: 'A job with its history' });
export type JobDetail = JobView & { events: EventView[]; streamCursor: string; progress: ProgressView | null; waiting: WaitingView | null };

export const JobVerifyView = Type.Object({
  ok: Type.Boolean({ description: 'true: the history has no gap, starts with SUBMITTED, and replaying it through the job machine gives the stored job' }),
  events: Type.Integer({ minimum: 0, description: 'Events checked: the history up to the job\'s version as read' }),
  problems: Type.Array(Type.String(), { description: 'Each difference found, for a person (the wording may change between versions); empty when ok' }),
}, { $id: 'JobVerification', description: 'Whether the job\'s history replays to its stored state' });
export type JobVerifyView = Static<typeof JobVerifyView>;

const Int = (description: string) => Type.Integer({ minimum: 0, description });
const Num = (description: string) => Type.Number({ description });

const AnomalyView = Type.Object({
  type: Type.String({ description: 'The job type' }),
  queue: Type.String({ description: 'The queue' }),
  metric: Type.Union([Type.Literal('failure-rate'), Type.Literal('duration')], { description: 'What changed' }),
  baseline: Num('The level before: a failure fraction, or a run time in ms'),
  observed: Num('The level when detected'),
  at: Num('When it was detected, epoch ms'),
}, { description: 'A change in a job type\'s failure rate or run time' });

const SignatureView = Type.Object({
  signature: Type.String({ description: 'The error\'s name and message with ids, numbers and quoted values stripped' }),
  failures: Int('Failures seen with this signature'),
  recovered: Int('Retries after this failure that succeeded (decayed count)'),
  hopeless: Int('Retries after this failure that failed again while other jobs of the type succeeded (decayed count)'),
  pRecover: Num('Posterior mean chance that a retry after this failure succeeds'),
  verdict: Type.Union([Type.Literal('learning'), Type.Literal('hopeless'), Type.Literal('transient')], {
    description: 'learning: too little evidence (fewer than 20 retries counted, or none of them recovered yet the bar of hopeless not reached); hopeless: retries credibly never help (enforce stops them); transient: they do (at least one recovered, counted or within the evidence half-life)',
  }),
  recoveryMs: Nullable(Type.Object({
    count: Int('Recovered runs timed'),
    p50: Num('Median, ms'),
    p90: Num('90th percentile, ms'),
  }), 'Time from a run\'s first failure to the start of the attempt that succeeded; null before any'),
}, { description: 'One failure signature of the type' });

export const InsightsView = Type.Object({
  mode: Type.Union([Type.Literal('off'), Type.Literal('advise'), Type.Literal('enforce')], { description: 'ATS_ADVISOR: advise only shows, enforce also acts' }),
  events: Int('Committed job events learned from'),
  types: Type.Array(Type.Object({
    type: Type.String({ description: 'The job type' }),
    queue: Type.String({ description: 'The queue' }),
    timeoutMs: Nullable(Type.Integer({ minimum: 0 }), 'The handler timeout of the newest job of this type and queue (null when none is left)'),
    attempts: Int('Attempts that ended: succeeded, failed, lease expired, or cut short by their worker\'s shutdown (runMs.count: those timed)'),
    failures: Int('Of those, attempts that failed (a lease expiry and a shutdown\'s cut included)'),
    runMs: Nullable(Type.Object({
      count: Int('Attempts timed (not lease expiries nor attempts cut short at shutdown; recent ones weigh most)'), p50: Num('Median run time, ms'), p90: Num('90th percentile, ms'), p99: Num('99th percentile, ms'),
    }), 'Run-time quantiles; null before any attempt ended'),
    lease: Nullable(Type.Object({
      leaseMs: Int('The lease a claim would get'),
      heartbeatMs: Int('The heartbeat period with it'),
      p99Ms: Num('The p99 run time it was sized from'),
      samples: Int('Attempts behind that p99'),
    }), 'The lease the advisor would claim with; null: the static lease'),
    signatures: Type.Array(SignatureView, { description: 'Failure signatures, most frequent first' }),
    anomalies: Type.Array(AnomalyView, { description: 'Recent anomalies of the type, newest last' }),
    changes: Type.Array(Type.String(), { description: 'What the advisor changes (enforce) or would change (advise), in words' }),
  }), { description: 'Per job type and queue seen' }),
}, { $id: 'Insights', description: 'What the advisor learned per job type and queue, and what it changes' });

export const JobPage = Type.Object({
  jobs: Type.Array(ref(JobView), { description: 'Jobs, newest first' }),
  nextCursor: Nullable(Type.String(), 'Pass as cursor for the next page; null at the end'),
}, { $id: 'JobPage', description: 'One page of jobs' });

const Counts = Type.Record(Type.String(), Type.Integer(), { description: 'Job count per state' });
export const StatsView = Type.Object({
  total: Type.Integer({ description: 'Jobs in the store' }),
  byState: Type.Object(
    Object.fromEntries(JOB_STATES.map((s) => [s, Type.Integer({ description: `Jobs in state ${s}` })])),
    { description: 'Job count per state' },
  ),
  byType: Type.Record(Type.String(), Counts, { description: 'Per job type, its count per state' }),
  byQueue: Type.Record(Type.String(), Counts, { description: 'Per queue, its count per state' }),
  unserved: Type.Optional(Type.Array(Type.Object({
    type: Type.String({ description: 'The job type' }),
    queue: Type.String({ description: 'The queue' }),
    waiting: Type.Integer({ minimum: 0, description: 'Jobs of this type in this queue waiting to start (pending or published)' }),
  }, { description: 'Jobs of one type in one queue waiting to start that no live worker handles' }), {
    description: 'The job types (per queue) with jobs waiting to start that no live worker handles (no live worker lists the type). ' +
      'Empty when every waiting job has a live worker for its type; absent when this server does not read the worker registry',
  })),
}, { $id: 'Stats', description: 'Job counts' });

export const CallerView = Type.Object({
  keyId: Nullable(Type.String({ description: 'A key id' }), 'The id of the key the request was made with; null when the server runs without keys'),
  tenant: Type.String({ description: 'The tenant the caller acts for' }),
  scopes: Type.Array(Type.Unsafe<Scope>({ type: 'string', enum: [...SCOPES], description: 'A scope' }), {
    description: `What the caller may do: one or more of ${SCOPES.join(', ')} (every scope when the server runs without keys)`,
  }),
}, { $id: 'Caller', description: 'Who the caller is: its key, its tenant and its scopes' });

export const MachineView = Type.Object({
  id: Type.String({ description: 'The machine\'s id' }),
  initial: ref(JobStateSchema),
  states: Type.Array(Type.Object({
    id: ref(JobStateSchema),
    terminal: Type.Boolean({ description: 'No event of a worker or timer leaves it (a user may still redrive)' }),
    description: Type.Optional(Type.String({ description: 'What the state means' })),
  }, { description: 'A state' }), { description: 'Every state' }),
  edges: Type.Array(Type.Object({
    from: ref(JobStateSchema),
    to: ref(JobStateSchema),
    event: Type.String({ description: 'The event taking this edge' }),
    guard: Type.Optional(Type.String({ description: 'The condition under which it is taken' })),
  }, { description: 'A transition' }), { description: 'Every transition' }),
}, { $id: 'Machine', description: 'The job machine: its states and transitions' });

export const HealthView = Type.Object(
  { status: Type.Literal('ok', { description: 'Always ok' }) },
  { $id: 'Health', description: 'The process answers' },
);
export const ReadyView = Type.Object({
  database: Type.Literal('ok', { description: 'The database answered' }),
  log: Type.Union([Type.Literal('ok'), Type.Literal('unreachable'), Type.Literal('absent')], {
    description: 'The log (Kafka) answered; unreachable: it failed or did not answer within the readiness timeout (the process stays ready: submits and reads do not need it; the detail goes to the log); absent: this process has no log check',
  }),
}, { $id: 'Readiness', description: 'The process and its database answer' });

/**
 * One answer per batch item, in order: `status` is what `POST /v1/jobs` would
 * have answered for it (201 created, 200 the job its idempotencyKey created
 * before, or the item's 4xx with `code` and `message`). One flat object, not
 * a `oneOf`, so a thousand of them serialize fast.
 */
export const BatchResult = Type.Object({
  status: Type.Integer({ description: '201, 200, or the item\'s 4xx (or 503: its key\'s holder could not be read after the others were written)' }),
  id: Type.Optional(Type.String({ ...JobId, description: 'The job (201 and 200)' })),
  state: Type.Optional(ref(JobStateSchema)),
  code: Type.Optional(ErrorCode('The item\'s error code (4xx)')),
  message: Type.Optional(Type.String({ description: 'The item\'s error message (4xx)' })),
}, { $id: 'BatchResult', description: 'What POST /v1/jobs would have answered for one item: {status, id, state} or {status, code, message}' });
export type BatchResult = Static<typeof BatchResult>;
export const BatchResponse = Type.Object(
  { results: Type.Array(ref(BatchResult), { description: 'results[i] answers jobs[i]' }) },
  { $id: 'BatchResponse', description: 'One result per item, in order' },
);

/** The window and row cap of `GET /v1/stats/edges`. */
export const EDGE_STATS_WINDOW_MS = 15 * 60_000;
export const EDGE_STATS_MAX_EVENTS = 50_000;

export const EdgeStatsView = Type.Object({
  windowMs: Type.Integer({ description: 'The window the figures cover: transitions of the last windowMs milliseconds' }),
  maxEvents: Type.Integer({ description: 'At most this many of the newest events of the caller\'s tenant are read' }),
  truncated: Type.Boolean({ description: 'true: more of the caller\'s tenant\'s events than maxEvents fell in the window, so only its newest maxEvents were counted' }),
  edges: Type.Array(Type.Object({
    from: Nullable(ref(JobStateSchema), 'The state the job left (null for the submit)'),
    to: ref(JobStateSchema),
    event: Type.String({ description: 'The event that took the edge, e.g. SUBMITTED, STARTED, SUCCEEDED' }),
    count: Type.Integer({ description: 'Transitions along this edge in the window' }),
    medianDwellMs: Nullable(Type.Number(), 'Median time the jobs spent in `from` before taking this edge, in ms; null without a sample (the submit)'),
  }, { description: 'One edge of the job machine as recent transitions took it' }), { description: 'Edges taken in the window, the busiest first' }),
}, { $id: 'EdgeStats', description: 'Per edge of the job machine, how many transitions took it recently and how long jobs waited before' });
export type EdgeStatsView = Static<typeof EdgeStatsView>;

export const OutboxStatsView = Type.Object({
  rows: Type.Integer({ minimum: 0, description: 'Outbox rows the relay has not published yet (it deletes each row once Kafka acked its messages)' }),
  messages: Type.Integer({ minimum: 0, description: 'The messages those rows hold (a transaction writes its messages as one row, or a few)' }),
  oldestAt: Nullable(IsoTime('When the oldest of them was written'), 'When the oldest unpublished row was written; null when the outbox is empty'),
  oldestAgeMs: Nullable(Type.Integer({ minimum: 0 }), 'How long the oldest unpublished row has waited, in ms; null when the outbox is empty'),
}, { $id: 'OutboxStats', description: 'The relay backlog: the outbox rows not yet published to Kafka' });
export type OutboxStatsView = Static<typeof OutboxStatsView>;

// ---------------------------------------------------------------- schedules

/** A schedule's name (in the body and in paths): URL- and log-safe, like job types and queues. */
const ScheduleName = (description: string) =>
  Type.String({ minLength: 1, maxLength: MAX_SCHEDULE_NAME, pattern: PATH_NAME_PATTERN, description });
const CronExpr = (description: string) => Type.String({ minLength: 1, maxLength: MAX_CRON_CHARS, description });
const TimeZone = (description: string) => Type.String({ minLength: 1, maxLength: 64, description });
const OVERLAP_DOC = 'skip: a tick whose previous job is still live is recorded as skipped and submits nothing; allow: every tick submits a job';
const CATCH_UP_DOC = 'Ticks whose time passed while no timers ran: none fires none of them (more than 60 s late is missed), latest fires only the newest, all fires each';
// Built by functions, not spread from one another: a spread TypeBox schema loses the type names its declaration needs.
const OverlapIn = (suffix = '') => StringEnum<Overlap>(OVERLAPS, OVERLAP_DOC + suffix);
const CatchUpIn = (suffix = '') => StringEnum<CatchUp>(CATCH_UPS, CATCH_UP_DOC + suffix);

/** The job fields of a schedule body: the pieces of `POST /v1/jobs`'s body (runAt aside: the tick is the run time). */
const templateFields = {
  payload: Type.Optional(Type.Unknown({ description: `Any JSON value, given to the handler of each tick's job, nested at most 32 levels deep, numbers finite, at most ${MAX_TEMPLATE_PAYLOAD_BYTES} bytes of JSON; default null` })),
  queue: SubmitBody.properties.queue,
  maxAttempts: SubmitBody.properties.maxAttempts,
  backoff: SubmitBody.properties.backoff,
  timeoutMs: SubmitBody.properties.timeoutMs,
  priority: SubmitBody.properties.priority,
};

export const CreateScheduleBody = Type.Object(
  {
    name: ScheduleName('The schedule\'s name, unique; also its path (/v1/schedules/{name})'),
    cron: CronExpr('Cron expression: 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, 7 with a year last'),
    timezone: Type.Optional(TimeZone('IANA time zone the expression is read in, e.g. Europe/Berlin; default UTC')),
    type: SubmitBody.properties.type,
    ...templateFields,
    overlap: Type.Optional(OverlapIn('; default skip')),
    catchUp: Type.Optional(CatchUpIn('; default none')),
    paused: Type.Optional(Type.Boolean({ description: 'Created paused (no tick fires until it is resumed); default false' })),
  },
  { $id: 'CreateScheduleRequest', additionalProperties: false, description: 'A cron schedule: its name, expression and time zone, and the job each tick submits (the fields of POST /v1/jobs)' },
);
export type CreateScheduleBody = Static<typeof CreateScheduleBody>;

export const UpdateScheduleBody = Type.Object(
  {
    cron: Type.Optional(CronExpr('A new cron expression; the next run is computed from now')),
    timezone: Type.Optional(TimeZone('A new IANA time zone; the next run is computed from now')),
    overlap: Type.Optional(OverlapIn()),
    catchUp: Type.Optional(CatchUpIn()),
    paused: Type.Optional(Type.Boolean({ description: 'true pauses (no tick fires); false resumes from now (the ticks of the pause are not caught up)' })),
    type: Type.Optional(Name('A new handler type for the jobs of the next ticks')),
    ...templateFields,
  },
  {
    $id: 'UpdateScheduleRequest', additionalProperties: false, minProperties: 1,
    description: 'The fields to change (at least one); job fields replace the template\'s, and the merged template is checked as a submit would be',
  },
);
export type UpdateScheduleBody = Static<typeof UpdateScheduleBody>;

export const ScheduleParams = Type.Object(
  { name: ScheduleName('The schedule\'s name') },
  { additionalProperties: false },
);
export type ScheduleParams = Static<typeof ScheduleParams>;

export const ScheduleView = Type.Object({
  name: Type.String({ description: 'The schedule\'s name' }),
  cron: Type.String({ description: 'The cron expression' }),
  timezone: Type.String({ description: 'The IANA time zone the expression is read in' }),
  overlap: OverlapIn(),
  catchUp: CatchUpIn(),
  paused: Type.Boolean({ description: 'true: no tick fires until it is resumed' }),
  job: Type.Object({
    type: Type.String({ description: 'Handler type' }),
    payload: Type.Unknown({ description: 'The payload of each tick\'s job' }),
    queue: Type.String({ description: 'Queue' }),
    maxAttempts: Type.Integer({ description: 'Attempts each job may make' }),
    backoff: ref(BackoffOut),
    timeoutMs: Type.Integer({ description: 'Per-attempt timeout, in ms' }),
    priority: Type.Integer({ description: 'Within the queue, a higher priority starts first: bands above 0, 0 and below 0, then the highest waiting for a worker\'s free slot (docs/queues.md)' }),
  }, { description: 'The job each tick submits (the server\'s defaults filled in)' }),
  nextRunAt: Nullable(IsoTime('When the next tick fires'), 'When the next tick fires; null while paused, or when the expression fires no more (its last tick fired, or it has none before the year 10000)'),
  lastTickAt: Nullable(IsoTime('The time of the last tick fired'), 'The time of the last tick fired (submitted or skipped); null before the first'),
  lastJobId: Nullable(JobId, 'The job of the last tick that submitted one; null before the first'),
  submitted: Int('Ticks that submitted a job'),
  skipped: Int('Ticks skipped because the previous job was still live (overlap skip)'),
  missed: Int('Ticks passed over after a downtime (catchUp)'),
  createdAt: IsoTime('When the schedule was created'),
  updatedAt: IsoTime('When the schedule was last changed through the API'),
}, { $id: 'Schedule', description: 'A cron schedule: its expression, the job each tick submits and what its ticks did' });
export type ScheduleView = Static<typeof ScheduleView>;

export const ScheduleTickView = Type.Object({
  tickAt: IsoTime('The tick\'s time (what the expression named)'),
  outcome: StringEnum(['submitted', 'skipped'] as const, 'submitted: the tick submitted a job; skipped: the previous job was still live (overlap skip)'),
  jobId: Nullable(JobId, 'The job the tick submitted; null when skipped'),
  at: IsoTime('When the tick was fired'),
}, { $id: 'ScheduleTick', description: 'One fired tick of a schedule' });
export type ScheduleTickView = Static<typeof ScheduleTickView>;

export const ScheduleDetail = Type.Intersect([
  ref(ScheduleView),
  Type.Object({
    nextRuns: Type.Array(IsoTime('A run time'), { description: 'The next 5 run times, soonest first; empty while paused' }),
    ticks: Type.Array(ref(ScheduleTickView), { description: `The recent ticks, newest first (up to ${TICKS_KEPT})` }),
  }),
], { $id: 'ScheduleDetail', description: 'A schedule with its next run times and recent ticks' });
export type ScheduleDetail = ScheduleView & { nextRuns: string[]; ticks: ScheduleTickView[] };

export const ScheduleList = Type.Object({
  schedules: Type.Array(ref(ScheduleView), { description: 'Every schedule (at most 1000), by name' }),
}, { $id: 'ScheduleList', description: 'The schedules' });

// ---------------------------------------------------------------- workers

export const WorkerView = Type.Object({
  id: Type.String({ description: 'The worker\'s id, chosen when it starts' }),
  host: Type.String({ description: 'The host it runs on' }),
  pid: Type.Integer({ description: 'Its process id on that host' }),
  queues: Type.Array(Type.String(), { description: 'The queues it takes jobs from; `*` is every queue' }),
  types: Type.Array(Type.String(), { description: 'The job types it has a handler for' }),
  concurrency: Type.Integer({ minimum: 0, description: 'How many jobs it runs at once, at most' }),
  startedAt: IsoTime('When it started'),
  lastSeenAt: IsoTime('When it last wrote its record (every 5 s while it runs)'),
  live: Type.Boolean({ description: 'Seen within the last 15 s; false: it stopped without saying so, or lost the database (a record unseen for an hour is removed)' }),
}, { $id: 'Worker', description: 'A worker process as it registered itself: where it runs, what it handles and when it was last seen' });
export type WorkerView = Static<typeof WorkerView>;

export const WorkerList = Type.Object({
  workers: Type.Array(ref(WorkerView), { description: 'Every registered worker (at most 1000), by id' }),
}, { $id: 'WorkerList', description: 'The workers' });

// ---------------------------------------------------------------- limits

/** Most limits `GET /v1/limits` lists. */
export const MAX_LIMITS_LISTED = 1000;

export const LimitRate = Type.Object(
  {
    max: Type.Integer({ minimum: 1, maximum: MAX_RATE, description: `Starts allowed per interval, 1 to ${MAX_RATE}` }),
    intervalMs: Type.Integer({ minimum: 1, maximum: MAX_RATE_INTERVAL_MS, description: `The interval, in ms, 1 to ${MAX_RATE_INTERVAL_MS} (a day)` }),
  },
  {
    $id: 'LimitRate', additionalProperties: false,
    description: 'At most `max` attempts of the key start per `intervalMs`, spaced evenly: one every ⌈intervalMs / max⌉ ms, no burst',
  },
);
export type LimitRate = Static<typeof LimitRate>;

export const PutLimitBody = Type.Object(
  {
    concurrency: Type.Optional(Nullable(
      Type.Integer({ minimum: 0, maximum: MAX_LIMIT_CONCURRENCY, description: `Attempts of the key running at once, 0 to ${MAX_LIMIT_CONCURRENCY}; 0 pauses the key` }),
      'Most attempts of the key running at once, across all workers; 0 pauses the key: none of its jobs starts (those running go on) until the limit is raised or deleted; null or absent: no cap on them',
    )),
    rate: Type.Optional(Nullable(ref(LimitRate), 'Most starts of the key per interval; null or absent: no cap on them')),
  },
  {
    $id: 'PutLimitRequest', additionalProperties: false,
    description: 'The limit of a key: a concurrency, a rate, or both (at least one not null). It replaces the key\'s limit as a whole',
  },
);
export type PutLimitBody = Static<typeof PutLimitBody>;

export const LimitParams = Type.Object(
  { key: PathName('The concurrency key (what jobs give as concurrencyKey)') },
  { additionalProperties: false },
);
export type LimitParams = Static<typeof LimitParams>;

export const LimitView = Type.Object({
  key: Type.String({ description: 'The concurrency key' }),
  concurrency: Nullable(Type.Integer({ minimum: 0 }), 'Most attempts of the key running at once; 0: the key is paused (none of its jobs starts); null: no cap on them'),
  rate: Nullable(ref(LimitRate), 'Most starts of the key per interval; null: no cap on them'),
  running: Int('Attempts of the key running now, with a lease that holds (those a limit admitted)'),
  createdAt: IsoTime('When the limit was first set'),
  updatedAt: IsoTime('When the limit was last set'),
}, { $id: 'Limit', description: 'A concurrency and rate limit on a key, and the attempts of the key running now' });
export type LimitView = Static<typeof LimitView>;

export const LimitList = Type.Object({
  limits: Type.Array(ref(LimitView), { description: `Every limit (at most ${MAX_LIMITS_LISTED}), by key` }),
}, { $id: 'LimitList', description: 'The limits' });
export type LimitList = Static<typeof LimitList>;

// ---------------------------------------------------------------- workflows

/** A workflow's name as `defineWorkflow` takes it (machines/workflow.ts). */
export const MAX_WORKFLOW_NAME = 100;
/** The longest event type a signal may have (machines/workflow.ts `isUserEventType`). */
export const MAX_EVENT_TYPE_CHARS = 200;
const WorkflowId = Type.String({ pattern: ULID_PATTERN, description: 'Workflow instance id (ULID)', minLength: 26, maxLength: 26 });
const STATUS_DOC = 'active: running; done: its machine reached a final state; error: a child failed and no transition took the error; cancelled: cancelled through the API';
const WorkflowStatusSchema = StringEnum<WorkflowStatus>(WORKFLOW_STATUSES, `The instance's status. ${STATUS_DOC}`, 'WorkflowStatus');
const WORKFLOW_EVENT_TYPES: readonly WorkflowEventType[] = ['START', 'SIGNAL', 'CHILD', 'TIMER', 'CANCEL', 'MIGRATE', 'MESSAGE'];

export const StartWorkflowBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: MAX_WORKFLOW_NAME, pattern: NAME_PATTERN, description: 'The registered workflow\'s name' }),
    input: Type.Optional(Type.Unknown({ description: 'Any JSON value: the machine\'s input (its context factory gets it), nested at most 32 levels deep, numbers finite; default null' })),
    idempotencyKey: Type.Optional(IdempotencyKey(
      'Makes the start repeatable: the same key, name and input again answer 200 with the instance the first call started; the same key with another input is a 409',
    )),
  },
  { $id: 'StartWorkflowRequest', additionalProperties: false, description: 'A workflow instance to start: the workflow\'s name and its input' },
);
export type StartWorkflowBody = Static<typeof StartWorkflowBody>;

/**
 * A signal: the body is the XState event the machine is sent. Only `type` is
 * checked here; the route refuses the engine's own types (`xstate.*`) and
 * XState's wildcard (`*`).
 */
export const SignalBody = Type.Object(
  { type: Type.String({ minLength: 1, maxLength: MAX_EVENT_TYPE_CHARS, description: 'The event type, e.g. APPROVE; types starting with xstate. are the engine\'s, and * is XState\'s wildcard: both refused' }) },
  { $id: 'WorkflowSignal', additionalProperties: true, description: 'An event for the instance\'s machine: its type and any other fields, sent as they are (nested at most 32 levels deep, numbers finite)' },
);
export type SignalBody = Static<typeof SignalBody> & Record<string, unknown>;

const WorkflowCancelRequest = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 1000, description: 'Why; recorded in the instance\'s history and given to its children\'s cancels' })) },
  { $id: 'WorkflowCancelRequest', additionalProperties: false, description: 'Why the instance is cancelled (the body is optional)' },
);
export const WorkflowCancelBody = Type.Optional(ref(WorkflowCancelRequest));
export type WorkflowCancelBody = Static<typeof WorkflowCancelBody>;

export const WorkflowParams = Type.Object({ id: WorkflowId }, { additionalProperties: false });
export type WorkflowParams = Static<typeof WorkflowParams>;

export const WorkflowListQuery = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_WORKFLOW_NAME, pattern: NAME_PATTERN, description: 'Only instances of this workflow' })),
    status: Type.Optional(StringEnum<WorkflowStatus>(WORKFLOW_STATUSES, 'Only instances of this status')),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE, default: DEFAULT_PAGE, description: 'Most instances on one page' })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'nextCursor of the previous page' })),
  },
  { additionalProperties: false },
);
export type WorkflowListQuery = Static<typeof WorkflowListQuery>;

/** How long a wait may last (`timeoutMs` of the wait routes): longer than most proxies keep a quiet request, on purpose no longer. */
export const MAX_WAIT_MS = 120_000;
export const DEFAULT_WAIT_MS = 30_000;
/** The longest tag name a wait may name. */
export const MAX_TAG_CHARS = 200;
const WAIT_CONDITION_PATTERN = `^(done|tag:.{1,${MAX_TAG_CHARS}})$`;
/**
 * What each pattern of the API asks, in words: a refused value's message
 * says this instead of the regular expression (server/validation.ts).
 */
export const PATTERN_WORDS: ReadonlyMap<string, string> = new Map([
  [NAME_PATTERN, 'must be of A-Z a-z 0-9 . _ : - only'],
  [PATH_NAME_PATTERN, 'must be of A-Z a-z 0-9 . _ : - only, and not . or .. (which a URL path resolves to another path)'],
  [ULID_PATTERN, 'must be an id as the API gives them (a ULID: 26 of 0-9 and A-Z but I, L, O, U, in capitals, the first from 0 to 7)'],
  [IDEMPOTENCY_KEY_PATTERN, 'must be printable ASCII (from space to ~), with no space at either end'],
  [WAIT_CONDITION_PATTERN, `must be done or tag:<tag> (a tag of 1 to ${MAX_TAG_CHARS} characters)`],
  [KEY_NAME_PATTERN.source, 'must be of A-Z a-z 0-9 . _ : - only, starting with a letter or digit'],
]);

const WaitCondition = (description: string) => Type.String({ maxLength: MAX_TAG_CHARS + 4, pattern: WAIT_CONDITION_PATTERN, description });
const WaitTimeout = (description: string) => Type.Integer({ minimum: 0, maximum: MAX_WAIT_MS, description });

/** The most events `GET /v1/workflows/:id/events` answers at once (`last`, `limit`). */
export const MAX_WORKFLOW_EVENTS_LAST = 10_000;
/** The events a page of `GET /v1/workflows/:id/events` holds without a `limit`. */
export const DEFAULT_WORKFLOW_EVENTS_PAGE = 1_000;

export const WorkflowEventsQuery = Type.Object(
  {
    last: Type.Optional(Type.Integer({
      minimum: 1, maximum: MAX_WORKFLOW_EVENTS_LAST,
      description: 'Only the instance\'s last `last` events (still oldest first; their `seq` says how many came before). Not with `after` or `limit`',
    })),
    after: Type.Optional(Type.Integer({
      minimum: 0, maximum: Number.MAX_SAFE_INTEGER,
      description: 'Only events after this seq: the `next` of the previous page (0, the default, from the start)',
    })),
    limit: Type.Optional(Type.Integer({
      minimum: 1, maximum: MAX_WORKFLOW_EVENTS_LAST,
      description: `Most events on one page (default ${DEFAULT_WORKFLOW_EVENTS_PAGE.toLocaleString('en-US')})`,
    })),
  },
  { additionalProperties: false },
);
export type WorkflowEventsQuery = Static<typeof WorkflowEventsQuery>;

export const WorkflowWaitQuery = Type.Object(
  {
    until: Type.Optional(WaitCondition(
      'done (the default): until the instance has ended, whatever its status; tag:NAME: until it is in a state tagged NAME (XState state tags)',
    )),
    timeoutMs: Type.Optional(WaitTimeout(`How long to wait, in ms; then 408. 0 checks once without waiting. Default ${DEFAULT_WAIT_MS}, at most ${MAX_WAIT_MS}`)),
  },
  { additionalProperties: false },
);
export type WorkflowWaitQuery = Static<typeof WorkflowWaitQuery>;

export const StartWorkflowQuery = Type.Object(
  {
    wait: Type.Optional(WaitCondition(
      'Answer only once the new instance meets this condition, as GET /v1/workflows/{id}/wait?until= (done, or tag:NAME); absent: answer at once',
    )),
    timeoutMs: Type.Optional(WaitTimeout(`With wait: how long to wait, in ms; then 408 (the instance is started all the same). Default ${DEFAULT_WAIT_MS}, at most ${MAX_WAIT_MS}`)),
  },
  { additionalProperties: false },
);
export type StartWorkflowQuery = Static<typeof StartWorkflowQuery>;

export const WorkflowView = Type.Object({
  id: WorkflowId,
  name: Type.String({ description: 'The workflow\'s name' }),
  definitionVersion: Type.Integer({ minimum: 1, description: 'The version of the workflow\'s definition the instance runs (it keeps the one it started with)' }),
  version: Type.Integer({ minimum: 1, description: 'The last event\'s seq (1 after the start)' }),
  status: ref(WorkflowStatusSchema),
  value: Type.Unknown({ description: 'The machine\'s state value: a state name, or an object of them for nested and parallel states' }),
  context: Type.Unknown({ description: 'The machine\'s context' }),
  input: Type.Unknown({ description: 'The input the instance started with' }),
  output: Type.Unknown({ description: 'The machine\'s output once done, else null' }),
  error: Type.Unknown({ description: 'Why it ended in error (the failed child\'s error), else null' }),
  children: Type.Array(Type.Object({
    invokeId: Type.String({ description: 'The invocation\'s id in the machine' }),
    jobId: JobId,
    jobType: Type.String({ description: 'The job type it runs as' }),
    state: Nullable(ref(JobStateSchema), 'The job\'s state now; null when the job is gone (deleted)'),
  }, { description: 'A live invocation: the job running it' }), { description: 'The live invocations and their jobs' }),
  timers: Type.Array(Type.Object({
    id: Type.String({ description: 'The delayed event\'s id (xstate.after.<delay>.<state> for after)' }),
    dueAt: IsoTime('When it fires'),
  }, { description: 'A delayed event waiting to fire' }), { description: 'The pending timers, soonest first as set' }),
  accepts: Type.Array(Type.String(), { description: 'The event types a transition of the states it is in names, for a signal (POST /v1/workflows/{id}/events): a guard may still refuse one; empty once ended' }),
  idempotencyKey: Nullable(Type.String(), 'The idempotencyKey the instance was started with, else null'),
  createdAt: IsoTime('Start time'),
  updatedAt: IsoTime('Last step'),
}, { $id: 'Workflow', description: 'A workflow instance: its machine\'s state, its live children and timers, and the signals it takes now' });
export type WorkflowView = Static<typeof WorkflowView>;

export const WorkflowPage = Type.Object({
  workflows: Type.Array(ref(WorkflowView), { description: 'Instances, newest first' }),
  nextCursor: Nullable(Type.String(), 'Pass as cursor for the next page; null at the end'),
}, { $id: 'WorkflowPage', description: 'One page of workflow instances' });
export type WorkflowPage = Static<typeof WorkflowPage>;

export const WorkflowEventView = Type.Object({
  seq: Type.Integer({ minimum: 1, description: 'Position in the instance\'s history, from 1' }),
  type: StringEnum<WorkflowEventType>(WORKFLOW_EVENT_TYPES, 'What entered the instance: START, SIGNAL (the API), CHILD (a child job ended), TIMER, CANCEL, MIGRATE (moved to a newer definition version) or MESSAGE (another instance sent it)'),
  at: IsoTime('When it was recorded'),
  data: Type.Unknown({ description: 'What replay needs: the input, the signal\'s event (and its idempotencyKey, if sent with one), the child\'s outcome, the timer, the reason; and jobIds, the jobs the step started' }),
  status: ref(WorkflowStatusSchema),
  value: Type.Unknown({ description: 'The machine\'s state value after the step' }),
}, { $id: 'WorkflowEvent', description: 'One step of a workflow instance, from its history' });
export type WorkflowEventView = Static<typeof WorkflowEventView>;

export const WorkflowEventList = Type.Object({
  events: Type.Array(ref(WorkflowEventView), { description: 'A page of the history, oldest first' }),
  next: Nullable(Type.Integer({ minimum: 1 }), 'Pass as `after` for the next page; null when the history, as read, ended on this one (and with `last`)'),
}, { $id: 'WorkflowEventList', description: 'A workflow instance\'s history, a page at a time' });

export const WorkflowVerifyView = Type.Object({
  ok: Type.Boolean({ description: 'true: replaying the history through the definition gives the stored state' }),
  events: Type.Integer({ minimum: 0, description: 'Events replayed' }),
  problem: Type.Optional(Type.String({ description: 'When not ok: the first difference found' })),
}, { $id: 'WorkflowVerification', description: 'Whether the instance\'s history replays to its stored state' });
export type WorkflowVerifyView = Static<typeof WorkflowVerifyView>;

/** A 409 of a signal or cancel: the error, and the event types the instance takes now. */
export const WorkflowRefusal = Type.Object({
  code: ErrorCode('ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED or ATS_ERR_WORKFLOW_ENDED (or another 409)'),
  message: Type.String({ description: 'What went wrong, for a person; may change between versions' }),
  accepts: Type.Optional(Type.Array(Type.String(), { description: 'The event types a transition of the states it is in names (a guard may still refuse one); empty once it ended' })),
}, { $id: 'WorkflowRefusal', description: 'The error of a refused signal or cancel, with the event types the instance takes now' });

/** The named schemas of the `/v1/workflows` routes: `app.ts` adds them only when it serves those routes. */
export const WORKFLOW_SCHEMAS: readonly TSchema[] = Object.freeze([
  WorkflowStatusSchema, StartWorkflowBody, SignalBody, WorkflowCancelRequest, WorkflowView, WorkflowPage, WorkflowEventView, WorkflowEventList,
  WorkflowVerifyView, WorkflowRefusal,
]);

/** The named schemas of the `/v1/limits` routes: `app.ts` adds them only when it serves those routes. */
export const LIMIT_SCHEMAS: readonly TSchema[] = Object.freeze([LimitRate, PutLimitBody, LimitView, LimitList]);

/** The named schemas of `GET /v1/workers`: `app.ts` adds them only when it serves that route. */
export const WORKER_SCHEMAS: readonly TSchema[] = Object.freeze([WorkerView, WorkerList]);

/**
 * The named schemas of the schedule routes: `app.ts` adds them to
 * `SHARED_SCHEMAS` only when it serves those routes, so a document without
 * them holds no unused component.
 */
export const SCHEDULE_SCHEMAS: readonly TSchema[] = Object.freeze([
  CreateScheduleBody, UpdateScheduleBody, ScheduleView, ScheduleTickView, ScheduleDetail, ScheduleList,
]);

/**
 * Every named schema, for `app.addSchema` and the request validators (a
 * schema's `$ref`s resolve through this list).
 */
export const SHARED_SCHEMAS: readonly TSchema[] = Object.freeze([
  JobStateSchema, ExponentialIn, FixedIn, BackoffIn, BackoffOut, SubmitBody, CancelRequest, RedriveRequest, ErrorBody, JobError,
  JobView, EventView, JobDetail, JobPage, StatsView, CallerView, MachineView, HealthView, ReadyView, BatchResult, BatchResponse,
  EdgeStatsView, OutboxStatsView, EtaView, ProgressView, WaitingView, InsightsView, JobVerifyView,
]);

/** A response schema with the description OpenAPI shows for it. */
export const described = <T extends object>(schema: T, description: string): T => ({ ...schema, description });

/**
 * A response that carries a `Location` header naming what it answers: a relative reference
 * (server/location.ts; `jobs/{id}` from `POST /v1/jobs`), which resolved against the request's URL
 * is the resource's, under a reverse proxy's path prefix too. A response header of the OpenAPI
 * document (@fastify/swagger reads `headers`; the serializer ignores it). server/openapi.ts marks it required.
 */
export const withLocation = <T extends object>(schema: T, what: string): T => ({
  ...schema,
  headers: {
    Location: {
      type: 'string', pattern: '^[^/:?#]+(/[^?#]*)?$',
      description: `The URL of ${what}, to GET it: a relative reference (e.g. \`jobs/{id}\` from \`POST /v1/jobs\`), to resolve against the URL the request was sent to, as fetch, browsers and \`curl -L\` do; under a reverse proxy's path prefix it stays in it. A name in it is percent-encoded`,
    },
  },
});

/**
 * What any route of the API can answer before it runs (server/auth.ts, server/security.ts): 401
 * without a working key, 403 without the scope (or from a foreign Origin), 421 for a Host it does
 * not answer, 429 over the rate limit. The key check reads the key from the database, so it
 * answers 503 ATS_ERR_STORE_UNAVAILABLE when the database is down (see `ALWAYS_STATUSES` too).
 */
const GUARD_STATUSES = [401, 403, 421, 429];

/**
 * What every route, public ones included, can answer: 500, and 503 ATS_ERR_NOT_READY on a
 * connection kept open while the server shuts down (server/app.ts, the shutdown gate).
 */
const ALWAYS_STATUSES = [500, 503];

const errorsOf = (statuses: number[]) =>
  Object.fromEntries([...new Set([...statuses, ...ALWAYS_STATUSES])].sort((a, b) => a - b).map((s) => [s, described(ref(ErrorBody), `${STATUS_CODES[s]}: {code, message}`)]));

/**
 * The error statuses a route that takes a body answers before it runs (fastify parses the body
 * of every POST, PUT, PATCH and DELETE, whether the route reads one or not): 408 for a body that
 * goes silent for ATS_HTTP_BODY_TIMEOUT_MS (server/connections.ts), 413 over the body limit, 415
 * for a body that is not JSON (or is compressed).
 */
export const BODY_STATUSES = [408, 413, 415];

/** `{code, message}` for the error statuses a route can answer, those of the guards every route has, 500 and 503. */
export const errorResponses = (...statuses: number[]) => errorsOf([...statuses, ...GUARD_STATUSES]);

/** The same for the public routes (health): no key, any Host, no rate limit. */
export const publicErrorResponses = (...statuses: number[]) => errorsOf(statuses);

// ---------------------------------------------------------------- workflow graph

const WorkflowGraphNodeSchema = Type.Object({
  id: Type.String({ description: 'The state node\'s id: the machine\'s id and the keys down to it, dot-separated' }),
  key: Type.String({ description: 'Its key in its parent' }),
  parent: Nullable(Type.String(), 'The parent node\'s id; null for the root'),
  type: StringEnum(['atomic', 'compound', 'parallel', 'final', 'history'], 'The node\'s kind'),
  initial: Nullable(Type.String(), 'A compound state\'s initial child\'s id, else null'),
  children: Type.Array(Type.String(), { description: 'Its children\'s ids, in the machine\'s order' }),
  invoke: Type.Array(Type.Object({
    id: Type.String({ description: 'The invocation\'s id' }),
    src: Nullable(Type.String(), 'The actor\'s name in setup({ actors }), or null for an inline one'),
    jobType: Type.String({ description: 'The job type it runs as' }),
  }), { description: 'Its invocations: a job each, started when the state is entered' }),
  after: Type.Array(Type.Object({
    delay: Type.Union([Type.Number(), Type.String()], { description: 'In ms, or the name of a delay of setup({ delays })' }),
    event: Type.String({ description: 'The event it raises (xstate.after.<delay>.<state>)' }),
  }), { description: 'Its delayed transitions: durable timers set when it is entered' }),
  tags: Type.Array(Type.String(), { description: 'Its tags' }),
  description: Nullable(Type.String(), 'Its description, else null'),
}, { description: 'A state node of the workflow\'s machine' });

const WorkflowGraphEdgeSchema = Type.Object({
  source: Type.String({ description: 'The state node the transition is declared on' }),
  target: Nullable(Type.String(), 'The target node\'s id; null for a transition without target (its actions run, the state stays)'),
  event: Type.String({ description: 'The event type as XState names it (xstate.done.actor.<id>, xstate.after.<delay>.<state>, ...); empty for always' }),
  kind: StringEnum(['signal', 'done.actor', 'error.actor', 'done.state', 'after', 'always'], 'How the event comes: a signal, a child\'s end, a state\'s done, a timer, or eventless'),
  guard: Nullable(Type.String(), 'The guard\'s name (inline for a function); null without guard'),
  reenter: Type.Boolean({ description: 'Whether it exits and re-enters its target' }),
}, { description: 'A transition of the workflow\'s machine' });

export const WorkflowGraphView = Type.Object({
  id: Type.String({ description: 'The instance\'s id' }),
  name: Type.String({ description: 'The workflow\'s name' }),
  definitionVersion: Type.Integer({ minimum: 1, description: 'The definition version the instance runs, whose machine this is' }),
  status: ref(WorkflowStatusSchema),
  value: Type.Unknown({ description: 'The instance\'s state value' }),
  active: Type.Array(Type.String(), {
    description: 'The ids of the state nodes its state value names, the root first (for an instance that ended in error or was cancelled: those it was in then)',
  }),
  root: Type.String({ description: 'The root node\'s id' }),
  nodes: Type.Array(WorkflowGraphNodeSchema, { description: 'Every state node, parents before their children' }),
  edges: Type.Array(WorkflowGraphEdgeSchema, { description: 'Every transition' }),
  actors: Type.Array(Type.Object({
    name: Nullable(Type.String(), 'Its name in setup({ actors }), or null for an inline one'),
    jobType: Type.String({ description: 'The job type it runs as' }),
  }), { description: 'Every actor the machine may run, invoked or spawned' }),
  counts: Type.Object({
    instances: Type.Integer({ minimum: 0, description: 'The active instances counted' }),
    capped: Type.Boolean({ description: 'More active instances exist than were counted' }),
    nodes: Type.Array(Type.Object({
      id: Type.String({ description: 'A state node\'s id' }),
      active: Type.Integer({ minimum: 1, description: 'Active instances in it' }),
    }), { description: 'Each state node with an active instance in it, in the order of nodes' }),
  }, { description: 'Live counts: the tenant\'s active instances of this name and definition version, per state node' }),
  steps: Type.Array(Type.Object({
    seq: Type.Integer({ minimum: 1, description: 'The step\'s place in the history' }),
    type: StringEnum<WorkflowEventType>(WORKFLOW_EVENT_TYPES, 'What entered the instance'),
    status: ref(WorkflowStatusSchema),
    definitionVersion: Type.Integer({ minimum: 1, description: 'The definition version the instance ran after the step (an earlier one before a migration)' }),
    active: Type.Array(Type.String(), {
      description: 'The state nodes the step left the instance in, the root first; none for a step of an earlier definition version (its machine is not this one)',
    }),
  }), { description: 'The instance\'s history (its last steps), each with the states it left it in: time travel' }),
}, { $id: 'WorkflowGraph', description: 'A workflow instance\'s machine (its definition version) as a graph, with the states it is in' });
export type WorkflowGraphView = Static<typeof WorkflowGraphView>;

/** The named schemas of `GET /v1/workflows/:id/graph`: `app.ts` adds them with the workflow routes. */
export const WORKFLOW_GRAPH_SCHEMAS: readonly TSchema[] = Object.freeze([WorkflowGraphView]);
