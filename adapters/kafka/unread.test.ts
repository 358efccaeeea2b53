import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { unreadPartitions } from './unread.js';

const starts = [{ partition: 0, low: '0' }, { partition: 1, low: '10' }, { partition: 2, low: '5' }];
const committedAt = (...offsets: string[]) => [{ partitions: offsets.map((offset, partition) => ({ partition, offset })) }];
const sorted = (s: Set<number>) => [...s].sort();

describe('unreadPartitions', () => {
  it('a partition is unread where the group\'s committed offset is below the first offset published after the time', () => {
    const firstAfter = [{ partition: 0, offset: '7' }, { partition: 1, offset: '20' }, { partition: 2, offset: '9' }];
    assert.deepEqual(sorted(unreadPartitions(starts, firstAfter, committedAt('7', '19', '12'))), [1]);
  });

  it('a partition the group committed nothing on counts from the oldest offset held; one it committed below that, likewise', () => {
    const firstAfter = [{ partition: 0, offset: '0' }, { partition: 1, offset: '10' }, { partition: 2, offset: '6' }];
    // Nothing published by then on 0 (first after = 0), on 1 only what retention deleted (10 = low): both read.
    assert.deepEqual(sorted(unreadPartitions(starts, firstAfter, committedAt('-1', '3', '-1'))), [2]);
  });

  it('a group that committed on no partition tells nothing (it may not be the group that reads the topic)', () => {
    const firstAfter = [{ partition: 0, offset: '7' }, { partition: 1, offset: '20' }, { partition: 2, offset: '9' }];
    assert.deepEqual(sorted(unreadPartitions(starts, firstAfter, committedAt('-1', '-1', '-1'))), []);
    assert.deepEqual(sorted(unreadPartitions(starts, firstAfter, [])), []);
  });

  it('leaves out a partition whose offsets are not numbers', () => {
    const firstAfter = [{ partition: 0, offset: 'x' }, { partition: 1 }, { partition: 2, offset: '9' }];
    assert.deepEqual(sorted(unreadPartitions([...starts, { partition: 3 }], firstAfter, committedAt('0', '0', '0', '0'))), [2]);
  });
});
