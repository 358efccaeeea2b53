/**
 * `ats_kafka_consumer_lag` on a real broker: with no worker running, the
 * dispatches of the jobs submitted wait in `ats.dispatch` and the workers'
 * group lags by exactly that many messages (spread over the topic's
 * partitions); once a worker joins and runs them, the lag goes back to 0.
 * A job of another queue and priority lags on its own lane, in that lane's
 * group.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { laneGroup, laneTopic } from '../../engine/lanes.js';
import { silentLogger } from '../../engine/logger.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { parseExposition } from '../helpers/exposition.js';
import { kafkaBrokers, requireKafka } from '../helpers/kafka.js';
import { requireMysql } from '../helpers/mysql.js';
import { FAST, startTestSystem, waitForJob, type TestSystem } from '../helpers/system.js';

const ready = (await requireMysql()) && (await requireKafka());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('consumer lag of the workers\' group', { skip: ready ? false : 'MariaDB or Kafka not reachable (ATS_ALLOW_SKIP=1)' }, () => {
  let api: TestSystem;
  let worker: System | null = null;
  before(async () => {
    // No timers: they would dispatch again what nobody started, and the lag would grow past the jobs submitted.
    api = await startTestSystem({ roles: 'api,relay' });
  });
  after(async () => {
    await worker?.stop();
    await api?.stop();
  });

  /** Per partition, the lag /metrics shows on `lane` (ats.dispatch by default), in the workers' group of that lane. */
  async function lag(lane = 'ats.dispatch'): Promise<Map<string, number>> {
    const { port } = api.system.app!.server.address() as AddressInfo;
    const { samples } = parseExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    const out = new Map<string, number>();
    // As Kafka names them: the topic prefix goes before the group id too.
    const { topicPrefix, worker: w } = api.system.config;
    for (const s of samples) {
      if (s.name !== 'ats_kafka_consumer_lag' || s.labels.topic !== topicPrefix + lane) continue;
      assert.equal(s.labels.group, topicPrefix + laneGroup(w.groupId, lane));
      out.set(s.labels.partition!, s.value);
    }
    return out;
  }

  /** Polls until the summed lag on `lane` is `n` (the value is cached for up to 5 s), then returns the partitions' lags. */
  async function lagReaches(n: number, lane?: string): Promise<Map<string, number>> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const l = await lag(lane);
      const total = [...l.values()].reduce((a, b) => a + b, 0);
      if (total === n) return l;
      assert.ok(Date.now() < deadline, `the lag stayed at ${total}, expected ${n}: ${JSON.stringify([...l])}`);
      await sleep(500);
    }
  }

  test('dispatches nobody consumed are the lag; a worker brings it back to 0', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await api.system.transitions.submit({ type: 'demo.echo', payload: { i }, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 5000, priority: 0 });
      assert.ok(r.ok);
      ids.push(r.job.id);
    }
    const before = await lagReaches(4);
    assert.equal(before.size, api.system.config.kafkaPartitions, 'one series per partition of ats.dispatch');
    const urgent = await api.system.transitions.submit({ type: 'demo.echo', payload: {}, queue: 'email', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 5000, priority: 5 });
    assert.ok(urgent.ok);
    ids.push(urgent.job.id);
    const lane = laneTopic('email', 5);
    assert.equal(lane, 'ats.dispatch.email.high');
    await lagReaches(1, lane);
    assert.equal([...(await lag()).values()].reduce((a, b) => a + b, 0), 4, 'the email job is not on ats.dispatch');

    const config = compileConfig({
      ...FAST, roles: 'worker', mysqlUrl: api.mysqlUrl, kafkaBrokers: kafkaBrokers().join(','), topicPrefix: api.prefix,
      workerGroup: `${api.prefix}workers`,
    }, { hostname: 'test', pid: process.pid });
    worker = await compose(config, { logger: silentLogger });
    await worker.start();
    for (const id of ids) await waitForJob(api.system.store, id, (j) => j.snapshot.value === 'done');
    const afterRun = await lagReaches(0);
    assert.ok([...afterRun.values()].every((v) => v === 0));
    await lagReaches(0, lane);
  });
});
