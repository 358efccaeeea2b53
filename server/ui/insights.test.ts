/** The advisor as the page shows it (server/ui/client/insights.ts), under node. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  AnomalyBoard, anomaliesOf, anomalyBadge, anomalyFromMessage, anomalyKey, anomalyText, attemptsText, basisText, etaShown,
  evidenceText, leaseText, percent, rateText, recoveryText, relative, runTimeText, sortSignatures, sortTypes,
  type Anomaly, type Eta, type Insights, type SignatureInsight, type TypeInsight,
} from './client/insights.js';

const NOW = 1_800_000_000_000;
const iso = (t: number) => new Date(t).toISOString();

const anomaly = (over: Partial<Anomaly> = {}): Anomaly =>
  ({ type: 'payments.charge', queue: 'default', metric: 'failure-rate', baseline: 0.02, observed: 0.31, at: NOW - 60_000, ...over });

const signature = (over: Partial<SignatureInsight> = {}): SignatureInsight => ({
  signature: 'Error: timeout', failures: 5, recovered: 4, hopeless: 0, pRecover: 0.8, verdict: 'transient', recoveryMs: null, ...over,
});

const typeInsight = (over: Partial<TypeInsight> = {}): TypeInsight => ({
  type: 'demo.echo', queue: 'default', timeoutMs: 30_000, attempts: 10, failures: 0, runMs: null, lease: null, signatures: [], anomalies: [], changes: [], ...over,
});

describe('numbers and times', () => {
  test('relative: in the future, in the past, now', () => {
    assert.equal(relative(NOW + 12_000, NOW), 'in 12 s');
    assert.equal(relative(NOW - 3 * 60_000, NOW), '3 min ago');
    assert.equal(relative(NOW + 400, NOW), 'now');
    assert.equal(relative(NaN, NOW), '–');
  });

  test('percent keeps a small rate readable', () => {
    assert.equal(percent(0.02), '2%');
    assert.equal(percent(0.3123), '31%');
    assert.equal(percent(0.005), '0.5%');
    assert.equal(percent(0), '0%');
    assert.equal(percent(0.0001), '<0.1%');
    assert.equal(percent(1), '100%');
  });

  test('rateText: per second, per minute, per hour, none', () => {
    assert.equal(rateText(25.4), '25 starts/s');
    assert.equal(rateText(1.5), '1.5 starts/s');
    assert.equal(rateText(0.05), '3 starts/min');
    assert.equal(rateText(1 / 7200), '0.5 starts/h');
    assert.equal(rateText(null), 'no start lately');
    assert.equal(rateText(0), 'no start lately');
  });
});

describe('etaShown', () => {
  const eta = (start: number, finish: number, basis: Partial<Eta['basis']> = {}): Eta =>
    ({ start: iso(start), finish: iso(finish), basis: { startsPerSecond: 2, medianRunMs: 850, ahead: 3, startLatencyMs: null, ...basis } });

  test('a waiting job: predicted start and finish relative to now, and what they rest on', () => {
    const shown = etaShown(eta(NOW + 12_000, NOW + 13_000), 'pending', NOW)!;
    assert.deepEqual(shown.start, { key: 'start', label: 'predicted start', at: NOW + 12_000, iso: iso(NOW + 12_000), text: 'in 12 s' });
    assert.equal(shown.finish.text, 'in 13 s');
    assert.equal(shown.basis, '3 jobs ahead in the queue · the queue starting 2 starts/s · median run 850 ms');
  });

  test('a running job started in the past; a finish already past is overdue', () => {
    const shown = etaShown(eta(NOW - 5000, NOW - 2000, { ahead: 0 }), 'running', NOW)!;
    assert.equal(shown.start.label, 'started');
    assert.equal(shown.start.text, '5.0 s ago');
    assert.equal(shown.finish.text, '2.0 s ago (overdue)');
    assert.match(shown.basis, /^0 jobs ahead/);
  });

  test('a waiting job whose predicted start has passed starts any moment; a queue with no recent start says so', () => {
    const shown = etaShown(eta(NOW - 1000, NOW + 5000, { startsPerSecond: null, ahead: 1 }), 'retrying', NOW)!;
    assert.equal(shown.start.text, 'any moment');
    assert.equal(shown.basis, '1 job ahead in the queue · no start in the queue lately · median run 850 ms');
  });

  test('an ETA that is a lower bound (not every job ahead counted) shows the earliest start and finish, and at least the jobs counted', () => {
    const shown = etaShown({ ...eta(NOW + 500_000, NOW + 501_000, { ahead: 1000 }), lowerBound: true }, 'pending', NOW)!;
    assert.equal(shown.start.label, 'earliest start');
    assert.equal(shown.finish.label, 'earliest finish');
    assert.equal(shown.basis, 'at least 1000 jobs ahead in the queue · the queue starting 2 starts/s · median run 850 ms');
    assert.equal(etaShown({ ...eta(NOW + 12_000, NOW + 13_000), lowerBound: false }, 'pending', NOW)!.start.label, 'predicted start');
  });

  test('no ETA (finished job, advisor off, no history): nothing to show', () => {
    assert.equal(etaShown(null, 'done', NOW), null);
    assert.equal(etaShown(undefined, 'pending', NOW), null);
  });

  test('basisText', () => {
    assert.equal(basisText({ startsPerSecond: 0.5, medianRunMs: 65_000, ahead: 120, startLatencyMs: null }),
      '120 jobs ahead in the queue · the queue starting 30 starts/min · median run 1 min 5 s');
    assert.equal(basisText({ startsPerSecond: 2, medianRunMs: 850, ahead: 0, startLatencyMs: 1500 }),
      '0 jobs ahead in the queue · the queue starting 2 starts/s · usually started 1.5 s after due · median run 850 ms');
    // Held by its limit: the limit, not the queue, is what the ETA rests on.
    assert.equal(basisText({ startsPerSecond: 0.1, medianRunMs: 2000, ahead: 3, startLatencyMs: 10, held: 'rate' }),
      'held by its limit\'s rate: the next start it allows · median run 2.0 s');
    assert.equal(basisText({ startsPerSecond: 0.1, medianRunMs: 2000, ahead: 3, startLatencyMs: 10, held: 'concurrency' }),
      'held by its limit\'s concurrency: when a slot of its key frees, estimated · median run 2.0 s');
  });
});

describe('anomalies', () => {
  test('in words: the metric, the type and queue, the levels before and now', () => {
    assert.equal(anomalyText(anomaly()), 'failure rate of payments.charge (queue default) rose from 2% to 31%');
    assert.equal(anomalyText(anomaly({ metric: 'duration', baseline: 850, observed: 4200 })),
      'typical run time of payments.charge (queue default) rose from 850 ms to 4.2 s');
    assert.equal(anomalyBadge(anomaly()), 'failures ↑');
    assert.equal(anomalyBadge(anomaly({ metric: 'duration' })), 'run time ↑');
  });

  test('a stream message becomes an anomaly; anything else is ignored', () => {
    const message = {
      kind: 'insight', insight: 'anomaly', type: 'payments.charge', queue: 'default', metric: 'failure-rate',
      baseline: 0.02, observed: 0.31, at: iso(NOW - 60_000),
    };
    assert.deepEqual(anomalyFromMessage(message), anomaly());
    assert.equal(anomalyFromMessage({ ...message, kind: 'event' }), null);
    assert.equal(anomalyFromMessage({ ...message, insight: 'other' }), null);
    assert.equal(anomalyFromMessage({ ...message, metric: 'cpu' }), null);
    assert.equal(anomalyFromMessage({ ...message, observed: '0.3' }), null);
    assert.equal(anomalyFromMessage({ ...message, at: 'yesterday' }), null);
    assert.equal(anomalyFromMessage(null), null);
    assert.equal(anomalyFromMessage('{"kind":"insight"}'), null);
  });

  test('the board: each anomaly once, whether from the stream or the insights; newest first; dismissed ones hidden', () => {
    const board = new AnomalyBoard();
    const a = anomaly();
    const b = anomaly({ type: '__proto__', metric: 'duration', baseline: 100, observed: 900, at: NOW - 1000 });
    assert.equal(board.add(a), true);
    assert.equal(board.addAll([{ ...a }, b]), 1, 'the same anomaly from GET /v1/insights is not new');
    assert.deepEqual(board.active(NOW), [b, a]);
    assert.deepEqual([...board.byType(NOW).keys()], ['__proto__', 'payments.charge']);
    board.dismiss(anomalyKey(b));
    assert.deepEqual(board.active(NOW), [a]);
    assert.equal(board.isDismissed(b), true);
    assert.deepEqual(board.dismissedKeys(), [anomalyKey(b)]);
    // A new anomaly of the same type and metric, later, shows again.
    const later = { ...b, at: NOW };
    board.add(later);
    assert.deepEqual(board.active(NOW), [later, a]);
    board.dismissAll(NOW);
    assert.deepEqual(board.active(NOW), []);
  });

  test('the board: an old anomaly is not active; dismissals survive a reload; memory is bounded', () => {
    const board = new AnomalyBoard({ maxAgeMs: 60 * 60_000, max: 3, dismissed: [anomalyKey(anomaly())] });
    board.add(anomaly());
    board.add(anomaly({ at: NOW - 2 * 60 * 60_000 }));
    assert.deepEqual(board.active(NOW), [], 'dismissed before the reload, or over an hour old');
    for (let i = 1; i <= 3; i++) board.add(anomaly({ at: NOW - i }));
    assert.equal(board.active(NOW).length, 3);
    assert.deepEqual(board.dismissedKeys(), [], 'the oldest, forgotten, takes its dismissal along');
  });

  test('anomaliesOf reads every type\'s anomalies', () => {
    const insights: Insights = {
      mode: 'advise', events: 10,
      types: [typeInsight({ anomalies: [anomaly()] }), typeInsight({ type: 'b', anomalies: [anomaly({ type: 'b' })] })],
    };
    assert.deepEqual(anomaliesOf(insights).map((a) => a.type), ['payments.charge', 'b']);
  });
});

describe('the insights panel', () => {
  test('signatures: hopeless first, then transient, then learning; more failures first', () => {
    const sorted = sortSignatures([
      signature({ signature: 'a', verdict: 'learning', failures: 50 }),
      signature({ signature: 'b', verdict: 'transient', failures: 2 }),
      signature({ signature: 'c', verdict: 'hopeless', failures: 3 }),
      signature({ signature: 'd', verdict: 'transient', failures: 9 }),
    ]);
    assert.deepEqual(sorted.map((s) => s.signature), ['c', 'd', 'b', 'a']);
  });

  test('types: those with an anomaly or a hopeless signature first, then by type and queue', () => {
    const sorted = sortTypes([
      typeInsight({ type: 'b' }),
      typeInsight({ type: 'a', queue: 'z' }),
      typeInsight({ type: 'a', queue: 'y' }),
      typeInsight({ type: 'c', signatures: [signature({ verdict: 'hopeless' })] }),
      typeInsight({ type: 'd', anomalies: [anomaly({ type: 'd' })] }),
    ]);
    assert.deepEqual(sorted.map((t) => `${t.type}/${t.queue}`), ['c/default', 'd/default', 'a/y', 'a/z', 'b/default']);
  });

  test('attempts, run times, lease, evidence and recovery in words', () => {
    assert.equal(attemptsText({ attempts: 240, failures: 12 }), '240 attempts, 12 failed (5%)');
    assert.equal(attemptsText({ attempts: 0, failures: 0 }), 'no attempt ended yet');
    assert.equal(runTimeText({ count: 240, p50: 850, p90: 2000, p99: 4200 }), 'p50 850 ms · p99 4.2 s (240 runs)');
    assert.equal(runTimeText(null), 'not yet timed');
    assert.equal(leaseText({ leaseMs: 12_000, heartbeatMs: 4000, p99Ms: 3000, samples: 240 }),
      '12 s, heartbeat every 4.0 s (from p99 3.0 s over 240 runs)');
    assert.match(leaseText(null), /^the static lease/);
    assert.equal(evidenceText(signature({ recovered: 0, hopeless: 6, pRecover: 0.0625 })), '0 of 6 retries recovered · P(recover) 6.3%');
    assert.equal(recoveryText({ count: 4, p50: 1200, p90: 4000 }), 'recovers in 1.2 s (p50), 4.0 s (p90)');
    assert.equal(recoveryText(null), '');
  });
});
