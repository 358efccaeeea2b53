/**
 * The metrics as a real Prometheus server sees them: the scheduler runs
 * embedded (one process, every role, the api on a free port), Prometheus
 * (Debian's package, started here with its own config and data) scrapes its
 * /metrics every second, and the test asks Prometheus's HTTP API what the
 * test itself did: how many jobs were submitted, finished and failed, the
 * increase over a window that holds only the second batch, and the queue
 * wait median as `histogram_quantile` finds it, which must lie in the bucket
 * that holds the median of the waits measured from the jobs' own events.
 *
 * A missing prometheus binary fails the test (skipped only with
 * ATS_ALLOW_SKIP=1 outside CI).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { NonRetryableError } from '../../engine/errors.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import { requirePrometheus, startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';

const ready = await requirePrometheus();
const skip = ready ? false : 'prometheus is not installed (ATS_ALLOW_SKIP=1)';

/** The bucket bounds of ats_job_queue_wait_seconds (adapters/metrics/prometheus.ts), read back from /metrics. */
function bucketBounds(text: string, name: string): number[] {
  const bounds = new Set<number>();
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"`, 'gm'))) {
    if (m[1] !== '+Inf') bounds.add(Number(m[1]));
  }
  return [...bounds].sort((a, b) => a - b);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('metrics scraped by a real Prometheus', { skip }, () => {
  let dir: string;
  let system: System;
  let url: string;
  let prom: PrometheusServer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ats-prom-'));
    const registry = new HandlerRegistry()
      .register('metrics.work', async (p: { ms: number }) => {
        await sleep(p.ms);
        return { slept: p.ms };
      })
      .register('metrics.fail', async () => {
        throw new NonRetryableError('this job always fails');
      });
    // Two slots: the second batch queues up, so its waits spread over several buckets.
    const config = compileConfig({ dataDir: dir, port: 0, logLevel: 'silent', concurrency: 2, relayPollMs: 20, timersPollMs: 100 });
    system = await compose(config, { registry, logger: silentLogger });
    ({ url } = (await system.start()) as { url: string });
    const port = new URL(url).port;
    prom = await startPrometheus([`127.0.0.1:${port}`]);
  });

  after(async () => {
    await prom?.stop();
    await system?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function submit(jobs: Array<{ type: string; payload: unknown }>): Promise<string[]> {
    const r = await fetch(`${url}/v1/jobs/batch`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jobs: jobs.map((j) => ({ ...j, maxAttempts: 1 })) }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    const { results } = (await r.json()) as { results: Array<{ status: number; id: string }> };
    assert.ok(results.every((x) => x.status === 201), JSON.stringify(results));
    return results.map((x) => x.id);
  }

  async function settle(ids: readonly string[]): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (const id of ids) {
      for (;;) {
        const job = await system.store.getJob(id);
        if (job && ['done', 'dead'].includes(job.snapshot.value)) break;
        assert.ok(Date.now() < deadline, `job ${id} did not finish: ${job?.snapshot.value}`);
        await sleep(50);
      }
    }
  }

  /** Seconds from due (runAt) to STARTED, as the jobs' events record them. */
  async function waits(ids: readonly string[]): Promise<number[]> {
    const out: number[] = [];
    for (const id of ids) {
      const job = (await system.store.getJob(id))!;
      for (const e of await system.store.getEvents(id)) {
        if (e.type === 'STARTED') out.push(Math.max(0, e.at - job.snapshot.context.runAt) / 1000);
      }
    }
    return out;
  }

  test('Prometheus scrapes /metrics of the api', async () => {
    assert.equal(await prom.until('up{job="ats"}', (v) => v === 1), 1, prom.output());
  });

  test('counts, increase and the queue-wait median match what the test did', async () => {
    const N1 = 10;
    const F = 3;
    const N2 = 30;
    const first = await submit([
      ...Array.from({ length: N1 }, () => ({ type: 'metrics.work', payload: { ms: 10 } })),
      ...Array.from({ length: F }, () => ({ type: 'metrics.fail', payload: {} })),
    ]);
    await settle(first);
    assert.equal(await prom.until('sum(ats_transitions_total{to="done"})', (v) => v === N1), N1);
    assert.equal(await prom.until('sum(ats_transitions_total{to="dead"})', (v) => v === F), F);
    assert.equal(await prom.scalar('sum(ats_transitions_total{from="none",event="SUBMITTED"})'), N1 + F);
    assert.equal(await prom.scalar('sum(ats_attempts_total{outcome="succeeded"})'), N1);
    assert.equal(await prom.scalar('sum(ats_attempts_total{outcome="failed"})'), F);
    // Every STARTED has its queue wait, every handler run its run time.
    assert.equal(await prom.scalar('sum(ats_job_queue_wait_seconds_count)'), N1 + F);
    assert.equal(await prom.until('sum(ats_job_run_seconds_count)', (v) => v === N1 + F), N1 + F);

    // A window that starts after the first batch was scraped and before the second starts.
    const windowStart = Date.now();
    await sleep(2500);
    const second = await submit(Array.from({ length: N2 }, () => ({ type: 'metrics.work', payload: { ms: 25 } })));
    await settle(second);
    assert.equal(await prom.until('sum(ats_transitions_total{to="done"})', (v) => v === N1 + N2), N1 + N2);
    // Long enough that Prometheus' extrapolation to the window's edges (at most a scrape each side) stays small.
    while (Date.now() - windowStart < 12_000) await sleep(250);
    const windowS = Math.floor((Date.now() - windowStart) / 1000);
    const at = Date.now();
    const increase = await prom.scalar(`sum(increase(ats_transitions_total{to="done"}[${windowS}s]))`, at);
    // increase() extrapolates (last - first) to the window's edges: at most by the window over the span its samples cover.
    const [series] = await prom.samples(`ats_transitions_total{to="done"}[${windowS}s]`, at);
    const values = series!.values;
    assert.equal(values[0]![1], N1, 'the window starts after the first batch was scraped');
    assert.equal(values[values.length - 1]![1], N1 + N2);
    const span = values[values.length - 1]![0] - values[0]![0];
    // At most the window over the span; one scrape interval (1 s) more absorbs where Prometheus's
    // own clock puts the range's edges (a CI run once saw ×1.091 against a computed ×1.09).
    const extrapolation = (windowS + 1) / span;
    assert.ok(increase >= N2 - 1e-9 && increase <= N2 * extrapolation + 1e-9, `increase over ${windowS}s: ${increase}, expected ${N2} (at most ×${extrapolation.toFixed(2)})`);
    assert.ok((await prom.scalar(`sum(rate(ats_transitions_total{to="done"}[${windowS}s]))`, at)) > 0, 'the done rate is positive');

    // The queue-wait median: histogram_quantile interpolates inside the bucket holding the median sample.
    const measured = (await waits([...first, ...second])).sort((a, b) => a - b);
    assert.equal(measured.length, N1 + F + N2);
    assert.equal(await prom.until('sum(ats_job_queue_wait_seconds_count)', (v) => v === measured.length), measured.length);
    const text = await (await fetch(`${url}/metrics`)).text();
    const bounds = bucketBounds(text, 'ats_job_queue_wait_seconds');
    assert.ok(bounds.length > 5, `bucket bounds: ${bounds}`);
    const median = measured[Math.ceil(0.5 * measured.length) - 1]!;
    const upper = bounds.find((b) => median <= b)!;
    const lower = bounds[bounds.indexOf(upper) - 1] ?? 0;
    const p50 = await prom.scalar('histogram_quantile(0.5, sum by (le) (ats_job_queue_wait_seconds_bucket))');
    assert.ok(p50 >= lower && p50 <= upper, `p50 ${p50} s is not in the bucket (${lower}, ${upper}] of the measured median ${median} s (waits ${measured.join(', ')})`);
    // The second batch queued behind two slots: its waits reach past the first buckets.
    assert.ok(measured[measured.length - 1]! > bounds[1]!, `the waits spread: max ${measured[measured.length - 1]}`);
    const p99 = await prom.scalar('histogram_quantile(0.99, sum by (le) (ats_job_queue_wait_seconds_bucket))');
    assert.ok(p99 >= p50, `p99 ${p99} >= p50 ${p50}`);
  });

  test('jobs per state, the outbox and the process metrics reach Prometheus', async () => {
    assert.ok((await prom.until('sum(ats_jobs{state="done"})', (v) => v >= 40)) >= 40);
    assert.equal(await prom.until('sum(ats_outbox_backlog)', (v) => v === 0), 0);
    assert.equal(await prom.scalar('sum(ats_worker_slots_busy) + sum(ats_worker_slots_free)'), 2);
    assert.ok((await prom.scalar('max(nodejs_eventloop_lag_seconds)')) >= 0);
    assert.ok((await prom.scalar('sum(ats_db_transaction_seconds_count{op="update"})')) > 0);
    assert.ok((await prom.scalar('sum(ats_relay_batch_size_sum)')) >= 43, 'the relay published every dispatch');
  });

  test('every expression of the Grafana dashboard is valid PromQL and answers', async () => {
    const dashboard = JSON.parse(readFileSync(new URL('../../monitoring/grafana/dashboards/ats.json', import.meta.url), 'utf8')) as {
      panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
    };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    assert.ok(exprs.length >= 20);
    let answered = 0;
    for (const { panel, expr } of exprs) {
      // Grafana's $__rate_interval is at least four scrape intervals.
      const samples = await prom.query(expr.replace(/\$__rate_interval/g, '1m')).catch((e: Error) => assert.fail(`${panel}: ${expr}: ${e.message}`));
      if (samples.length > 0) answered++;
    }
    assert.ok(answered >= exprs.length - 7, `${answered} of ${exprs.length} expressions have data (retries, conflicts, lag, slow consumers and the API's 5xx may have none)`);
  });

  test('promtool (Prometheus\' own linter) parses /metrics and finds nothing to say about the ats_ metrics', async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
    assert.ifError(r.error);
    // 0: clean; 3: lint findings (prom-client's default metrics, e.g. nodejs_active_handles_total, a gauge named _total); 1: unreadable.
    assert.ok(r.status === 0 || r.status === 3, `promtool exited ${r.status}: ${r.stdout}${r.stderr}`);
    const findings = `${r.stdout}${r.stderr}`.split('\n').filter(Boolean);
    assert.deepEqual(findings.filter((l) => l.includes('ats_')), [], 'no lint finding on our metrics');
    assert.ok(findings.every((l) => /^(nodejs|process)_/.test(l)), findings.join('\n'));
  });

  test('promtool accepts the compose profile\'s monitoring/prometheus.yml', () => {
    const file = new URL('../../monitoring/prometheus.yml', import.meta.url).pathname;
    const r = spawnSync('promtool', ['check', 'config', file], { encoding: 'utf8', timeout: 30_000 });
    assert.ifError(r.error);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /SUCCESS/);
  });
});
