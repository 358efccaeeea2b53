/** The failure-rate detector: a rise is told once; a steady rate, however high, is no anomaly. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { FailureRateDetector } from './anomaly.js';

/** A seeded stream of attempts failing at `rate` (a small LCG: the same every run). */
function attempts(rate: number, n: number, seed = 7): boolean[] {
  let x = seed;
  return Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31 < rate;
  });
}

const alarms = (d: FailureRateDetector, stream: readonly boolean[]) => stream.map((failed) => d.observe(failed)).filter((c) => c !== null);

for (const rate of [1, 0.97, 0.95]) {
  it(`a type whose attempts fail at a steady ${rate * 100}% raises no anomaly (there is no rise: "baseline 1, observed 1" warned every few hundred attempts)`, () => {
    assert.deepEqual(alarms(new FailureRateDetector(), attempts(rate, 20_000)), []);
  });
}

it('a rise is still told: from 5% to all attempts failing, once', () => {
  const d = new FailureRateDetector();
  assert.deepEqual(alarms(d, attempts(0.05, 2000)), []);
  const told = alarms(d, attempts(1, 300));
  assert.equal(told.length, 1);
  assert.ok(told[0]!.baseline < 0.2 && told[0]!.observed > 0.9, JSON.stringify(told[0]));
});

for (const base of [0.87, 0.88, 0.89]) {
  it(`a rise from a steady ${base * 100}% to all attempts failing is told, once (the baseline learning the rise past 90% does not hide it)`, () => {
    const d = new FailureRateDetector();
    assert.deepEqual(alarms(d, attempts(base, 5000, 3)), []);
    const told = alarms(d, attempts(1, 3000, 11));
    assert.equal(told.length, 1, JSON.stringify(told));
    assert.ok(told[0]!.baseline < 0.9 && told[0]!.observed > 0.95, JSON.stringify(told[0]));
  });
}
