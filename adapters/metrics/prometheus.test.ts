/**
 * The Prometheus adapter on an embedded scheduler (SQLite, in-process log):
 * `/metrics` is well-formed text, every metric README.md lists is there after
 * a few jobs (one of which is retried), and the user-chosen labels stop at
 * their cap. Also: the label cap alone, and the hooks' reports of commits.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setup } from 'xstate';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { NonRetryableError } from '../../engine/errors.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { transitionWrite } from '../../engine/transitions.js';
import { silentLogger } from '../../engine/logger.js';
import { NAME_PATTERN } from '../../machines/job-bounds.js';
import { job } from '../../machines/workflow.js';
import { familyOf, parseExposition } from '../../tests/helpers/exposition.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { createProxiedTestStore, requireMysql } from '../../tests/helpers/mysql.js';
import { LabelCap, OTHER } from './labels.js';
import { PrometheusMetrics } from './prometheus.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('LabelCap: the first values pass, later ones are (other), seen ones stay themselves', () => {
  const cap = new LabelCap(2);
  assert.equal(cap.value('a'), 'a');
  assert.equal(cap.value('b'), 'b');
  assert.equal(cap.value('c'), OTHER);
  assert.equal(cap.value('a'), 'a');
  assert.equal(cap.value('d'), OTHER);
  assert.equal(cap.size, 2);
  assert.equal(cap.overflowed, 2);
  assert.throws(() => new LabelCap(-1), RangeError);
});

describe('/metrics of an embedded scheduler', () => {
  let dir: string;
  let system: System;
  let url: string;
  let text: string;
  let parsed: ReturnType<typeof parseExposition>;
  let attempts = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ats-metrics-'));
    const registry = new HandlerRegistry()
      .register('m.ok', async () => 'ok')
      .register('m.flaky', async (_p, ctx) => {
        attempts++;
        if (ctx.attempt === 1) throw new Error('first attempt fails');
        return 'ok';
      })
      .register('m.bad', async () => {
        throw new NonRetryableError('never works');
      });
    const config = compileConfig({ dataDir: dir, port: 0, logLevel: 'silent', timersPollMs: 20, relayPollMs: 20 });
    // A cap of 2: three types and three queues exceed it.
    system = await compose(config, { registry, logger: silentLogger, metrics: new PrometheusMetrics({ labelCap: 2, refreshMs: 0 }) });
    ({ url } = (await system.start()) as { url: string });
    const jobs = [
      { type: 'm.ok', queue: 'q1' }, { type: 'm.ok', queue: 'q2' }, { type: 'm.ok', queue: 'q3' },
      { type: 'm.flaky', queue: 'q1', backoff: { kind: 'fixed', delayMs: 30 } },
      { type: 'm.bad', queue: 'q1', maxAttempts: 1 },
    ];
    const r = await fetch(`${url}/v1/jobs/batch`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jobs: jobs.map((j) => ({ payload: {}, ...j })) }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    const ids = ((await r.json()) as { results: Array<{ id: string; status: number }> }).results.map((x) => x.id);
    for (const id of ids) {
      for (let i = 0; ; i++) {
        const j = await system.store.getJob(id);
        if (j && ['done', 'dead'].includes(j.snapshot.value)) break;
        assert.ok(i < 400, `job ${id} is ${j?.snapshot.value}`);
        await sleep(25);
      }
    }
    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    text = await res.text();
    parsed = parseExposition(text);
  });

  after(async () => {
    await system?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const samples = (name: string, labels: Record<string, string> = {}) =>
    parsed.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  const sum = (name: string, labels: Record<string, string> = {}) => samples(name, labels).reduce((a, s) => a + s.value, 0);

  test('the text parses, and every sample belongs to a family with a TYPE', () => {
    assert.ok(parsed.samples.length > 50, `${parsed.samples.length} samples`);
    for (const s of parsed.samples) assert.ok(parsed.types.has(familyOf(s.name, parsed.types)), `${s.name} has no # TYPE`);
    assert.ok(!/job_?id|01[0-9A-HJKMNP-TV-Z]{24}/i.test(text), 'no job id in any label');
  });

  test('every metric README.md lists is exported', () => {
    const expected: Array<[string, string]> = [
      ['ats_transitions_total', 'counter'], ['ats_attempts_total', 'counter'], ['ats_jobs', 'gauge'],
      ['ats_job_queue_wait_seconds', 'histogram'], ['ats_job_run_seconds', 'histogram'], ['ats_job_retry_delay_seconds', 'histogram'],
      ['ats_outbox_backlog', 'gauge'], ['ats_outbox_oldest_age_seconds', 'gauge'],
      ['ats_relay_publish_seconds', 'histogram'], ['ats_relay_batch_size', 'histogram'], ['ats_relay_publish_failures_total', 'counter'],
      ['ats_http_responses_total', 'counter'],
      ['ats_db_transaction_seconds', 'histogram'], ['ats_db_conflicts_total', 'counter'],
      ['ats_worker_slots_busy', 'gauge'], ['ats_worker_slots_free', 'gauge'], ['ats_worker_handlers_lingering', 'gauge'],
      ['ats_stream_clients', 'gauge'], ['ats_stream_slow_consumers_total', 'counter'],
      ['ats_label_values', 'gauge'], ['ats_metrics_collect_errors_total', 'counter'],
      ['ats_advisor_anomalies_total', 'counter'], ['ats_advisor_decisions_total', 'counter'], ['ats_schedule_ticks_total', 'counter'],
      ['nodejs_eventloop_lag_seconds', 'gauge'], ['nodejs_heap_size_used_bytes', 'gauge'], ['nodejs_gc_duration_seconds', 'histogram'],
      ['process_cpu_seconds_total', 'counter'],
    ];
    for (const [name, type] of expected) assert.equal(parsed.types.get(name), type, `# TYPE ${name} ${type}`);
    // Those the jobs fed have samples (conflicts and slow consumers need races and slow clients).
    for (const name of ['ats_transitions_total', 'ats_attempts_total', 'ats_jobs', 'ats_job_queue_wait_seconds_count', 'ats_job_run_seconds_count',
      'ats_job_retry_delay_seconds_count', 'ats_relay_publish_seconds_count', 'ats_relay_batch_size_count', 'ats_db_transaction_seconds_count',
      'ats_http_responses_total']) {
      assert.ok(sum(name) > 0, `${name} has samples: ${samples(name).length}`);
    }
  });

  test('the counts are those of the jobs run', () => {
    assert.equal(sum('ats_transitions_total', { from: 'none', event: 'SUBMITTED' }), 5);
    assert.equal(sum('ats_transitions_total', { to: 'done' }), 4);
    assert.equal(sum('ats_transitions_total', { to: 'dead' }), 1);
    assert.equal(sum('ats_transitions_total', { from: 'running', to: 'retrying', event: 'FAILED' }), 1);
    assert.equal(sum('ats_transitions_total', { from: 'retrying', to: 'pending', event: 'RETRY_DUE' }), 1);
    assert.equal(sum('ats_attempts_total', { outcome: 'succeeded' }), 4);
    assert.equal(sum('ats_attempts_total', { outcome: 'failed' }), 2, 'the flaky first attempt and the bad job');
    assert.equal(attempts, 2);
    assert.equal(sum('ats_job_retry_delay_seconds_count'), 1);
    assert.ok(sum('ats_job_retry_delay_seconds_sum') >= 0.03 - 0.001, 'the retry waited its 30 ms backoff');
    assert.equal(sum('ats_job_queue_wait_seconds_count'), 6, 'one per STARTED');
    assert.equal(sum('ats_job_run_seconds_count'), 6, 'one per handler run');
    assert.equal(sum('ats_jobs', { state: 'done' }), 4);
    assert.equal(sum('ats_jobs', { state: 'dead' }), 1);
    assert.equal(sum('ats_outbox_backlog'), samples('ats_outbox_backlog')[0]!.value);
    assert.equal(sum('ats_worker_slots_busy') + sum('ats_worker_slots_free'), system.config.worker.concurrency);
  });

  test('type and queue labels stop at the cap: the rest is "(other)"', () => {
    const types = new Set(samples('ats_transitions_total').map((s) => s.labels.type));
    const queues = new Set(samples('ats_transitions_total').map((s) => s.labels.queue));
    assert.equal(types.size, 3, `types: ${[...types]}`);
    assert.ok(types.has(OTHER));
    assert.equal(queues.size, 3, `queues: ${[...queues]}`);
    assert.ok(queues.has(OTHER));
    assert.equal(sum('ats_label_values', { label: 'type' }), 2);
    assert.equal(sum('ats_label_values', { label: 'queue' }), 2);
    for (const s of samples('ats_jobs')) {
      assert.ok(types.has(s.labels.type!) || s.labels.type === OTHER, `ats_jobs type ${s.labels.type}`);
    }
  });
});

test('a type or queue named "other" keeps its own label: the overflow label is none a type or queue can be', async () => {
  assert.ok(!new RegExp(NAME_PATTERN).test(OTHER), `${OTHER} is not a valid type or queue name`);
  const m = new PrometheusMetrics({ labelCap: 1, pairCap: 10, defaultMetrics: false });
  m.attemptRan('other', 'other', 5); // the first type and queue: labelled by name
  m.attemptRan('b', 'q', 5); // past both caps
  const counts = parseExposition(await m.metrics()).samples
    .filter((s) => s.name === 'ats_job_run_seconds_count')
    .map((s) => `${s.labels.type}/${s.labels.queue}=${s.value}`)
    .sort();
  assert.deepEqual(counts, [`${OTHER}/${OTHER}=1`, 'other/other=1'].sort());
});

test('relay publishes that failed: counted, apart from those that went out', async () => {
  const m = new PrometheusMetrics({ defaultMetrics: false });
  m.relayPublishFailed();
  m.relayPublishFailed();
  m.relayPublished(3, 5);
  const { samples } = parseExposition(await m.metrics());
  const value = (name: string) => samples.find((s) => s.name === name)?.value;
  assert.deepEqual([value('ats_relay_publish_failures_total'), value('ats_relay_batch_size_count')], [2, 1]);
});

test('(type, queue) pairs are capped too: beyond pairCap a new pair is labelled ((other), (other))', async () => {
  const m = new PrometheusMetrics({ labelCap: 10, pairCap: 2, defaultMetrics: false });
  m.attemptRan('a', 'q1', 5);
  m.attemptRan('a', 'q2', 5);
  m.attemptRan('b', 'q1', 5); // a third pair: both labels are under their own cap, the pair is not
  m.attemptRan('a', 'q1', 5); // a pair already labelled stays
  const counts = parseExposition(await m.metrics()).samples
    .filter((s) => s.name === 'ats_job_run_seconds_count')
    .map((s) => `${s.labels.type}/${s.labels.queue}=${s.value}`)
    .sort();
  assert.deepEqual(counts, ['a/q1=2', 'a/q2=1', `${OTHER}/${OTHER}=1`].sort());
});

test('the advisor\'s anomalies and decisions: counted by type, queue and metric (types capped), and by decision and whether applied', async () => {
  const m = new PrometheusMetrics({ labelCap: 1, defaultMetrics: false });
  const hooks = m.advisorHooks();
  assert.equal(m.advisorHooks(), hooks, 'registered once, however often asked');
  hooks.onAnomaly({ type: 'thumbnail.make', queue: 'default', metric: 'failure-rate', baseline: 0.02, observed: 0.3, at: 1 });
  hooks.onAnomaly({ type: 'thumbnail.make', queue: 'default', metric: 'failure-rate', baseline: 0.02, observed: 0.3, at: 2 });
  hooks.onAnomaly({ type: 'email.send', queue: 'default', metric: 'duration', baseline: 300, observed: 900, at: 3 });
  hooks.onDecision('no-retry', true);
  hooks.onDecision('lease', false);
  hooks.onDecision('lease', false);
  const samples = parseExposition(await m.metrics()).samples;
  const of = (name: string, key: (l: Record<string, string>) => string) =>
    samples.filter((s) => s.name === name).map((s) => `${key(s.labels)}=${s.value}`).sort();
  assert.deepEqual(of('ats_advisor_anomalies_total', (l) => `${l.type}/${l.queue}/${l.metric}`), [
    `${OTHER}/default/duration=1`, 'thumbnail.make/default/failure-rate=2',
  ]);
  assert.deepEqual(of('ats_advisor_decisions_total', (l) => `${l.decision}/${l.applied}`), ['lease/false=2', 'no-retry/true=1']);
});

test('the advisor\'s anomalies label (type, queue) through the pair table: beyond pairCap a new pair is ((other), (other))', async () => {
  const m = new PrometheusMetrics({ labelCap: 10, pairCap: 2, defaultMetrics: false });
  const hooks = m.advisorHooks();
  const anomaly = (type: string, queue: string) => hooks.onAnomaly({ type, queue, metric: 'failure-rate', baseline: 0.02, observed: 0.3, at: 1 });
  anomaly('a', 'q1');
  m.attemptRan('a', 'q2', 5); // a pair is a pair whichever metric labelled it first
  anomaly('b', 'q1'); // a third pair: both labels are under their own cap, the pair is not
  anomaly('b', 'q2');
  anomaly('a', 'q2');
  const counts = parseExposition(await m.metrics()).samples
    .filter((s) => s.name === 'ats_advisor_anomalies_total')
    .map((s) => `${s.labels.type}/${s.labels.queue}=${s.value}`)
    .sort();
  assert.deepEqual(counts, ['a/q1=1', 'a/q2=1', `${OTHER}/${OTHER}=2`].sort());
});

test('schedule ticks: counted by outcome as a pass fires them', async () => {
  const m = new PrometheusMetrics({ defaultMetrics: false });
  const onTicks = m.scheduleTicks();
  onTicks('submitted', 3);
  onTicks('skipped', 1);
  m.scheduleTicks()('missed', 10);
  const counts = parseExposition(await m.metrics()).samples
    .filter((s) => s.name === 'ats_schedule_ticks_total').map((s) => `${s.labels.outcome}=${s.value}`).sort();
  assert.deepEqual(counts, ['missed=10', 'skipped=1', 'submitted=3']);
});

test('jobs a workflow submits and cancels are counted: ats_transitions_total from="none", ats_attempts_total outcome="cancelled"', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-metrics-wf-'));
  let release = (): void => undefined;
  const held = new Promise<void>((r) => (release = r));
  const flow = setup({ actors: { work: job('wf.hold') } }).createMachine({
    id: 'hold', initial: 'working', states: { working: { invoke: { id: 'work', src: 'work', onDone: 'done' } }, done: { type: 'final' } },
  });
  const registry = new HandlerRegistry().register('wf.hold', () => held).workflow('wf.hold', flow);
  const config = compileConfig({ dataDir: dir, port: 0, logLevel: 'silent', timersPollMs: 20, relayPollMs: 20 });
  const system = await compose(config, { registry, logger: silentLogger, metrics: new PrometheusMetrics({ refreshMs: 0, defaultMetrics: false }) });
  try {
    await system.start();
    const started = await system.workflows.start({ tenant: 'default', name: 'wf.hold', input: null });
    assert.ok(started.ok);
    const child = started.workflow.state.children[0]!.jobId;
    for (let i = 0; (await system.store.getJob(child))?.snapshot.value !== 'running'; i++) {
      assert.ok(i < 400, 'the child job runs');
      await sleep(25);
    }
    assert.ok((await system.workflows.cancel(started.workflow.id, 'default')).ok);
    const parsed = parseExposition(await system.metrics.metrics());
    const sum = (name: string, labels: Record<string, string>) => parsed.samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
    assert.equal(sum('ats_transitions_total', { from: 'none', event: 'SUBMITTED', type: 'wf.hold' }), 1);
    assert.equal(sum('ats_transitions_total', { from: 'pending', event: 'STARTED', type: 'wf.hold' }), 1);
    assert.equal(sum('ats_transitions_total', { from: 'running', to: 'cancelled', event: 'CANCEL', type: 'wf.hold' }), 1);
    assert.equal(sum('ats_attempts_total', { outcome: 'cancelled', type: 'wf.hold' }), 1);
  } finally {
    release();
    await system.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ats_jobs obeys the (type, queue) pair cap, through the same pairs as the other metrics', async () => {
  const m = new PrometheusMetrics({ labelCap: 10, pairCap: 2, refreshMs: 0, defaultMetrics: false });
  m.attemptRan('a', 'q1', 5); // the first pair, labelled by the hooks
  const rows = [
    { type: 'a', queue: 'q1', state: 'pending' as const, n: 1 },
    { type: 'b', queue: 'q2', state: 'pending' as const, n: 2 }, // the second pair
    { type: 'a', queue: 'q2', state: 'done' as const, n: 3 }, // a third: each label under its cap, the pair over
    { type: 'b', queue: 'q1', state: 'done' as const, n: 4 }, // a fourth, folded with the third
    { type: 'b', queue: 'q2', state: 'done' as const, n: 5 },
  ];
  m.watchStore({ jobCounts: async () => rows, outboxBacklog: async () => ({ rows: 0, messages: 0, oldestAt: null }) }, { now: () => Date.now() });
  const of = (text: string, name: string) => parseExposition(text).samples.filter((s) => s.name === name)
    .map((s) => `${s.labels.state ? `${s.labels.state} ` : ''}${s.labels.type}/${s.labels.queue}=${s.value}`).sort();
  assert.deepEqual(of(await m.metrics(), 'ats_jobs'), ['done b/q2=5', `done ${OTHER}/${OTHER}=7`, 'pending a/q1=1', 'pending b/q2=2'].sort());
  m.attemptRan('a', 'q2', 5); // a pair ats_jobs folded is folded here too
  m.attemptRan('b', 'q2', 5); // and one it labelled is labelled
  assert.deepEqual(of(await m.metrics(), 'ats_job_run_seconds_count'), ['a/q1=1', 'b/q2=1', `${OTHER}/${OTHER}=1`].sort());
});

test('a failed read is counted once per read, in the scrape it failed', async () => {
  const m = new PrometheusMetrics({ refreshMs: 5000, defaultMetrics: false });
  let reads = 0;
  const down = async (): Promise<never> => {
    reads++;
    throw new Error('database unreachable');
  };
  m.watchStore({ jobCounts: down, outboxBacklog: down }, { now: () => Date.now() });
  m.watchConsumerLag(down, { now: () => Date.now() });
  const errors = async () => parseExposition(await m.metrics()).samples
    .filter((s) => s.name === 'ats_metrics_collect_errors_total').map((s) => `${s.labels.source}=${s.value}`).sort();
  assert.deepEqual(await errors(), ['job_counts=1', 'kafka_lag=1', 'outbox=1'], 'the first failing scrape shows its failures');
  assert.equal(reads, 3, 'both outbox gauges share one read');
  assert.deepEqual(await errors(), ['job_counts=2', 'kafka_lag=2', 'outbox=2'], 'a failed read is not cached: the next scrape reads again');
  assert.equal(reads, 6);
});

test('a store that stops answering: the scrape waits SCRAPE_READ_WAIT_MS for it at most, counts the read as failed, and does not start it again while it runs', { timeout: 20_000 }, async (t) => {
  if (!(await requireMysql())) return t.skip('no MariaDB');
  // The store's query timeout is left as in production (60 s): only the scrape's own bound can answer in time.
  const { store, proxy, cleanup } = await createProxiedTestStore({ poolSize: 3, connectTimeoutMs: 5000 });
  const m = new PrometheusMetrics({ refreshMs: 0, defaultMetrics: false });
  let reads = 0;
  m.watchStore({
    jobCounts: () => (reads++, store.jobCounts()),
    outboxBacklog: () => (reads++, store.outboxBacklog()),
  }, { now: () => Date.now() });
  m.watchWorker({ slotUsage: () => ({ busy: 1, free: 3, lingering: 0 }) });
  /** A scrape, or null when it has not answered within Prometheus' default scrape timeout (10 s). */
  const scrape = async () => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), 10_000);
    });
    try {
      const text = await Promise.race([m.metrics(), late]);
      return text === null ? null : parseExposition(text).samples;
    } finally {
      clearTimeout(timer);
    }
  };
  const of = (samples: ReturnType<typeof parseExposition>['samples'], name: string) =>
    samples.filter((s) => s.name === name).map((s) => `${s.labels.source ?? ''}=${s.value}`).sort();
  try {
    await store.insert([newJobWrite()]); // a job counted, and its dispatch in the outbox
    const healthy = await scrape();
    assert.ok(healthy);
    const backlog = of(healthy, 'ats_outbox_backlog');
    assert.notDeepEqual(backlog, ['=0']);
    assert.equal(of(healthy, 'ats_jobs').length, 1);
    assert.equal(reads, 2);

    proxy.stall();
    const stalled = await scrape();
    assert.ok(stalled, 'the scrape answered within Prometheus\' scrape timeout, not after the store\'s query timeout');
    assert.deepEqual(of(stalled, 'ats_metrics_collect_errors_total'), ['job_counts=1', 'outbox=1'], 'the reads over the bound are counted as failed');
    assert.deepEqual(of(stalled, 'ats_worker_slots_busy'), ['=1'], 'the rest of the scrape is served');
    assert.deepEqual(of(stalled, 'ats_outbox_backlog'), backlog, 'the outbox gauges keep their last values');
    assert.deepEqual(of(stalled, 'ats_jobs'), [], 'no stale job counts: the series are left out, as for a failed read');

    const again = await scrape();
    assert.ok(again);
    assert.deepEqual(of(again, 'ats_metrics_collect_errors_total'), ['job_counts=2', 'outbox=2'], 'each scrape it held up counts it');
    assert.equal(reads, 4, 'the reads in flight were waited for again, not started again');
  } finally {
    proxy.unstall();
    await cleanup();
  }
});

test('two scrapes back to back both parse: an event-loop gauge with no sample since the last scrape is NaN, which prom-client writes "Nan"', async () => {
  const m = new PrometheusMetrics({});
  await m.metrics();
  const { samples } = parseExposition(await m.metrics());
  const mean = samples.find((s) => s.name === 'nodejs_eventloop_lag_mean_seconds');
  assert.ok(mean, 'the default metrics are exported');
  assert.ok(Number.isNaN(mean.value), `no delay was sampled between the scrapes, so the mean is NaN (got ${mean.value})`);
});

test('ats_attempts_total outcome="timed_out" counts the job\'s own timeout, not a handler\'s error named TimeoutError', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-metrics-timeout-'));
  const registry = new HandlerRegistry()
    // A fetch given AbortSignal.timeout() rejects so, long before the job's timeout.
    .register('t.own', async () => {
      throw new DOMException('the request took too long', 'TimeoutError');
    })
    // Overruns the job's timeout: the worker's timeout ends it.
    .register('t.overrun', (_p, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => setTimeout(resolve, 10))));
  const config = compileConfig({ dataDir: dir, port: 0, logLevel: 'silent', timersPollMs: 20, relayPollMs: 20 });
  const system = await compose(config, { registry, logger: silentLogger, metrics: new PrometheusMetrics({ refreshMs: 0, defaultMetrics: false }) });
  try {
    const { url } = (await system.start()) as { url: string };
    const ids: string[] = [];
    for (const [type, timeoutMs] of [['t.own', 60_000], ['t.overrun', 50]] as const) {
      const r = await fetch(`${url}/v1/jobs`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type, payload: {}, maxAttempts: 1, timeoutMs }),
      });
      assert.equal(r.status, 201, await r.clone().text());
      ids.push(((await r.json()) as { id: string }).id);
    }
    for (const id of ids) {
      for (let i = 0; (await system.store.getJob(id))?.snapshot.value !== 'dead'; i++) {
        assert.ok(i < 400, `job ${id} is dead`);
        await sleep(25);
      }
    }
    const own = (await system.store.getJob(ids[0]!))!.snapshot.context.lastError;
    assert.equal(own?.name, 'TimeoutError', 'the handler\'s error keeps its name');
    const parsed = parseExposition(await system.metrics.metrics());
    const outcomes = (type: string) => parsed.samples
      .filter((s) => s.name === 'ats_attempts_total' && s.labels.type === type && s.value > 0).map((s) => `${s.labels.outcome}=${s.value}`);
    assert.deepEqual(outcomes('t.own'), ['failed=1'], 'the handler failed; the job\'s timeout did not fire');
    assert.deepEqual(outcomes('t.overrun'), ['timed_out=1']);
  } finally {
    await system.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ats_job_queue_wait_seconds of a job submitted with a runAt in the past counts from its submit, not from that runAt', async () => {
  const m = new PrometheusMetrics({ refreshMs: 0, defaultMetrics: false });
  const T = 1_800_000_000_000;
  const waits = async () => {
    const { samples } = parseExposition(await m.metrics());
    const of = (name: string) => samples.find((s) => s.name === name && s.labels.type === 'w.past')?.value;
    return { count: of('ats_job_queue_wait_seconds_count'), sum: of('ats_job_queue_wait_seconds_sum') };
  };
  // Due a day before it was submitted (a runAt in the past is due at once): it waited 250 ms, from its submit.
  const past = newJobWrite({ type: 'w.past', at: T, runAt: T - 86_400_000 }).job;
  const started = transitionWrite(past, { type: 'STARTED', at: T + 250, attempt: 1, leaseUntil: T + 30_000, workerId: 'w' });
  assert.ok(started);
  m.transitionsCommitted([started], [past]);
  assert.deepEqual(await waits(), { count: 1, sum: 0.25 });
  // Due after its submit: from the runAt, as before.
  const later = newJobWrite({ type: 'w.past', at: T, runAt: T + 5000 }).job;
  const dispatched = transitionWrite(later, { type: 'DISPATCH', at: T + 5000 });
  assert.ok(dispatched);
  const run = transitionWrite(dispatched.job, { type: 'STARTED', at: T + 5500, attempt: 1, leaseUntil: T + 35_000, workerId: 'w' });
  assert.ok(run);
  m.transitionsCommitted([run], [dispatched.job]);
  assert.deepEqual(await waits(), { count: 2, sum: 0.75 });
});
