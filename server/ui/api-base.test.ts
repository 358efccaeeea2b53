/** Where the console sends its requests: the server as the page reaches it, a proxy's path prefix and scheme kept. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiBase } from './client/api-base.js';
import { streamUrl } from '../../client/stream.js';

test('at the root: the origin', () => {
  assert.equal(apiBase('http://localhost:3000/ui'), 'http://localhost:3000');
  assert.equal(apiBase('http://localhost:3000/ui#01M90B3YERHYEWKHZ025476C1J'), 'http://localhost:3000');
});

test('under a path prefix a proxy strips: the prefix is kept, and the stream follows the scheme', () => {
  for (const href of ['https://ats.invalid/scheduler/ui', 'https://ats.invalid/scheduler/ui?x=1#jobs-section']) {
    assert.equal(apiBase(href), 'https://ats.invalid/scheduler', href);
  }
  assert.equal(streamUrl(apiBase('https://ats.invalid/a/b/ui')), 'wss://ats.invalid/a/b/v1/stream');
  assert.equal(streamUrl(apiBase('http://127.0.0.1:7500/ui')), 'ws://127.0.0.1:7500/v1/stream');
});
