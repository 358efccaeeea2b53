/**
 * ATS_METRICS_PORT: a process without the api role (here a worker alone, on
 * MariaDB and Kafka) serves /metrics on that port, with its own metrics: the
 * worker's slots and the handler run times of the jobs it ran. Nothing else
 * is served there.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { silentLogger } from '../../engine/logger.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { parseExposition } from '../helpers/exposition.js';
import { kafkaBrokers, requireKafka } from '../helpers/kafka.js';
import { requireMysql } from '../helpers/mysql.js';
import { freePort } from '../helpers/ports.js';
import { FAST, startTestSystem, waitForJob, type TestSystem } from '../helpers/system.js';

const ready = (await requireMysql()) && (await requireKafka());

describe('ATS_METRICS_PORT on a worker-only process', { skip: ready ? false : 'MariaDB or Kafka not reachable (ATS_ALLOW_SKIP=1)' }, () => {
  let worker: TestSystem;
  let port: number;
  before(async () => {
    port = await freePort();
    worker = await startTestSystem({ roles: 'worker', raw: { metricsPort: port, concurrency: 3 } });
  });
  after(async () => {
    await worker?.stop();
  });

  test('serves /metrics with the worker\'s metrics, and 404 elsewhere', async () => {
    assert.equal(worker.system.app, null, 'no api role: no API port');
    const r = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const { samples, types } = parseExposition(await r.text());
    const value = (name: string) => samples.find((s) => s.name === name)?.value;
    assert.equal(value('ats_worker_slots_free'), 3);
    assert.equal(value('ats_worker_slots_busy'), 0);
    assert.equal(types.get('nodejs_eventloop_lag_seconds'), 'gauge');
    // The cluster-wide gauges come from the api processes only.
    assert.equal(types.get('ats_jobs'), undefined);
    assert.equal((await fetch(`http://127.0.0.1:${port}/v1/jobs`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status, 405);
  });

  test('a job run by this worker shows in its run-time histogram', async () => {
    // Submit through a second process's roles on the same database and topics: api, relay and timers.
    const rest = await startTestSystemOn(worker);
    try {
      const r = await rest.system.transitions.submit({ type: 'demo.echo', payload: {}, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 5000, priority: 0 });
      assert.ok(r.ok);
      await waitForJob(rest.system.store, r.job.id, (j) => j.snapshot.value === 'done');
      const { samples } = parseExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
      const runs = samples.filter((s) => s.name === 'ats_job_run_seconds_count' && s.labels.type === 'demo.echo');
      assert.equal(runs.reduce((a, s) => a + s.value, 0), 1);
    } finally {
      await rest.system.stop();
    }
  });
});

/** The other roles (api, relay, timers) as a second system on the worker's database and topics; the caller stops it. */
async function startTestSystemOn(worker: TestSystem): Promise<{ system: System }> {
  const config = compileConfig({
    ...FAST, roles: 'api,relay,timers', mysqlUrl: worker.mysqlUrl, kafkaBrokers: kafkaBrokers().join(','), topicPrefix: worker.prefix,
    workerGroup: `${worker.prefix}workers`,
  }, { hostname: 'test', pid: process.pid });
  const system = await compose(config, { logger: silentLogger });
  await system.start();
  return { system };
}
