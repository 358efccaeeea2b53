/**
 * The relay's stop while a publish is in progress: a publish the log acks
 * within the grace completes (rows deleted, PUBLISHED recorded); one it does
 * not is given up on after the grace, its claim rolled back, and nothing is
 * written when it settles later. And a publish the log refuses is counted
 * (`relayPublishFailed`), not reported as published.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from './logger.js';
import { KIND_HEADER } from './messages.js';
import { TOPICS, type EventLog, type JobStore, type OutboxRow } from './ports.js';
import { Relay } from './relay.js';
import { systemClock } from './system.js';
import type { TransitionService } from './transitions.js';
import { Waker } from './wake.js';

const GRACE_MS = 300;

/** A relay on one outbox row (a dispatch), whose log acks a publish when the test says so. */
const row: OutboxRow = {
  id: 1, topic: TOPICS.dispatch, key: 'job-1', payload: { jobId: 'job-1', attempt: 1 }, value: '{"jobId":"job-1","attempt":1}',
  headers: { [KIND_HEADER]: 'dispatch' }, createdAt: 0, publishedAt: null,
};

function relayWithSlowLog() {
  const seen = { claims: 0, rolledBack: 0, deleted: 0, published: 0 };
  let ack!: () => void;
  let publishing!: () => void;
  const publishStarted = new Promise<void>((resolve) => { publishing = resolve; });
  const log = {
    publish: () => new Promise<void>((resolve) => {
      ack = resolve;
      publishing();
    }),
  } as unknown as EventLog;
  const store = {
    relayOutbox: async (_limit: number, publish: (rows: OutboxRow[]) => Promise<void>) => {
      seen.claims++;
      try {
        await publish([row]);
      } catch (error) {
        seen.rolledBack++;
        throw error;
      }
      seen.deleted++;
      return 1;
    },
  } as unknown as JobStore;
  const transitions = { applyMany: async (list: unknown[]) => { seen.published += list.length; return []; } } as unknown as TransitionService;
  const relay = new Relay(
    { store, log, transitions, clock: systemClock, logger: silentLogger, waker: new Waker() },
    { batchSize: 100, pollMs: 10_000, errorBackoffMs: 10_000, publishedDelayMs: 10_000, stopGraceMs: GRACE_MS },
  );
  return { relay, seen, publishStarted, ack: () => ack() };
}

describe('Relay stop with a publish in progress', () => {
  it('waits for a publish the log acks within the grace: the rows are deleted and PUBLISHED recorded', async () => {
    const { relay, seen, publishStarted, ack } = relayWithSlowLog();
    relay.start();
    await publishStarted;
    const stopped = relay.stop();
    setTimeout(ack, GRACE_MS / 3);
    await stopped;
    assert.deepEqual(seen, { claims: 1, rolledBack: 0, deleted: 1, published: 1 });
  });

  it('gives up on one the log does not ack within the grace: the claim rolls back, and its late ack writes nothing', async () => {
    const { relay, seen, publishStarted, ack } = relayWithSlowLog();
    relay.start();
    await publishStarted;
    const started = Date.now();
    const stopped = relay.stop().then(() => 'stopped');
    // Without the ack it would wait for ever: any bound well past the grace tells the two apart.
    const outcome = await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, GRACE_MS + 10_000, 'still waiting'))]);
    const took = Date.now() - started;
    if (outcome !== 'stopped') ack(); // lets the loop end
    assert.equal(outcome, 'stopped', `stop() after ${took} ms`);
    assert.ok(took >= GRACE_MS - 20, `stop() gave up after ${took} ms, before its grace`);
    assert.deepEqual(seen, { claims: 1, rolledBack: 1, deleted: 0, published: 0 });
    ack();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(seen, { claims: 1, rolledBack: 1, deleted: 0, published: 0 }, 'nothing written after stop() resolved');
  });
});

describe('Relay metrics', () => {
  it('counts a publish the log refused as failed, and only one it acked as published', async () => {
    let refusing = true;
    const log = { publish: async () => { if (refusing) throw new Error('broker not available'); } } as unknown as EventLog;
    // The store's claim of one row, rolled back when the publish throws.
    const store = { relayOutbox: async (_limit: number, publish: (rows: OutboxRow[]) => Promise<void>) => (await publish([row]), 1) } as unknown as JobStore;
    const transitions = { applyMany: async () => [] } as unknown as TransitionService;
    const counted = { failed: 0, published: [] as number[] };
    const relay = new Relay(
      {
        store, log, transitions, clock: systemClock, logger: silentLogger, waker: new Waker(),
        metrics: { relayPublished: (rows) => void counted.published.push(rows), relayPublishFailed: () => void counted.failed++ },
      },
      { batchSize: 100, pollMs: 10_000, errorBackoffMs: 10_000 },
    );
    await assert.rejects(relay.runOnce(), /broker not available/);
    await assert.rejects(relay.runOnce(), /broker not available/);
    assert.deepEqual(counted, { failed: 2, published: [] });
    refusing = false;
    assert.equal(await relay.runOnce(), 1);
    assert.deepEqual(counted, { failed: 2, published: [1] });
  });
});
