/**
 * Traces: a job is one trace. The submit request's span (api) is stored with
 * the job as a W3C trace context (`JobRecord.traceContext`); every dispatch
 * of the job carries it as the `traceparent` (and `tracestate`) header; the
 * relay publishes each dispatch under a `send` span and the worker runs each
 * attempt under a `process` span, the active span while the handler runs.
 *
 * Only `@opentelemetry/api` here, which does nothing until an SDK is
 * registered (cli/tracing.ts does, when an exporter is configured). The
 * engine's roles trace only when handed a `Tracer` (an optional dependency):
 * without one they do no tracing work at all, and a job stores no context
 * and its messages carry no trace header.
 */
import {
  context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace,
  type Attributes, type Context, type Span, type TextMapGetter, type TextMapSetter, type Tracer,
} from '@opentelemetry/api';
import { OUTBOX_ID_HEADER, type LogMessage, type LogRecord, type TraceContext } from './ports.js';
import { TRACEPARENT_HEADER, TRACESTATE_HEADER } from './messages.js';
import { describeThrown, thrownField } from './thrown.js';

export type { Span, Tracer } from '@opentelemetry/api';

/** The instrumentation scope of the scheduler's spans. */
export const TRACER_NAME = 'ai-task-scheduler';

/** The tracer of the registered SDK (a no-op one when none is). */
export const getTracer = (): Tracer => trace.getTracer(TRACER_NAME);

/**
 * Span attribute names: the scheduler's own under `ats.job.*`, the rest from
 * the OpenTelemetry semantic conventions (messaging and HTTP).
 */
export const ATTR = Object.freeze({
  jobId: 'ats.job.id',
  jobType: 'ats.job.type',
  jobQueue: 'ats.job.queue',
  jobAttempt: 'ats.job.attempt',
  /** How the attempt ended: see {@link AttemptOutcome}. */
  jobOutcome: 'ats.job.outcome',
  /** Jobs a batch submit created or found. */
  jobCount: 'ats.job.count',
  /** The cron schedule whose tick submitted the job. */
  scheduleName: 'ats.schedule.name',
  /** The workflow instance whose step started the job, and its workflow's name. */
  workflowId: 'ats.workflow.id',
  workflowName: 'ats.workflow.name',
  messagingSystem: 'messaging.system',
  messagingOperationType: 'messaging.operation.type',
  messagingOperationName: 'messaging.operation.name',
  messagingDestination: 'messaging.destination.name',
  messagingPartition: 'messaging.destination.partition.id',
  messagingConsumerGroup: 'messaging.consumer.group.name',
  messagingMessageId: 'messaging.message.id',
  kafkaMessageKey: 'messaging.kafka.message.key',
  kafkaOffset: 'messaging.kafka.offset',
  httpMethod: 'http.request.method',
  httpRoute: 'http.route',
  httpStatus: 'http.response.status_code',
  errorType: 'error.type',
} as const);

/** `ats.job.outcome`: the outcome the worker records, or why it recorded none. */
export type AttemptOutcome = 'succeeded' | 'failed' | 'timeout' | 'cancelled' | 'lease-lost' | 'shutdown';

/** Reads only the two trace headers, from plain objects or node's header objects (string or string[] values). */
const getter: TextMapGetter<Readonly<Record<string, string | string[] | undefined>>> = {
  keys: () => [TRACEPARENT_HEADER, TRACESTATE_HEADER],
  get: (carrier, key) =>
    (key === TRACEPARENT_HEADER || key === TRACESTATE_HEADER) && Object.hasOwn(carrier, key) ? carrier[key] : undefined,
};

/** Writes only the two trace headers (a propagator may offer others, e.g. baggage). */
const setter: TextMapSetter<{ traceparent?: string; tracestate?: string }> = {
  set: (carrier, key, value) => {
    if (key === TRACEPARENT_HEADER) carrier.traceparent = value;
    else if (key === TRACESTATE_HEADER) carrier.tracestate = value;
  },
};

/** Longest `tracestate` kept (the W3C limit): a longer one is dropped, the trace still continues. */
const MAX_TRACESTATE = 512;

/**
 * The trace context of the span active in `ctx` (the current context by
 * default), as the registered propagator writes it; undefined when no span
 * is active or no propagator is registered (tracing off).
 */
export function traceContextOf(ctx: Context = context.active()): TraceContext | undefined {
  if (!trace.getSpan(ctx)) return undefined;
  const carrier: { traceparent?: string; tracestate?: string } = {};
  propagation.inject(ctx, carrier, setter);
  if (!carrier.traceparent) return undefined;
  const { traceparent, tracestate } = carrier;
  return tracestate && tracestate.length <= MAX_TRACESTATE ? { traceparent, tracestate } : { traceparent };
}

/** A context whose parent is the trace context in `carrier` (headers, or a stored TraceContext); the root context if it has none. */
export function contextFrom(carrier: Readonly<Record<string, string | string[] | undefined>> | TraceContext | undefined): Context {
  if (!carrier) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, carrier as Readonly<Record<string, string | string[] | undefined>>, getter);
}

/** Runs `fn` with `span` as the active span (spans started inside become its children). */
export function inSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/** Marks the span failed with the error (an exception event and an ERROR status). */
export function recordError(span: Span, err: unknown): void {
  // Whatever was thrown (a string, an object without a prototype, a revoked proxy, an Error whose
  // message or name throws when read) as its text: the exporter is given plain strings, read once here.
  const { message, name, stack } = describeThrown(err, { message: 8000, name: 200, stack: 8000 });
  const type = name || 'Error';
  // Its code (ECONNREFUSED, ATS_ERR_...), which the exception event takes as its type, as for an Error.
  const code = thrownField(err, 'code');
  span.recordException({
    name: type, message, ...(stack ? { stack } : {}), ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
  });
  span.setAttribute(ATTR.errorType, type);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/**
 * Runs `fn` under the span of a new trace, named `name`, giving it that
 * span's trace context to store with the jobs it submits: for jobs no request
 * starts (a schedule's tick), so that each is one trace all the same. A
 * PRODUCER span, as a submit's is the parent of the dispatches' sends.
 */
export async function withSubmitterSpan<T>(
  tracer: Tracer, name: string, attributes: Attributes, fn: (traceContext: TraceContext | undefined) => Promise<T>,
): Promise<T> {
  const span = tracer.startSpan(name, { kind: SpanKind.PRODUCER, attributes, root: true });
  try {
    return await fn(traceContextOf(trace.setSpan(ROOT_CONTEXT, span)));
  } catch (err) {
    recordError(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/**
 * The trace context for jobs about to be submitted: the active span's (the
 * request that caused them), else that of a new trace's span named `name`,
 * started and ended here (a step the log or the timers drove has no caller).
 */
export function submitterTrace(tracer: Tracer, name: string, attributes: Attributes): TraceContext | undefined {
  const active = traceContextOf();
  if (active) return active;
  const span = tracer.startSpan(name, { kind: SpanKind.PRODUCER, attributes, root: true });
  try {
    return traceContextOf(trace.setSpan(ROOT_CONTEXT, span));
  } finally {
    span.end();
  }
}

// ---------------------------------------------------------------- api

/** What an HTTP request's span needs from it. */
export interface RequestInfo {
  method: string;
  /** The route template, e.g. `/v1/jobs`. */
  route: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

/**
 * Runs `fn` under a server span for the request, named `METHOD route`: a
 * child of the caller's span when the request carries a `traceparent`, a new
 * trace otherwise. An error thrown with an HTTP `status` of 5xx (or none)
 * marks the span failed; a 4xx is the caller's, and leaves it unset.
 */
export async function withRequestSpan<T>(tracer: Tracer, req: RequestInfo, fn: (span: Span) => Promise<T>): Promise<T> {
  const attributes: Attributes = { [ATTR.httpMethod]: req.method, [ATTR.httpRoute]: req.route };
  const parent = contextFrom(req.headers);
  const span = tracer.startSpan(`${req.method} ${req.route}`, { kind: SpanKind.SERVER, attributes }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    const status = (err as { status?: unknown } | null)?.status;
    if (typeof status === 'number') span.setAttribute(ATTR.httpStatus, status);
    if (typeof status !== 'number' || status >= 500) recordError(span, err);
    throw err;
  } finally {
    span.end();
  }
}

// ---------------------------------------------------------------- relay

/**
 * Starts a `send` span for each message that carries a trace context (a
 * dispatch of a traced job), as a child of that context, and writes the
 * span's own context into the message's headers in its place: the consumer's
 * span becomes a child of the send. Returns the spans to end once the log
 * acknowledged (or refused) the batch.
 */
export function startSendSpans(tracer: Tracer, messages: readonly LogMessage[]): Span[] {
  const spans: Span[] = [];
  for (const m of messages) {
    if (!Object.hasOwn(m.headers, TRACEPARENT_HEADER)) continue;
    const span = tracer.startSpan(`send ${m.topic}`, {
      kind: SpanKind.PRODUCER,
      attributes: {
        [ATTR.messagingOperationType]: 'send', [ATTR.messagingOperationName]: 'send',
        [ATTR.messagingDestination]: m.topic, [ATTR.kafkaMessageKey]: m.key, [ATTR.jobId]: m.key,
        ...(Object.hasOwn(m.headers, OUTBOX_ID_HEADER) ? { [ATTR.messagingMessageId]: m.headers[OUTBOX_ID_HEADER] } : {}),
      },
    }, contextFrom(m.headers));
    const carrier: { traceparent?: string; tracestate?: string } = {};
    propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter);
    if (carrier.traceparent) {
      m.headers[TRACEPARENT_HEADER] = carrier.traceparent;
      if (carrier.tracestate) m.headers[TRACESTATE_HEADER] = carrier.tracestate;
      else delete m.headers[TRACESTATE_HEADER];
    }
    spans.push(span);
  }
  return spans;
}

/** Ends the send spans; with `err`, as failed. */
export function endSpans(spans: readonly Span[], err?: unknown): void {
  for (const span of spans) {
    if (err !== undefined) recordError(span, err);
    span.end();
  }
}

// ---------------------------------------------------------------- worker

export interface AttemptInfo {
  jobId: string;
  type: string;
  queue: string;
  attempt: number;
  /** The job's stored trace context: the parent when the message carries none. */
  traceContext?: TraceContext;
  /** The dispatch as read from the log, when there is one. */
  record?: LogRecord;
  /** The consumer group the worker reads in. */
  groupId: string;
}

/**
 * Starts the span of one attempt, `process <job type>`: a child of the
 * dispatch's `traceparent` (the relay's send span), else of the job's stored
 * context, else a new trace.
 */
export function startAttemptSpan(tracer: Tracer, a: AttemptInfo): Span {
  const attributes: Attributes = {
    [ATTR.jobId]: a.jobId, [ATTR.jobType]: a.type, [ATTR.jobQueue]: a.queue, [ATTR.jobAttempt]: a.attempt,
    [ATTR.messagingOperationType]: 'process', [ATTR.messagingOperationName]: 'process',
    [ATTR.messagingConsumerGroup]: a.groupId, [ATTR.kafkaMessageKey]: a.jobId,
  };
  const r = a.record;
  if (r) {
    attributes[ATTR.messagingDestination] = r.topic;
    attributes[ATTR.messagingPartition] = String(r.partition);
    attributes[ATTR.kafkaOffset] = Number(r.offset);
    if (Object.hasOwn(r.headers, OUTBOX_ID_HEADER)) attributes[ATTR.messagingMessageId] = r.headers[OUTBOX_ID_HEADER];
  }
  const parent = r && Object.hasOwn(r.headers, TRACEPARENT_HEADER) ? contextFrom(r.headers) : contextFrom(a.traceContext);
  return tracer.startSpan(`process ${a.type}`, { kind: SpanKind.CONSUMER, attributes }, parent);
}

/** Ends an attempt's span with its outcome; a failure or timeout with its error. */
export function endAttemptSpan(span: Span, outcome: AttemptOutcome, err?: unknown): void {
  span.setAttribute(ATTR.jobOutcome, outcome);
  if (err !== undefined) recordError(span, err);
  span.end();
}
