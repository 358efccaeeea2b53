/**
 * PUBLISHED is recorded `relayPublishedDelayMs` after the dispatch went out,
 * and only for a job no worker started by then (MariaDB + Kafka): with no
 * worker up the job shows `published`; with a worker it runs without
 * waiting for the bookkeeping, and a job started within the delay has no
 * PUBLISHED event at all.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import type { JobSpec } from '../../engine/ports.js';
import { verifyJob } from '../../engine/verify.js';
import { isState, startTestSystem, waitForJob, type TestSystem } from '../helpers/system.js';

const spec: JobSpec = { type: 'demo.echo', payload: { x: 1 }, queue: 'default', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0 };

describe('PUBLISHED bookkeeping after a delay (MariaDB + Kafka)', () => {
  const systems: TestSystem[] = [];
  after(async () => Promise.all(systems.map((s) => s.stop())));

  it('a dispatch no worker takes is marked published once the delay passed, not before', async () => {
    const t = await startTestSystem({ roles: 'api,relay', raw: { relayPublishedDelayMs: 1500 } });
    systems.push(t);
    const r = await t.system.transitions.submit(spec);
    assert.ok(r.ok);
    const sent = Date.now();
    // The dispatch goes out at once (the outbox empties), the bookkeeping waits.
    while ((await t.system.store.countUnpublished()) > 0) await new Promise((res) => setTimeout(res, 20));
    assert.equal((await t.system.store.getJob(r.job.id))!.snapshot.value, 'pending', 'not marked before the delay');
    const job = await waitForJob(t.system.store, r.job.id, isState('published'));
    assert.ok(Date.now() - sent >= 1400, `marked after ${Date.now() - sent} ms`);
    assert.deepEqual((await t.system.store.getEvents(job.id)).map((e) => e.type), ['SUBMITTED', 'PUBLISHED']);
  });

  it('a job a worker started within the delay goes pending → running with no PUBLISHED event', async () => {
    const t = await startTestSystem({ raw: { relayPublishedDelayMs: 5000 } });
    systems.push(t);
    const r = await t.system.transitions.submit(spec);
    assert.ok(r.ok);
    const job = await waitForJob(t.system.store, r.job.id, isState('done'));
    assert.deepEqual((await t.system.store.getEvents(job.id)).map((e) => e.type), ['SUBMITTED', 'STARTED', 'SUCCEEDED']);
    assert.deepEqual((await verifyJob(t.system.store, job.id)).problems, []);
  });
});
