/**
 * What `ats start` (and `ats keys`) says when better-sqlite3's native module
 * does not load: the reason on one line, and the cause it shows.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nativeProblemText } from '../adapters/sqlite/native.js';
import { sqliteNativeMessage } from './compose.js';

describe('better-sqlite3\'s native module did not load', () => {
  it('built for another node (NODE_MODULE_VERSION): the message says so, with both versions, not that an install script was skipped', () => {
    // Node's message for an addon built under another node, as it writes it (on several lines).
    const thrown = "The module '/app/node_modules/better-sqlite3/build/Release/better_sqlite3.node'\n"
      + 'was compiled against a different Node.js version using\nNODE_MODULE_VERSION 108. This version of Node.js requires\n'
      + 'NODE_MODULE_VERSION 115. Please try re-compiling or re-installing\nthe module (for instance, using `npm rebuild` or `npm install`).';
    const problem = nativeProblemText(thrown);
    assert.equal(problem, "The module '/app/node_modules/better-sqlite3/build/Release/better_sqlite3.node' was compiled against a different "
      + 'Node.js version using NODE_MODULE_VERSION 108. This version of Node.js requires NODE_MODULE_VERSION 115.');
    const message = sqliteNativeMessage(problem);
    assert.match(message, /NODE_MODULE_VERSION 108\. This version of Node\.js requires NODE_MODULE_VERSION 115\.\): build it with "npm rebuild better-sqlite3"/);
    assert.match(message, /it was built under another node/);
    assert.doesNotMatch(message, /ignore-scripts|\n/);
  });

  it('not built (bindings found no file): the first line, without the paths tried, and the skipped install script', () => {
    const problem = nativeProblemText('Could not locate the bindings file. Tried:\n → /a/build/better_sqlite3.node\n → /a/build/Debug/better_sqlite3.node');
    assert.equal(problem, 'Could not locate the bindings file.');
    assert.match(sqliteNativeMessage(problem), /\(an install with --ignore-scripts, or whose npm did not allow better-sqlite3's install script, skipped it\)/);
  });
});
