/**
 * The same model-based delivery property on the real MariaDB and the real
 * Kafka broker: 25 runs by default (PROPERTY_REAL_RUNS to change). The
 * simulated clock still drives the engine's time; only the I/O is real.
 * A failure prints the command that replays its seed (timing of real I/O may
 * differ on replay; the commands and the scheduler's choices do not).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { realBackend } from './backends.js';
import { checkDeliveryProperty } from './run-property.js';

test('at-least-once and idempotency under injected faults (MariaDB + Kafka, simulated clock)', { timeout: 1_800_000 }, async (t) => {
  const backend = realBackend();
  if (!(await backend.setUp())) return t.skip('MariaDB or Kafka is not reachable (ATS_ALLOW_SKIP=1)');
  try {
    const result = await checkDeliveryProperty({
      backend, file: 'property-tests/delivery-real.test.ts', defaultRuns: 25, runsEnv: 'PROPERTY_REAL_RUNS', runTimeoutMs: 240_000,
    });
    t.diagnostic(`${result.runs} runs in ${(result.ms / 1000).toFixed(1)} s: ${JSON.stringify(result.stats)}`);
    assert.ok(result.stats.jobs > 0 && result.stats.done > 0, `the runs submitted and finished jobs: ${JSON.stringify(result.stats)}`);
    assert.ok(result.stats.loopRuns > 0, `the runs drove the background loops: ${JSON.stringify(result.stats)}`);
  } finally {
    await backend.tearDown();
  }
});
