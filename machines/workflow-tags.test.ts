/**
 * `hasTag`: a stored instance state is in a tagged state node, nested and
 * parallel ones too, and a final one once done; an instance that ended
 * `error` or `cancelled` has no tag.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createMachine } from 'xstate';
import { hasTag } from './workflow-tags.js';
import { defineWorkflow, startWorkflow, stepWorkflow, type PersistedWorkflow } from './workflow.js';

const def = defineWorkflow('tagged', createMachine({
  id: 'tagged', initial: 'idle',
  states: {
    idle: { on: { GO: 'review', SPLIT: 'both', END: 'over' } },
    review: {
      tags: ['approval'], initial: 'first',
      states: { first: { tags: ['first'], on: { NEXT: 'second' } }, second: {} },
      on: { END: 'over' },
    },
    both: { type: 'parallel', states: { a: { initial: 'x', states: { x: { tags: ['left'] } } }, b: { initial: 'y', states: { y: {} } } } },
    over: { type: 'final', tags: ['paid'] },
  },
}));

const noJobs = () => {
  throw new Error('no jobs here');
};
const begin = (): PersistedWorkflow => startWorkflow(def, null, 0, noJobs).next;
function step(state: PersistedWorkflow, type: string): PersistedWorkflow {
  const r = stepWorkflow(def, state, { type }, 0, noJobs);
  assert.ok(r.ok, `${type} is taken`);
  return r.next;
}

describe('hasTag', () => {
  test('the state the instance is in, its parents and parallel regions', () => {
    const idle = begin();
    assert.equal(hasTag(def, idle, 'approval'), false);
    const review = step(idle, 'GO');
    assert.deepEqual(review.value, { review: 'first' });
    assert.equal(hasTag(def, review, 'approval'), true, 'the parent state\'s tag');
    assert.equal(hasTag(def, review, 'first'), true, 'the child state\'s tag');
    assert.equal(hasTag(def, review, 'paid'), false);
    const second = step(review, 'NEXT');
    assert.deepEqual([hasTag(def, second, 'approval'), hasTag(def, second, 'first')], [true, false]);
    const both = step(idle, 'SPLIT');
    assert.equal(hasTag(def, both, 'left'), true, 'a tag of one region');
  });

  test('a done instance has its final state\'s tags; a cancelled or failed one has none', () => {
    const over = step(begin(), 'END');
    assert.equal(over.status, 'done');
    assert.equal(hasTag(def, over, 'paid'), true);
    const review = step(begin(), 'GO');
    assert.equal(hasTag(def, { ...review, status: 'cancelled' }, 'approval'), false);
    assert.equal(hasTag(def, { ...review, status: 'error' }, 'approval'), false);
  });
});
