/**
 * TypeBox schemas of the REST API (v1). They validate requests (see
 * `validation.ts`), shape responses (fast-json-stringify drops what a response
 * schema does not list, so every field shown must be here) and feed OpenAPI.
 */
import { STATUS_CODES } from 'node:http';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { JOB_STATES, USER_EVENT_TYPES, type JobEventType, type JobState } from '../machines/job.machine.js';
import { ERRORS } from '../engine/errors.js';

/** Job types and queue names: short, URL- and log-safe. */
export const NAME_PATTERN = '^[A-Za-z0-9._:-]+$';
/** A ULID as the engine issues it (canonical upper case; the first char ≤ 7 or it overflows 48 bits). */
export const ULID_PATTERN = '^[0-7][0-9A-HJKMNP-TV-Z]{25}$';
/** Printable ASCII, no leading or trailing space. */
export const IDEMPOTENCY_KEY_PATTERN = '^[\\x21-\\x7E]([\\x20-\\x7E]*[\\x21-\\x7E])?$';
/** The last representable instant we accept for `runAt` (9999-12-31T23:59:59.999Z). */
export const MAX_EPOCH_MS = 253_402_300_799_999;
export const DAY_MS = 86_400_000;

export const MAX_ATTEMPTS = 100;
export const MAX_PRIORITY = 1000;
export const MAX_PAGE = 500;
export const DEFAULT_PAGE = 50;

const Name = (description: string) => Type.String({ minLength: 1, maxLength: 200, pattern: NAME_PATTERN, description });
const Ms = (min: number, max: number, description: string) => Type.Integer({ minimum: min, maximum: max, description });
const IsoTime = (description: string) => Type.String({ format: 'date-time', description });

export const JobId = Type.String({ pattern: ULID_PATTERN, description: 'Job id (ULID)', minLength: 26, maxLength: 26 });
/** A string enum (TypeBox unions of literals become `anyOf`, whose errors say less). */
const StringEnum = <T extends string>(values: readonly T[], description?: string) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], ...(description ? { description } : {}) });

export const JobStateSchema = StringEnum<JobState>(JOB_STATES);
export const UserEventSchema = StringEnum<JobEventType>(USER_EVENT_TYPES);

// ---------------------------------------------------------------- backoff

const ExponentialIn = Type.Object(
  {
    kind: Type.Literal('exponential'),
    baseMs: Ms(1, DAY_MS, 'Delay before the first retry'),
    maxMs: Ms(1, 7 * DAY_MS, 'Upper bound of any delay (≥ baseMs)'),
    jitter: Type.Optional(StringEnum(['full', 'equal', 'none'] as const, 'Default full')),
  },
  { additionalProperties: false },
);
const FixedIn = Type.Object(
  { kind: Type.Literal('fixed'), delayMs: Ms(0, 7 * DAY_MS, 'Delay before every retry') },
  { additionalProperties: false },
);
export type BackoffInput = Static<typeof ExponentialIn> | Static<typeof FixedIn>;

/**
 * `oneOf` + `discriminator` (not TypeBox's `anyOf`) so a bad backoff gets the
 * error of the branch its `kind` names instead of "must match a schema in anyOf".
 */
export const BackoffIn = Type.Unsafe<BackoffInput>({
  type: 'object',
  required: ['kind'],
  discriminator: { propertyName: 'kind' },
  oneOf: [ExponentialIn, FixedIn],
  description: 'Retry backoff; defaults to the server\'s policy',
});

const BackoffOut = Type.Union([
  Type.Object({ kind: Type.Literal('exponential'), baseMs: Type.Integer(), maxMs: Type.Integer(), jitter: Type.String() }),
  Type.Object({ kind: Type.Literal('fixed'), delayMs: Type.Integer() }),
]);

// ---------------------------------------------------------------- requests

export const SubmitBody = Type.Object(
  {
    type: Name('Handler type, e.g. demo.echo'),
    payload: Type.Unknown({ description: 'Any JSON value, given to the handler' }),
    queue: Type.Optional(Name('Queue; defaults to the server\'s default queue')),
    runAt: Type.Optional(
      Type.Union([
        Type.String({ format: 'date-time', maxLength: 64 }),
        Type.Integer({ minimum: 0, maximum: MAX_EPOCH_MS }),
      ], { description: 'When the job is due: ISO 8601 date-time or epoch ms; default now' }),
    ),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_ATTEMPTS })),
    backoff: Type.Optional(BackoffIn),
    timeoutMs: Type.Optional(Ms(1, DAY_MS, 'Per-attempt timeout')),
    priority: Type.Optional(Type.Integer({ minimum: -MAX_PRIORITY, maximum: MAX_PRIORITY })),
  },
  { additionalProperties: false },
);
export type SubmitBody = Static<typeof SubmitBody>;

const IdempotencyKey = (description: string) =>
  Type.String({ minLength: 1, maxLength: 255, pattern: IDEMPOTENCY_KEY_PATTERN, description });

export const SubmitHeaders = Type.Object({
  'idempotency-key': Type.Optional(IdempotencyKey('Makes the submit repeatable')),
});

/** Most items one `POST /v1/jobs/batch` takes (one store transaction). */
export const MAX_BATCH = 1000;

/**
 * One item of a batch: the body of `POST /v1/jobs`, plus the `Idempotency-Key`
 * header as a field (named like the job's own `idempotencyKey`).
 */
export const BatchItem = Type.Object(
  {
    ...SubmitBody.properties,
    idempotencyKey: Type.Optional(IdempotencyKey('What the Idempotency-Key header is to POST /v1/jobs, for this item')),
  },
  { additionalProperties: false },
);
export type BatchItem = Static<typeof BatchItem>;

const batchOf = <T extends TSchema>(item: T) => Type.Object(
  { jobs: Type.Array(item, { minItems: 1, maxItems: MAX_BATCH, description: `1 to ${MAX_BATCH} jobs, each answered on its own` }) },
  { additionalProperties: false },
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

/** Optional body: `validation.ts` lets an absent body through because the schema is `Optional`. */
export const CancelBody = Type.Optional(
  Type.Object({ reason: Type.Optional(Type.String({ maxLength: 1000 })) }, { additionalProperties: false }),
);
export type CancelBody = Static<typeof CancelBody>;

export const ListQuery = Type.Object(
  {
    state: Type.Optional(JobStateSchema),
    type: Type.Optional(Name('Only jobs of this type')),
    queue: Type.Optional(Name('Only jobs of this queue')),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE, default: DEFAULT_PAGE })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'nextCursor of the previous page' })),
  },
  { additionalProperties: false },
);
export type ListQuery = Static<typeof ListQuery>;

// ---------------------------------------------------------------- responses

export const ErrorBody = Type.Object({
  code: StringEnum(Object.keys(ERRORS)),
  message: Type.String(),
});

const LastError = Type.Union([
  Type.Object({
    message: Type.String(),
    name: Type.Optional(Type.String()),
    retryable: Type.Boolean(),
    attempt: Type.Integer(),
  }),
  Type.Null(),
]);

export const JobView = Type.Object({
  id: JobId,
  type: Type.String(),
  queue: Type.String(),
  state: JobStateSchema,
  attempt: Type.Integer({ description: 'The last attempt started (0 before the first)' }),
  maxAttempts: Type.Integer(),
  payload: Type.Unknown(),
  result: Type.Unknown(),
  lastError: LastError,
  cancelReason: Type.Union([Type.String(), Type.Null()]),
  runAt: IsoTime('When the job is (or was) next due'),
  priority: Type.Integer(),
  timeoutMs: Type.Integer(),
  backoff: BackoffOut,
  idempotencyKey: Type.Union([Type.String(), Type.Null()]),
  version: Type.Integer({ description: 'The last event\'s seq' }),
  createdAt: IsoTime('Submit time'),
  updatedAt: IsoTime('Last transition'),
  allowed: Type.Array(UserEventSchema, { description: 'User events the machine accepts now' }),
});
export type JobView = Static<typeof JobView>;

export const EventView = Type.Object({
  seq: Type.Integer(),
  type: Type.String(),
  from: Type.Union([JobStateSchema, Type.Null()]),
  to: JobStateSchema,
  at: IsoTime('When the transition happened'),
  data: Type.Unknown(),
});
export type EventView = Static<typeof EventView>;

export const JobDetail = Type.Composite([JobView, Type.Object({ events: Type.Array(EventView) })]);
export type JobDetail = Static<typeof JobDetail>;

export const JobPage = Type.Object({
  jobs: Type.Array(JobView),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null at the end' }),
});

const Counts = Type.Record(Type.String(), Type.Integer());
export const StatsView = Type.Object({
  total: Type.Integer(),
  byState: Type.Object(Object.fromEntries(JOB_STATES.map((s) => [s, Type.Integer()]))),
  byType: Type.Record(Type.String(), Counts),
  byQueue: Type.Record(Type.String(), Counts),
});

export const MachineView = Type.Object({
  id: Type.String(),
  initial: JobStateSchema,
  states: Type.Array(Type.Object({ id: JobStateSchema, terminal: Type.Boolean(), description: Type.Optional(Type.String()) })),
  edges: Type.Array(Type.Object({ from: JobStateSchema, to: JobStateSchema, event: Type.String(), guard: Type.Optional(Type.String()) })),
});

export const HealthView = Type.Object({ status: Type.Literal('ok') });
export const ReadyView = Type.Object({
  database: Type.Literal('ok'),
  log: Type.Union([Type.Literal('ok'), Type.Literal('absent')], { description: 'absent: this process has no log check' }),
});

/**
 * One answer per batch item, in order: `status` is what `POST /v1/jobs` would
 * have answered for it (201 created, 200 the job its idempotencyKey created
 * before, or the item's 4xx with `code` and `message`). One flat object, not
 * a `oneOf`, so a thousand of them serialize fast.
 */
export const BatchResult = Type.Object({
  status: Type.Integer({ description: '201, 200, or the item\'s 4xx' }),
  id: Type.Optional(JobId),
  state: Type.Optional(JobStateSchema),
  code: Type.Optional(StringEnum(Object.keys(ERRORS))),
  message: Type.Optional(Type.String()),
});
export type BatchResult = Static<typeof BatchResult>;
export const BatchResponse = Type.Object({ results: Type.Array(BatchResult) });

/** A response schema with the description OpenAPI shows for it. */
export const described = <T extends object>(schema: T, description: string): T => ({ ...schema, description });

/** `{code, message}` for the error statuses a route can answer (and 500). */
export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries([...statuses, 500].map((s) => [s, described(ErrorBody, `${STATUS_CODES[s]}: {code, message}`)]));
