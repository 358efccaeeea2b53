/**
 * The process's open-file limit, read at start from /proc/self/limits
 * (cli/open-file-limit.ts): the soft column of "Max open files", null when
 * unlimited, unreadable, not Linux, or not understood.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseOpenFileLimit, readOpenFileLimit } from './open-file-limit.js';

const LIMITS = (soft: string, hard: string) => [
  'Limit                     Soft Limit           Hard Limit           Units     ',
  'Max cpu time              unlimited            unlimited            seconds   ',
  'Max processes             63455                63455                processes ',
  `Max open files            ${soft.padEnd(21)}${hard.padEnd(21)}files     `,
  'Max locked memory         8388608              8388608              bytes     ',
  '',
].join('\n');

describe('the open-file limit', () => {
  it('is the soft column of "Max open files" (what Node raised it to), not the hard one', () => {
    assert.equal(parseOpenFileLimit(LIMITS('4096', '4096')), 4096);
    assert.equal(parseOpenFileLimit(LIMITS('1024', '524288')), 1024);
  });

  it('is null when unlimited or not understood', () => {
    assert.equal(parseOpenFileLimit(LIMITS('unlimited', 'unlimited')), null);
    assert.equal(parseOpenFileLimit(''), null, 'no line');
    assert.equal(parseOpenFileLimit(LIMITS('lots', '4096')), null);
    assert.equal(parseOpenFileLimit(LIMITS('0', '0')), null, 'no files at all is not a limit a running process has');
    assert.equal(parseOpenFileLimit(LIMITS('-1', '4096')), null);
    assert.equal(parseOpenFileLimit(LIMITS('4096.5', '4096')), null);
    assert.equal(parseOpenFileLimit(LIMITS('99999999999999999999', '4096')), null, 'beyond a safe integer');
    assert.equal(parseOpenFileLimit('Max open files\n'), null, 'no columns');
  });

  it('is read from /proc/self/limits on Linux only; a read that fails is unknown, never a failed start', () => {
    const read = (path: string) => (path === '/proc/self/limits' ? LIMITS('2048', '2048') : assert.fail(path));
    assert.equal(readOpenFileLimit({ platform: 'linux', read }), 2048);
    assert.equal(readOpenFileLimit({ platform: 'darwin', read: () => assert.fail('not read elsewhere') }), null);
    assert.equal(readOpenFileLimit({ platform: 'linux', read: () => { throw Object.assign(new Error('no /proc'), { code: 'ENOENT' }); } }), null);
  });

  it('of this process: read from /proc/self/limits on Linux (Node raised it from the hard limit at start), else unknown', () => {
    const limit = readOpenFileLimit();
    if (process.platform !== 'linux') return assert.equal(limit, null);
    assert.ok(limit !== null && Number.isSafeInteger(limit) && limit > 0, String(limit));
    assert.equal(limit, parseOpenFileLimit(readFileSync('/proc/self/limits', 'utf8')));
  });
});
