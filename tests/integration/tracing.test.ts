/**
 * A job is one trace: the submit's server span, the relay's send span of each
 * dispatch and the worker's span of each attempt share the trace id, each a
 * child of the one before; a retry's attempt is in the same trace; a submit
 * carrying a `traceparent` joins the caller's trace; a handler's own spans
 * nest under its attempt; a schedule's tick and a workflow step the log drove
 * start a trace of their own for the jobs they submit. In process, on the embedded backends (SQLite and
 * the in-process log), the spans kept by an in-memory exporter.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { HandlerRegistry, registerDemoHandlers } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import { TRACEPARENT_HEADER } from '../../engine/messages.js';
import { TOPICS, type LogMessage } from '../../engine/ports.js';
import { ATTR, TRACER_NAME } from '../../engine/tracing.js';
import { ScheduleRunner } from '../../engine/schedules.js';
import { systemClock } from '../../engine/system.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { job } from '../../machines/workflow.js';
import { setup } from 'xstate';
import { FAST, isState, waitForJob } from '../helpers/system.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

/** For each `test.child` job: the span active when its handler started, and its own span. */
const seen = new Map<string, { active: string | undefined; own: string }>();
/** Two jobs one after the other: the first started with the instance, the second by the step the first's end takes. */
const twoSteps = setup({ actors: { echo: job('demo.echo') } }).createMachine({
  id: 'traced', initial: 'first',
  states: {
    first: { invoke: { id: 'one', src: 'echo', input: () => ({ step: 1 }), onDone: 'second' } },
    second: { invoke: { id: 'two', src: 'echo', input: () => ({ step: 2 }), onDone: 'finished' } },
    finished: { type: 'final' },
  },
});

const registry = registerDemoHandlers(new HandlerRegistry()).workflow('traced.flow', twoSteps)
  // Throws what has no text of its own: the attempt's span still records it.
  .register('test.nullproto', async () => { throw Object.assign(Object.create(null) as object, { code: 'E_BARE' }); })
  // Throws what cannot be asked whether it is an Error (instanceof throws), or an Error whose fields throw when read.
  .register('test.revoked', async () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    throw proxy;
  })
  .register('test.coded', async () => { throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }); })
  .register('test.getters', async () => {
    const e = new Error('hidden');
    for (const field of ['message', 'name', 'stack']) Object.defineProperty(e, field, { get() { throw new Error(`no ${field}`); } });
    throw e;
  })
  .register('test.child', async (_p, ctx) => {
  const active = trace.getActiveSpan()?.spanContext().spanId;
  return trace.getTracer('test-handler').startActiveSpan('handler.work', async (span) => {
    try {
      await new Promise((r) => setTimeout(r, 5));
      seen.set(ctx.jobId, { active, own: span.spanContext().spanId });
      return { ok: true };
    } finally {
      span.end();
    }
  });
});

let dir: string;
let system: System;
/** Every message the relay published. */
const published: LogMessage[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ats-tracing-'));
  const config = compileConfig({ ...FAST, dataDir: dir }, { hostname: 'test', pid: process.pid });
  system = await compose(config, {
    registry, logger: silentLogger,
    tracing: { tracer: provider.getTracer(TRACER_NAME), reportTo: () => undefined, shutdown: async () => undefined },
  });
  const publish = system.log.publish.bind(system.log);
  system.log.publish = async (messages) => {
    published.push(...messages.map((m) => ({ ...m, headers: { ...m.headers } })));
    return publish(messages);
  };
  await system.start();
});
after(async () => {
  await system?.stop();
  await provider.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The finished spans that match, once there are at least `n` (spans end a little after the job's state moves). */
async function spansWhere(ok: (s: ReadableSpan) => boolean, n: number, what: string): Promise<ReadableSpan[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = exporter.getFinishedSpans().filter(ok);
    if (found.length >= n) return found;
    if (Date.now() > deadline) {
      const names = exporter.getFinishedSpans().map((s) => `${s.name} ${JSON.stringify(s.attributes)}`);
      assert.fail(`${what}: ${found.length} of ${n} spans; finished: ${names.join('\n')}`);
    }
    await sleep(20);
  }
}

const ofJob = (id: string) => (s: ReadableSpan) => s.attributes[ATTR.jobId] === id;
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

/** True when `ancestor` is `span`'s parent, or its parent's, and so on, among the finished spans. */
function descends(span: ReadableSpan, ancestor: ReadableSpan): boolean {
  const byId = new Map(exporter.getFinishedSpans().map((s) => [s.spanContext().spanId, s]));
  let at: ReadableSpan | undefined = span;
  for (let i = 0; at && i < 20; i++) {
    const parent = parentOf(at);
    if (parent === ancestor.spanContext().spanId) return true;
    at = parent ? byId.get(parent) : undefined;
  }
  return false;
}

async function submit(body: unknown, headers: Record<string, string> = {}): Promise<string> {
  const res = await system.app!.inject({ method: 'POST', url: '/v1/jobs', payload: body as object, headers });
  assert.equal(res.statusCode, 201, res.body);
  return (res.json() as { id: string }).id;
}

describe('tracing on', () => {
  it('a submit, its dispatch and its attempt are one trace: submit → send → process, with the job attributes', async () => {
    const id = await submit({ type: 'demo.echo', payload: { hi: 1 } });
    await waitForJob(system.store, id, isState('done'));
    const [root] = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.SERVER, 1, 'submit span');
    const [send] = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.PRODUCER, 1, 'send span');
    const [attempt] = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.CONSUMER, 1, 'attempt span');
    assert.equal(root!.name, 'POST /v1/jobs');
    assert.equal(root!.parentSpanContext, undefined, 'a submit without traceparent starts a trace');
    assert.equal(root!.attributes[ATTR.httpStatus], 201);
    assert.equal(root!.attributes[ATTR.httpRoute], '/v1/jobs');
    assert.equal(send!.name, `send ${TOPICS.dispatch}`);
    assert.equal(attempt!.name, 'process demo.echo');

    const traceId = root!.spanContext().traceId;
    assert.equal(send!.spanContext().traceId, traceId);
    assert.equal(attempt!.spanContext().traceId, traceId);
    assert.equal(parentOf(send!), root!.spanContext().spanId, 'the send continues the submit');
    assert.equal(parentOf(attempt!), send!.spanContext().spanId, 'the attempt continues the send');
    assert.ok(descends(attempt!, root!));

    assert.deepEqual(
      { type: attempt!.attributes[ATTR.jobType], queue: attempt!.attributes[ATTR.jobQueue], attempt: attempt!.attributes[ATTR.jobAttempt], outcome: attempt!.attributes[ATTR.jobOutcome] },
      { type: 'demo.echo', queue: 'default', attempt: 1, outcome: 'succeeded' },
    );
    assert.equal(attempt!.attributes['messaging.operation.type'], 'process');
    assert.equal(attempt!.attributes['messaging.consumer.group.name'], system.config.worker.groupId);
    assert.equal(attempt!.attributes['messaging.message.id'], send!.attributes['messaging.message.id'], 'both name the outbox row');
    assert.match(String(send!.attributes['messaging.message.id']), /^[1-9][0-9]*$/);
    assert.equal(attempt!.status.code, SpanStatusCode.UNSET);

    // Stored with the job: the submit's context. On the wire: the send's.
    const job = await system.store.getJob(id);
    assert.equal(job!.traceContext?.traceparent, `00-${traceId}-${root!.spanContext().spanId}-01`);
    const dispatch = published.find((m) => m.topic === TOPICS.dispatch && m.key === id);
    assert.equal(dispatch?.headers[TRACEPARENT_HEADER], `00-${traceId}-${send!.spanContext().spanId}-01`);
    const event = published.find((m) => m.topic === TOPICS.events && m.key === id);
    assert.ok(event && !Object.hasOwn(event.headers, TRACEPARENT_HEADER), 'only dispatches carry the trace');
  });

  it('a failed then retried job: both attempt spans in the submit’s trace, the first failed with its error', async () => {
    const id = await submit({ type: 'demo.fail', payload: { failTimes: 1 }, maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 10 } });
    await waitForJob(system.store, id, isState('done'));
    const [root] = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.SERVER, 1, 'submit span');
    const attempts = (await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.CONSUMER, 2, 'attempt spans'))
      .sort((a, b) => Number(a.attributes[ATTR.jobAttempt]) - Number(b.attributes[ATTR.jobAttempt]));
    const sends = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.PRODUCER, 2, 'send spans');
    assert.equal(attempts.length, 2);
    assert.equal(sends.length, 2, 'the retry’s dispatch is published under a span of its own');
    const traceId = root!.spanContext().traceId;
    for (const s of [...attempts, ...sends]) {
      assert.equal(s.spanContext().traceId, traceId, `${s.name} is in the job's trace`);
      assert.ok(descends(s, root!), `${s.name} descends from the submit`);
    }
    const [first, second] = attempts;
    assert.equal(first!.attributes[ATTR.jobAttempt], 1);
    assert.equal(first!.attributes[ATTR.jobOutcome], 'failed');
    assert.equal(first!.status.code, SpanStatusCode.ERROR);
    assert.match(String(first!.status.message), /failure 1 of 1/);
    assert.ok(first!.events.some((e) => e.name === 'exception'), 'the failure is recorded as an exception event');
    assert.equal(second!.attributes[ATTR.jobAttempt], 2);
    assert.equal(second!.attributes[ATTR.jobOutcome], 'succeeded');
    assert.notEqual(parentOf(first!), parentOf(second!), 'each attempt continues its own dispatch');
  });

  it('a handler that throws a value without a prototype: its attempt fails, and its span records the value as text', async () => {
    const id = await submit({ type: 'test.nullproto', payload: null, maxAttempts: 1 });
    const job = await waitForJob(system.store, id, isState('dead'));
    assert.equal(job.snapshot.context.lastError?.message, "[Object: null prototype] { code: 'E_BARE' }");
    const [attempt] = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.CONSUMER, 1, 'attempt span');
    assert.equal(attempt!.attributes[ATTR.jobOutcome], 'failed');
    assert.equal(attempt!.status.code, SpanStatusCode.ERROR);
    assert.equal(attempt!.status.message, "[Object: null prototype] { code: 'E_BARE' }");
  });

  it('a handler that throws a revoked proxy, or an Error whose fields throw when read: its attempt fails, and its span records it', async () => {
    for (const [type, message] of [['test.revoked', '<Revoked Proxy>'], ['test.getters', null]] as const) {
      const id = await submit({ type, payload: null, maxAttempts: 1 });
      const job = await waitForJob(system.store, id, isState('dead'));
      const recorded = job.snapshot.context.lastError?.message;
      if (message !== null) assert.equal(recorded, message, type);
      const [attempt] = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.CONSUMER, 1, 'attempt span');
      assert.equal(attempt!.attributes[ATTR.jobOutcome], 'failed', type);
      assert.equal(attempt!.status.code, SpanStatusCode.ERROR, type);
      assert.equal(attempt!.status.message, recorded, type);
      assert.ok(attempt!.events.some((e) => e.name === 'exception'), `${type}: an exception event`);
    }
  });

  it('the exception event of an error with a code has the code as its type', async () => {
    const id = await submit({ type: 'test.coded', payload: null, maxAttempts: 1 });
    await waitForJob(system.store, id, isState('dead'));
    const [attempt] = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.CONSUMER, 1, 'attempt span');
    const exception = attempt!.events.find((e) => e.name === 'exception');
    assert.equal(exception?.attributes?.['exception.type'], 'ECONNREFUSED');
    assert.equal(exception?.attributes?.['exception.message'], 'connect ECONNREFUSED 127.0.0.1:9');
    assert.match(String(exception?.attributes?.['exception.stacktrace']), /^Error: connect ECONNREFUSED 127\.0\.0\.1:9\n\s+at /);
  });

  it('a submit carrying a traceparent joins the caller’s trace', async () => {
    const callerTrace = '0af7651916cd43dd8448eb211c80319c';
    const callerSpan = 'b7ad6b7169203331';
    const id = await submit({ type: 'demo.echo', payload: 1 }, { traceparent: `00-${callerTrace}-${callerSpan}-01` });
    await waitForJob(system.store, id, isState('done'));
    const [root] = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.SERVER, 1, 'submit span');
    const [attempt] = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.CONSUMER, 1, 'attempt span');
    assert.equal(root!.spanContext().traceId, callerTrace);
    assert.equal(parentOf(root!), callerSpan);
    assert.equal(root!.parentSpanContext?.isRemote, true);
    assert.equal(attempt!.spanContext().traceId, callerTrace);
    assert.ok(descends(attempt!, root!));
  });

  it('a handler’s own span nests under its attempt span (the active span while it runs)', async () => {
    const id = await submit({ type: 'test.child', payload: null });
    await waitForJob(system.store, id, isState('done'));
    const [attempt] = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.CONSUMER, 1, 'attempt span');
    const got = seen.get(id);
    assert.ok(got, 'the handler ran');
    assert.equal(got.active, attempt!.spanContext().spanId, 'trace.getActiveSpan() in the handler is the attempt span');
    const [child] = await spansWhere((s) => s.spanContext().spanId === got.own, 1, 'the handler’s span');
    assert.equal(child!.name, 'handler.work');
    assert.equal(parentOf(child!), attempt!.spanContext().spanId);
    assert.equal(child!.spanContext().traceId, attempt!.spanContext().traceId);
  });

  it('a batch submit is one span, and each of its jobs runs in that trace', async () => {
    const res = await system.app!.inject({
      method: 'POST', url: '/v1/jobs/batch',
      payload: { jobs: [{ type: 'demo.echo', payload: 1 }, { type: 'demo.echo', payload: 2 }, { type: 'no.such.type', payload: 3 }] },
    });
    assert.equal(res.statusCode, 200, res.body);
    const results = (res.json() as { results: Array<{ status: number; id?: string }> }).results;
    assert.deepEqual(results.map((r) => r.status), [201, 201, 422]);
    const ids = results.slice(0, 2).map((r) => r.id!);
    for (const id of ids) await waitForJob(system.store, id, isState('done'));
    const batchSpans = await spansWhere((s) => s.name === 'POST /v1/jobs/batch', 1, 'batch span');
    assert.equal(batchSpans.length, 1);
    const [root] = batchSpans;
    assert.equal(root!.attributes[ATTR.jobCount], 2);
    for (const id of ids) {
      const [attempt] = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.CONSUMER, 1, `attempt span of ${id}`);
      assert.equal(attempt!.spanContext().traceId, root!.spanContext().traceId);
      assert.ok(descends(attempt!, root!));
    }
  });

  it('a cron schedule’s tick job is one trace too: schedule → send → process', async () => {
    const schedule = await system.schedules.create('default', {
      // Once a year: the process's own schedule runner, on the real clock, does not reach this tick while the
      // test runs (an every-minute schedule made just before a minute's end it would fire first).
      name: 'traced-tick', cron: '0 0 1 1 *', timezone: 'UTC', overlap: 'allow',
      job: { type: 'demo.echo', payload: { tick: true }, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0 },
    });
    // This pass runs at the schedule's first tick, on a clock of its own.
    const tickAt = schedule.nextAt!;
    const clock = { ...systemClock, now: () => tickAt + 1 };
    const runner = new ScheduleRunner({ store: system.store, transitions: system.transitions, clock, logger: silentLogger, tracer: provider.getTracer(TRACER_NAME) });
    assert.equal(await runner.runOnce(), 1);
    const id = (await system.schedules.get('default', 'traced-tick')).lastJobId!;
    await waitForJob(system.store, id, isState('done'));
    const [root] = await spansWhere((s) => s.name === 'schedule traced-tick', 1, 'schedule span');
    const [attempt] = await spansWhere((s) => ofJob(id)(s) && s.kind === SpanKind.CONSUMER, 1, 'attempt span');
    assert.equal(root!.parentSpanContext, undefined, 'a tick starts a trace');
    assert.equal(root!.attributes[ATTR.scheduleName], 'traced-tick');
    assert.equal(attempt!.spanContext().traceId, root!.spanContext().traceId);
    assert.ok(descends(attempt!, root!), 'the attempt descends from the tick');
    assert.equal((await system.store.getJob(id))!.traceContext?.traceparent, `00-${root!.spanContext().traceId}-${root!.spanContext().spanId}-01`);
  });

  it('a workflow’s jobs are traced: each in the trace of the step that started it', async () => {
    const res = await system.app!.inject({ method: 'POST', url: '/v1/workflows', payload: { name: 'traced.flow', input: null } });
    assert.equal(res.statusCode, 201, res.body);
    const id = (res.json() as { id: string }).id;
    const deadline = Date.now() + 10_000;
    while ((await system.workflows.get(id, 'default'))?.state.status !== 'done') {
      assert.ok(Date.now() < deadline, 'the instance ends');
      await sleep(20);
    }
    const children = (await system.store.listJobs({ limit: 100 })).filter((j) => j.parent?.workflowId === id);
    assert.equal(children.length, 2);
    // The second job was started by the step the first's end took (from the log, no request): a trace of its own.
    const second = children.find((j) => (j.payload as { step: number }).step === 2)!;
    const [attempt] = await spansWhere((s) => ofJob(second.id)(s) && s.kind === SpanKind.CONSUMER, 1, 'attempt span of the second job');
    const [root] = await spansWhere((s) => s.name === 'workflow traced.flow' && s.attributes[ATTR.workflowId] === id && s.spanContext().traceId === attempt!.spanContext().traceId, 1, 'the step span');
    assert.equal(root!.parentSpanContext, undefined);
    assert.ok(descends(attempt!, root!), 'the attempt descends from the step');
    for (const child of children) {
      const [a] = await spansWhere((s) => ofJob(child.id)(s) && s.kind === SpanKind.CONSUMER, 1, `attempt span of ${child.id}`);
      assert.equal((await system.store.getJob(child.id))!.traceContext?.traceparent.split('-')[1], a!.spanContext().traceId, 'stored with the job');
    }
  });

  it('a refused submit’s span has its 4xx status and is not marked failed', async () => {
    const res = await system.app!.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'no.such.type', payload: 1 } });
    assert.equal(res.statusCode, 422, res.body);
    const [span] = await spansWhere((s) => s.name === 'POST /v1/jobs' && s.attributes[ATTR.httpStatus] === 422, 1, 'refused submit span');
    assert.equal(span!.status.code, SpanStatusCode.UNSET);
    assert.equal(span!.attributes[ATTR.jobId], undefined);
  });
});
