/**
 * The in-process log as the embedded default builds it (cli/compose.ts):
 * what nothing in the process reads, `ats.events` (a job's result rides in
 * its SUCCEEDED transition) and `ats.dlq`, is not kept for a reader that may
 * come; a new queue's first dispatches, published before the worker found
 * the queue's lanes, still are.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import { TOPICS, type JobSpec } from '../../engine/ports.js';

const RESULT_CHARS = 100_000;
const spec = (type: string, queue: string, i: number): JobSpec => ({
  type, payload: { i }, queue, maxAttempts: 1, backoff: { kind: 'fixed', delayMs: 1 }, timeoutMs: 60_000, priority: 0,
});

async function untilEnded(system: System, ids: readonly string[], timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await Promise.all(ids.map(async (id) => (await system.store.getJob(id))!.snapshot.value as string));
    const ended = states.every((s) => s === 'done' || s === 'dead');
    if ((ended && (await system.store.countUnpublished()) === 0) || Date.now() > deadline) return states;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** What a group joining now from the beginning is given of `topic`: what the log still holds of it. */
async function heldOf(system: System, topic: string): Promise<{ records: number; chars: number }> {
  const held = { records: 0, chars: 0 };
  const sub = await system.log.consume({
    topic, groupId: `probe-${topic}`, fromBeginning: true,
    handle: async (rs) => { held.records += rs.length; held.chars += rs.reduce((n, r) => n + r.value.length, 0); },
  });
  await new Promise((resolve) => setTimeout(resolve, 200));
  await sub.stop();
  return held;
}

it('embedded: ats.events and ats.dlq keep no results nobody reads; a new queue\'s first dispatches are kept for the worker', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-embedded-retention-'));
  const registry = new HandlerRegistry();
  registry.register('big', async (p) => ({ text: 'y'.repeat(RESULT_CHARS) + JSON.stringify(p) }));
  registry.register('fails', async () => { throw new Error('no'); });
  // The default ATS_PUBLISHED_TIMEOUT_MS (5 minutes): a lost dispatch would not be repaired within this test.
  const config = compileConfig({ dataDir: dir, port: 0, logLevel: 'silent', advisor: 'off' }, { hostname: 'test', pid: process.pid });
  const system = await compose(config, { registry, logger: silentLogger });
  await system.start();
  try {
    // A queue the worker has not seen: its lanes are found by the next discovery (every 2 s), after these dispatches.
    const submitted = await system.transitions.submitMany([
      ...Array.from({ length: 50 }, (_, i) => spec('big', 'fresh-queue', i)),
      ...Array.from({ length: 50 }, (_, i) => spec('big', 'default', i)),
      spec('fails', 'default', 0),
    ]);
    const ids = submitted.map((r) => r.job.id);
    const states = await untilEnded(system, ids, 20_000);
    assert.deepEqual(states, [...Array(100).fill('done'), 'dead']);
    const events = await heldOf(system, TOPICS.events);
    const dlq = await heldOf(system, TOPICS.dlq);
    assert.deepEqual({ events, dlq }, { events: { records: 0, chars: 0 }, dlq: { records: 0, chars: 0 } },
      `the log still holds ${events.chars} characters of ats.events (100 results of ${RESULT_CHARS}) and ${dlq.records} dead letters`);
  } finally {
    await system.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
