/** The lag arithmetic of adapters/metrics/kafka-lag.ts, without a broker. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { partitionLags } from './kafka-lag.js';

test('the lag per partition: from the committed offset, or from the log start when none; never below 0', () => {
  const ends = [{ partition: 0, high: '10', low: '0' }, { partition: 1, high: '7', low: '2' }, { partition: 2, high: '3', low: '0' }];
  const committed = [{ partitions: [{ partition: 0, offset: '4' }, { partition: 1, offset: '-1' }, { partition: 2, offset: '5' }] }];
  assert.deepEqual(partitionLags(ends, committed), [{ partition: 0, lag: 6 }, { partition: 1, lag: 5 }, { partition: 2, lag: 0 }]);
});

test('a partition whose offsets are not numbers is left out, never reported as NaN', () => {
  const ends = [{ partition: 0, high: '10', low: '0' }, { partition: 1, high: undefined, low: '0' }, { partition: 2, high: '5', low: undefined }];
  assert.deepEqual(partitionLags(ends, []), [{ partition: 0, lag: 10 }]);
  // A committed offset that is not a number counts as none: the lag is from the log start.
  assert.deepEqual(partitionLags(ends, [{ partitions: [{ partition: 0, offset: 'x' }] }]), [{ partition: 0, lag: 10 }]);
});
