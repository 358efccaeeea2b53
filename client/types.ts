/**
 * The wire types of the REST API and the stream, taken from where the server
 * declares them: TypeBox schemas (`server/schemas.ts`, through `Static<>`) and
 * the stream protocol (`server/stream/protocol.ts`). Type-only imports: no
 * server code runs in, or is bundled with, the client.
 */
import type { Static } from '@sinclair/typebox';
import type { ErrorCode } from '../engine/errors.js';
import type { JobState } from '../machines/job.machine.js';
import type {
  BatchItem as BatchItemSchema, BatchResult as BatchResultSchema, CallerView as CallerViewSchema, CreateScheduleBody as CreateScheduleBodySchema, EventView as EventViewSchema,
  InsightsView as InsightsViewSchema, JobDetail as JobDetailSchema, JobVerifyView as JobVerifyViewSchema, LimitList as LimitListSchema, LimitView as LimitViewSchema,
  PutLimitBody as PutLimitBodySchema, JobPage as JobPageSchema, JobView as JobViewSchema, ListQuery as ListQuerySchema,
  MachineView as MachineViewSchema, ProgressView as ProgressViewSchema, ScheduleDetail as ScheduleDetailType, ScheduleList as ScheduleListSchema,
  ScheduleTickView as ScheduleTickViewSchema, ScheduleView as ScheduleViewSchema, StatsView as StatsViewSchema, SubmitBody as SubmitBodySchema,
  UpdateScheduleBody as UpdateScheduleBodySchema, WorkerList as WorkerListSchema, WorkerView as WorkerViewSchema,
  StartWorkflowBody as StartWorkflowBodySchema, WorkflowEventList as WorkflowEventListSchema, WorkflowEventView as WorkflowEventViewSchema,
  WorkflowListQuery as WorkflowListQuerySchema,
  WorkflowPage as WorkflowPageSchema, WorkflowVerifyView as WorkflowVerifyViewSchema, WorkflowView as WorkflowViewSchema,
} from '../server/schemas.js';
import type {
  AuditEntryView as AuditEntryViewSchema, AuditLog as AuditLogSchema, CreatedKeyView as CreatedKeyViewType, CreateKeyBody as CreateKeyBodySchema,
  KeyList as KeyListSchema, KeyView as KeyViewSchema,
} from '../server/key-schemas.js';
import type {
  StreamErrorMessage, StreamEventMessage, StreamFilter, StreamInsightMessage, StreamProgressMessage, StreamStatsMessage, StreamSubscribedMessage,
  StreamWorkflowMessage,
} from '../server/stream/protocol.js';

export type {
  ErrorCode, JobState, StreamErrorMessage, StreamEventMessage, StreamFilter, StreamInsightMessage, StreamProgressMessage, StreamStatsMessage,
  StreamSubscribedMessage, StreamWorkflowMessage,
};

/** The body of `POST /v1/jobs`. */
export type SubmitRequest = Static<typeof SubmitBodySchema>;
/** One item of `POST /v1/jobs/batch`: a submit body with its own `idempotencyKey`. */
export type BatchItem = Static<typeof BatchItemSchema>;
/** One answer of `POST /v1/jobs/batch`: `201`/`200` with `id` and `state`, or the item's own `status` (4xx, 500, 503), `code` and `message`. */
export type BatchResult = Static<typeof BatchResultSchema>;
/** A job as the API shows it. */
export type JobView = Static<typeof JobViewSchema>;
/** One entry of a job's history. */
export type EventView = Static<typeof EventViewSchema>;
/** A job with its history (`GET /v1/jobs/:id`), the advisor's `eta` and its latest `progress`. */
export type JobDetail = Static<typeof JobDetailSchema>;
/** The latest progress a job's handler reported (`JobDetail['progress']` when not null): a number from 0 to 100 or a JSON object, its attempt and time. */
export type JobProgress = Static<typeof ProgressViewSchema>;
/** One page of `GET /v1/jobs`, newest first. */
export type JobPage = Static<typeof JobPageSchema>;
/** The query of `GET /v1/jobs`. */
export type ListQuery = Static<typeof ListQuerySchema>;
/**
 * `GET /v1/stats`: job counts in total and per state, type and queue; and
 * `unserved` (on a server that reads the worker registry): the job types
 * per queue with jobs waiting to start that no live worker handles.
 */
export type Stats = Static<typeof StatsViewSchema>;
/** One entry of `Stats['unserved']`: jobs of `type` in `queue` waiting to start (`waiting`: pending or published) that no live worker handles. */
export type Unserved = NonNullable<Stats['unserved']>[number];
/** `GET /v1/insights`: what the advisor learned per job type and queue, and what it changes. */
export type Insights = Static<typeof InsightsViewSchema>;
/** `GET /v1/machine`: the job machine's states and edges. */
export type MachineView = Static<typeof MachineViewSchema>;


/** The body of `POST /v1/schedules`: a name, a cron expression (and time zone), and the job each tick submits (the fields of a submit but `runAt`). */
export type ScheduleRequest = Static<typeof CreateScheduleBodySchema>;
/**
 * The body of `PATCH /v1/schedules/:name`: the fields to change, at least
 * one. Job fields given replace the template's; a new cron or time zone, or a
 * resume (`paused: false`), counts the next run from now.
 */
export type SchedulePatch = Static<typeof UpdateScheduleBodySchema>;
/** A schedule as the API shows it: its expression, the job each tick submits (defaults filled in) and what its ticks did. */
export type Schedule = Static<typeof ScheduleViewSchema>;
/** `skip`: a tick whose previous job is still live is recorded as skipped, no job. `allow`: every tick submits. */
export type ScheduleOverlap = Schedule['overlap'];
/** Ticks whose time passed while no timers ran: `none` misses them, `latest` fires the newest, `all` fires each. */
export type ScheduleCatchUp = Schedule['catchUp'];
/** One fired tick: the job it submitted, or skipped. */
export type ScheduleTick = Static<typeof ScheduleTickViewSchema>;
/** `GET /v1/schedules/:name`: the schedule, its next 5 run times (none while paused) and its recent ticks, newest first. */
export type ScheduleDetail = ScheduleDetailType;
/** `GET /v1/schedules`: every schedule, by name (at most 1,000). */
export type ScheduleList = Static<typeof ScheduleListSchema>;

/**
 * A worker process as it registered itself (`GET /v1/workers`): host, pid, the
 * job types it handles, its queues (`*`: every queue), its concurrency, when
 * it started and was last seen, and `live` (seen within the last 15 s).
 */
export type Worker = Static<typeof WorkerViewSchema>;
/** `GET /v1/workers`: every registered worker, by id (at most 1,000). */
export type WorkerList = Static<typeof WorkerListSchema>;

/**
 * The body of `PUT /v1/limits/:key`: `concurrency` (attempts of the key
 * running at once, 0 to 100,000: 0 pauses the key, none of its jobs starts)
 * and/or `rate` (`max` starts per `intervalMs`, spaced evenly), at least one
 * not null. It replaces the key's whole limit: a field left out or null is no cap.
 */
export type LimitSpec = Static<typeof PutLimitBodySchema>;
/** A limit as the API shows it: its key, concurrency and rate (null: no cap), the attempts of the key `running` now, and ISO times. */
export type Limit = Static<typeof LimitViewSchema>;
/** `GET /v1/limits`: every limit, by key (at most 1,000). */
export type LimitList = Static<typeof LimitListSchema>;

/** The body of `POST /v1/keys`: a name (1 to 100 of A-Z a-z 0-9 . _ : -) and one or more scopes (submit, read, operate, admin). */
export type CreateKeyRequest = Static<typeof CreateKeyBodySchema>;
/** A key's scope: what it may do. */
export type KeyScope = CreateKeyRequest['scopes'][number];
/** An API key as listed: id, tenant, name, scopes, ISO times (`revokedAt` null while it works) and the key that made it; never its secret. */
export type ApiKey = Static<typeof KeyViewSchema>;
/** `POST /v1/keys`: the key created, with `key`, its secret (send as `Authorization: Bearer <key>`), shown this once only. */
export type CreatedApiKey = CreatedKeyViewType;
/** `GET /v1/keys`: the caller's tenant's keys, newest first (at most 1,000). */
export type ApiKeyList = Static<typeof KeyListSchema>;
/** `GET /v1/keys/self`: the key the request was made with (null without keys), its tenant and its scopes. */
export type Caller = Static<typeof CallerViewSchema>;
/** One entry of the audit log: when (ISO), which key (null: the open mode), the tenant, the action (`job.cancel`, `key.create`...) and its target (a job, workflow instance or key id). */
export type AuditEntry = Static<typeof AuditEntryViewSchema>;
/** `GET /v1/audit`: the caller's tenant's entries, newest first. */
export type AuditLog = Static<typeof AuditLogSchema>;

/** The body of `POST /v1/workflows`: a registered workflow's `name`, its `input` (default null) and an optional `idempotencyKey`. */
export type StartWorkflowRequest = Static<typeof StartWorkflowBodySchema>;
/**
 * A workflow instance as the API shows it: its machine's state `value`,
 * `context` and `output`, its `status`, its live `children` (their jobs and
 * states), its `timers`, and `accepts` (the event types a signal may have now).
 */
export type Workflow = Static<typeof WorkflowViewSchema>;
/** `active`, `done`, `error` or `cancelled`. */
export type WorkflowStatus = Workflow['status'];
/** One entry of an instance's history (`GET /v1/workflows/:id/events`). */
export type WorkflowEvent = Static<typeof WorkflowEventViewSchema>;
/** One page of an instance's history, oldest first; pass `next` as `after` for the next page (null at the end). */
export type WorkflowEventPage = Static<typeof WorkflowEventListSchema>;
/** One page of `GET /v1/workflows`, newest first. */
export type WorkflowPage = Static<typeof WorkflowPageSchema>;
/** The query of `GET /v1/workflows`: `name`, `status`, `limit`, `cursor`. */
export type WorkflowListQuery = Static<typeof WorkflowListQuerySchema>;
/** `GET /v1/jobs/:id/verify`: whether the job's history replays to its stored state, and each `problem` found when not. */
export type JobVerification = Static<typeof JobVerifyViewSchema>;
/** `GET /v1/workflows/:id/verify`: whether the history replays to the stored state, and the first `problem` when not. */
export type WorkflowVerification = Static<typeof WorkflowVerifyViewSchema>;
/**
 * What a wait waits for (`waitWorkflow`, and `startWorkflow`'s `wait`):
 * `done`, the instance's end (whatever its status), or `tag:NAME`, a state
 * tagged NAME (XState's `tags` on a state node).
 */
export type WorkflowWaitCondition = 'done' | `tag:${string}`;
/** A signal: an XState event, its `type` and any other fields. */
export type WorkflowSignal = { type: string } & Record<string, unknown>;
