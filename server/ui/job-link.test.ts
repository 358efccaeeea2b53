/** The visualizer's `#<job id>` links, under node (no browser). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jobIdFromHash } from './client/job-link.js';

const ID = '01M90B3YERHYEWKHZ025476C1J';

test('a hash naming a job id opens that job', () => {
  assert.equal(jobIdFromHash(`#${ID}`), ID);
});

test('a place on the page, an empty hash or a lower-case id names no job', () => {
  for (const hash of ['', '#', '#jobs-section', `#${ID.toLowerCase()}`, `#${ID}x`, `#8${ID.slice(1)}`]) assert.equal(jobIdFromHash(hash), null, hash);
});

test('a malformed percent escape names no job instead of throwing', () => {
  for (const hash of ['#%', '#%E0', `#${ID}%`, '#%zz']) assert.equal(jobIdFromHash(hash), null, hash);
});
