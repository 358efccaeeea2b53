/**
 * The model-based delivery property, fast speed: the real engine on SQLite in
 * memory and the in-process log, the simulated clock, 1,000 runs by default
 * (PROPERTY_RUNS to change; PROPERTY_SEED/PROPERTY_PATH/PROPERTY_REPLAY_PATH
 * to replay a failure: the failure report prints the exact command).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fastBackend } from './backends.js';
import { checkDeliveryProperty } from './run-property.js';

test('at-least-once and idempotency under injected faults (SQLite + in-process log, simulated clock)', { timeout: 1_800_000 }, async (t) => {
  const result = await checkDeliveryProperty({
    backend: fastBackend(), file: 'property-tests/delivery.test.ts', defaultRuns: 1000, runTimeoutMs: 60_000,
  });
  t.diagnostic(`${result.runs} runs in ${(result.ms / 1000).toFixed(1)} s: ${JSON.stringify(result.stats)}`);
  // The runs must have exercised what they claim to: faults happened and jobs reached every end; zombies
  // reported real earlier attempts (not only attempt 0, which never ran), stalled workers heartbeated late,
  // and commits of their own (not only the workers') landed while the loops ran.
  const s = result.stats;
  // (Not when PROPERTY_EXCLUDE left kinds out: their counters stay 0 on purpose.)
  if (result.runs >= 200 && !process.env.PROPERTY_EXCLUDE) {
    for (const k of ['crashes', 'lateOutcomes', 'duplicatesInjected', 'effectsSuppressed', 'skippedDispatches', 'zombiesRejected',
      'staleZombiesRejected', 'lateHeartbeats', 'relayFaults', 'dropped', 'loopRuns', 'loopCommits', 'lostDispatches', 'done', 'dead', 'cancelled',
      // Limits: claims were refused and held (and the refusals checked), keys with a cap of 2 or 3 reached it, rates held
      // starts back to the ms; limits changed mid-run, caps fell below the attempts running, a changed rate spaced a start,
      // a paused key refused claims.
      'limitedJobs', 'throttled', 'refusalsChecked', 'limitedStarts', 'capReached', 'rateSpacedStarts', 'limitChanges', 'capsLoweredBelowRunning',
      'rateChangedStarts', 'pausedRefusals'] as const) {
      assert.ok(s[k] > 0, `no run exercised ${k}: ${JSON.stringify(s)}`);
    }
  }
});
