/**
 * The data folder's lock (folder-lock.ts) in one process: taken once, refused
 * to a second taker while held (naming the holder), free again once
 * released; a record left by a holder that is gone is taken over. Between
 * processes (a second `ats start`, a SIGKILLed holder): cli/data-lock.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import Database from 'better-sqlite3';
import { describeHolder, judge, lockFolder, LOCK_FILE, type FolderLock } from './folder-lock.js';

let dir: string;
const held: FolderLock[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ats-folder-lock-'));
});
afterEach(() => {
  for (const lock of held.splice(0)) lock.release();
  rmSync(dir, { recursive: true, force: true });
});

function take(pid: number, since: number): FolderLock {
  const r = lockFolder(dir, { pid, host: 'h1', now: () => since });
  assert.ok(r.ok, `refused: ${JSON.stringify(r)}`);
  held.push(r.lock);
  return r.lock;
}

test('judge: the lock decides; the record only says who', () => {
  const who = { pid: 7, host: 'h', since: 0 };
  assert.deepEqual(judge({ locked: true, recorded: null }), { held: true, tookOverFrom: null });
  assert.deepEqual(judge({ locked: true, recorded: who }), { held: true, tookOverFrom: who });
  assert.deepEqual(judge({ locked: false, recorded: who }), { held: false, holder: who });
  assert.deepEqual(judge({ locked: false, recorded: null }), { held: false, holder: null });
  assert.equal(describeHolder(who), 'pid 7 on h, since 1970-01-01T00:00:00.000Z');
  assert.equal(describeHolder(null), 'pid unknown');
});

test('held, the folder is refused to a second taker, which learns the holder; released, it is free, with nothing to take over', () => {
  const first = take(101, 1_000);
  assert.equal(first.tookOverFrom, null);
  assert.deepEqual(lockFolder(dir, { pid: 202, host: 'h2', now: () => 2_000 }), { ok: false, holder: { pid: 101, host: 'h1', since: 1_000 } });
  // Refused again: a refusal leaves the holder's lock as it was.
  assert.equal(lockFolder(dir, { pid: 202, host: 'h2' }).ok, false);
  first.release();
  first.release(); // a second release does nothing
  const next = take(202, 3_000);
  assert.equal(next.tookOverFrom, null);
  assert.deepEqual(lockFolder(dir, { pid: 303, host: 'h3' }), { ok: false, holder: { pid: 202, host: 'h1', since: 3_000 } });
});

test('a record left by a holder that is gone (no lock held on it) is taken over and replaced', () => {
  // What a holder killed with SIGKILL leaves: its record, and no lock (the kernel dropped it with the process).
  const db = new Database(join(dir, LOCK_FILE));
  db.exec('CREATE TABLE holder (pid INTEGER NOT NULL, host TEXT NOT NULL, since INTEGER NOT NULL)');
  db.prepare('INSERT INTO holder VALUES (?, ?, ?)').run(1, 'gone', 500);
  db.close();
  const lock = take(1, 4_000); // the same pid (a container's next run is pid 1 again): taken over all the same
  assert.deepEqual(lock.tookOverFrom, { pid: 1, host: 'gone', since: 500 });
  assert.deepEqual(lockFolder(dir, { pid: 9, host: 'h9' }), { ok: false, holder: { pid: 1, host: 'h1', since: 4_000 } });
});

test('a lock file that is not one (not SQLite) is an error, not a folder taken', () => {
  writeFileSync(join(dir, LOCK_FILE), 'not a database, but long enough to be read as a header of one: '.repeat(4));
  assert.throws(() => lockFolder(dir, { pid: 1, host: 'h' }), /not a database/);
});
