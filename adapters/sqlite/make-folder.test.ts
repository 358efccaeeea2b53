/**
 * makeFolder: a folder and its missing parents, one level at a time; a path
 * that cannot be a folder throws instead of looping (as Node's recursive
 * mkdir does under /proc), and so does a SQLite store whose file is there.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createSqliteStore } from './index.js';
import { makeFolder } from './make-folder.js';

test('makes a folder with its missing parents; one there already (or a path to it with ..) is fine', () => {
  const root = mkdtempSync(join(tmpdir(), 'ats-make-folder-'));
  try {
    const deep = join(root, 'a', 'b', 'c');
    makeFolder(deep);
    assert.ok(statSync(deep).isDirectory());
    makeFolder(deep);
    makeFolder(join(root, 'a', 'x', '..', 'b')); // resolved first, as Node's recursive mkdir does: `x` is not made
    assert.throws(() => statSync(join(root, 'a', 'x')), { code: 'ENOENT' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a file where the folder or a parent would be: EEXIST, ENOTDIR', () => {
  const root = mkdtempSync(join(tmpdir(), 'ats-make-folder-'));
  try {
    const file = join(root, 'f');
    writeFileSync(file, '');
    assert.throws(() => makeFolder(file), { code: 'EEXIST' });
    assert.throws(() => makeFolder(join(file, 'below')), { code: 'ENOTDIR' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a place where no folder can be made (under /proc) throws, at any depth, and so does a SQLite store there', () => {
  for (const dir of ['/proc/ats-no-such-folder', '/proc/ats-no-such-folder/a/b']) {
    assert.throws(() => makeFolder(dir), (err: NodeJS.ErrnoException) => typeof err.code === 'string', dir);
  }
  assert.throws(() => createSqliteStore({ file: '/proc/ats-no-such-folder/ats.sqlite' }), (err: NodeJS.ErrnoException) => typeof err.code === 'string');
});
