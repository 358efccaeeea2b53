/** What the inspector's "Result" says of a job (server/ui/client/outcome.ts), under node (no browser). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { leaseEndText, outcomeText } from './client/outcome.js';

test('a result shows as indented JSON, whatever the state; a cancel reason when there is no result', () => {
  assert.equal(outcomeText({ state: 'done', result: { sent: true }, cancelReason: null }), '{\n  "sent": true\n}');
  assert.equal(outcomeText({ state: 'done', result: 0, cancelReason: null }), '0');
  assert.equal(outcomeText({ state: 'done', result: false, cancelReason: null }), 'false');
  assert.equal(outcomeText({ state: 'cancelled', result: null, cancelReason: 'not needed' }), '{\n  "cancelReason": "not needed"\n}');
});

test('a done job whose handler returned no value shows null, not a result still to come', () => {
  const shown = outcomeText({ state: 'done', result: null, cancelReason: null });
  assert.match(shown, /^null \(/);
  assert.doesNotMatch(shown, /yet/);
});

test('a dead or cancelled job without a result has none; a live one has none yet', () => {
  assert.equal(outcomeText({ state: 'dead', result: null, cancelReason: null }), '(none)');
  assert.equal(outcomeText({ state: 'cancelled', result: null, cancelReason: null }), '(none)');
  for (const state of ['pending', 'published', 'running', 'retrying']) {
    assert.equal(outcomeText({ state, result: null, cancelReason: null }), '(none yet)', state);
  }
});

test('a lease the embedded restart ended (holderGone) says so; another, that its worker stopped heartbeating', () => {
  assert.equal(leaseEndText({ attempt: 1, rand: 0.5, holderGone: true }), 'error: lease ended at the restart (its process had ended)');
  assert.equal(leaseEndText({ attempt: 1, rand: 0.5 }), 'error: lease expired (its worker stopped heartbeating)');
  assert.equal(leaseEndText(null), 'error: lease expired (its worker stopped heartbeating)');
});
