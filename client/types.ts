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
  BatchItem as BatchItemSchema, BatchResult as BatchResultSchema, EventView as EventViewSchema,
  InsightsView as InsightsViewSchema, JobDetail as JobDetailSchema, JobPage as JobPageSchema, JobView as JobViewSchema, ListQuery as ListQuerySchema,
  MachineView as MachineViewSchema, StatsView as StatsViewSchema, SubmitBody as SubmitBodySchema,
} from '../server/schemas.js';
import type {
  StreamErrorMessage, StreamEventMessage, StreamFilter, StreamInsightMessage, StreamStatsMessage, StreamSubscribedMessage,
} from '../server/stream/protocol.js';

export type {
  ErrorCode, JobState, StreamErrorMessage, StreamEventMessage, StreamFilter, StreamInsightMessage, StreamStatsMessage, StreamSubscribedMessage,
};

/** The body of `POST /v1/jobs`. */
export type SubmitRequest = Static<typeof SubmitBodySchema>;
/** One item of `POST /v1/jobs/batch`: a submit body with its own `idempotencyKey`. */
export type BatchItem = Static<typeof BatchItemSchema>;
/** One answer of `POST /v1/jobs/batch`: `201`/`200` with `id` and `state`, or the item's 4xx `code` and `message`. */
export type BatchResult = Static<typeof BatchResultSchema>;
/** A job as the API shows it. */
export type JobView = Static<typeof JobViewSchema>;
/** One entry of a job's history. */
export type EventView = Static<typeof EventViewSchema>;
/** A job with its history (`GET /v1/jobs/:id`). */
export type JobDetail = Static<typeof JobDetailSchema>;
/** One page of `GET /v1/jobs`, newest first. */
export type JobPage = Static<typeof JobPageSchema>;
/** The query of `GET /v1/jobs`. */
export type ListQuery = Static<typeof ListQuerySchema>;
/** `GET /v1/stats`: job counts in total and per state, type and queue. */
export type Stats = Static<typeof StatsViewSchema>;
/** `GET /v1/insights`: what the advisor learned per job type and queue, and what it changes. */
export type Insights = Static<typeof InsightsViewSchema>;
/** `GET /v1/machine`: the job machine's states and edges. */
export type MachineView = Static<typeof MachineViewSchema>;
