/**
 * SQLite errors that mean the file cannot be used now (another process holds
 * its write lock past busy_timeout, an I/O error, a full disk, a closed
 * connection) reject with ATS_ERR_STORE_UNAVAILABLE; a constraint or a bug
 * stays what it was.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { AtsError, STORE_UNAVAILABLE_WHY } from '../../engine/errors.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { createSqliteStore } from './index.js';
import { isSqliteUnavailable, sqliteStore } from './sqlite-store.js';

const CLOCK = { now: () => 1_700_000_000_000 };

const unavailable = (e: unknown) => {
  assert.ok(e instanceof AtsError, `expected an AtsError, got ${String((e as Error)?.stack ?? e)}`);
  assert.equal(e.code, 'ATS_ERR_STORE_UNAVAILABLE');
  return true;
};

/** At a start, a file that cannot work as it is: a bad setting (the start exits 2), not an outage a restart gets past. */
const asGiven = (e: unknown) => {
  assert.ok(e instanceof AtsError, `expected an AtsError, got ${String((e as Error)?.stack ?? e)}`);
  assert.equal(e.code, 'ATS_ERR_CONFIG');
  return true;
};

describe('SQLite store: the file cannot be used', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-sqlite-unavailable-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('another connection holds the write lock past busy_timeout: insert and update are unavailable', async () => {
    const file = join(dir, 'busy.sqlite');
    const holder = createSqliteStore({ file });
    await holder.migrate();
    const w = newJobWrite();
    await holder.insert([w]);
    const waiting = createSqliteStore({ file, busyTimeoutMs: 50 });
    holder.db.prepare('BEGIN IMMEDIATE').run();
    try {
      await assert.rejects(waiting.insert([newJobWrite()]), unavailable);
      await assert.rejects(waiting.update([w.job.id], () => ({ writes: [], result: null })), unavailable);
    } finally {
      holder.db.prepare('ROLLBACK').run();
    }
    assert.equal((await waiting.insert([newJobWrite()]))[0]?.ok, true, 'works once the lock is gone');
    await waiting.close();
    await holder.close();
  });

  test('a file this process can only read: a write is unavailable (503), not an internal error', async () => {
    const file = join(dir, 'read-only.sqlite');
    const owner = createSqliteStore({ file });
    await owner.migrate();
    // What opening a file without write permission gives (SQLite falls back to reading it).
    const reader = sqliteStore(new Database(file, { readonly: true }), CLOCK);
    try {
      await assert.rejects(reader.insert([newJobWrite()]), (e: unknown) => unavailable(e)
        && (e as AtsError).message === STORE_UNAVAILABLE_WHY.readOnly);
      assert.equal((await reader.stats()).byState.pending, 0, 'reads still answer');
    } finally {
      await reader.close();
      await owner.close();
    }
  });

  test('a full disk: a write is unavailable (503) and the caller is told the disk is full; reads answer, and writes work once there is room', async () => {
    const file = join(dir, 'full.sqlite');
    const store = createSqliteStore({ file });
    await store.migrate();
    try {
      // SQLite's own full: no page beyond those the file has (what a full disk gives, SQLITE_FULL).
      const pages = store.db.pragma('page_count', { simple: true }) as number;
      store.db.pragma(`max_page_count = ${pages}`);
      const big = () => newJobWrite({ payload: { fill: 'x'.repeat(200_000) } });
      await assert.rejects(store.insert([big()]), (e: unknown) => unavailable(e)
        && (e as AtsError).message === STORE_UNAVAILABLE_WHY.full);
      assert.equal((await store.stats()).byState.pending, 0, 'reads still answer, and nothing was written');
      store.db.pragma(`max_page_count = ${pages * 1000}`);
      assert.equal((await store.insert([big()]))[0]?.ok, true, 'works once there is room');
    } finally {
      await store.close();
    }
  });

  test('a file this process can only read fails migrate (the start) as a bad setting, naming the file, instead of every write later', async () => {
    const file = join(dir, 'read-only-start.sqlite');
    const owner = createSqliteStore({ file });
    await owner.migrate();
    await owner.close();
    const reader = sqliteStore(new Database(file, { readonly: true }), CLOCK);
    try {
      await assert.rejects(reader.migrate(), (e: unknown) => asGiven(e) && (e as Error).message.includes(file) && /readonly|read-only/.test((e as Error).message)
        && /must be writable by this user/.test((e as Error).message));
    } finally {
      await reader.close();
    }
  });

  test('a file that cannot be opened, or is no database, fails at open as a bad setting, naming the file', () => {
    const folder = join(dir, 'a-folder.sqlite');
    mkdirSync(folder);
    // A folder in the file's place: said so, not taken for a file this user may not write.
    assert.throws(() => createSqliteStore({ file: folder }), (e: unknown) => asGiven(e) && (e as Error).message.includes(folder)
      && /it is a folder, not a file/.test((e as Error).message) && !/writable/.test((e as Error).message));
    const notSqlite = join(dir, 'not-sqlite.sqlite');
    writeFileSync(notSqlite, 'these are not the pages of a database, only a line of text long enough to have a header'.repeat(20));
    assert.throws(() => createSqliteStore({ file: notSqlite }), (e: unknown) => asGiven(e) && (e as Error).message.includes(notSqlite) && /SQLITE_NOTADB/.test((e as Error).message));
  });

  test('a backup put back beside the write-ahead log of the file it replaced (a crashed scheduler\'s): the message says to remove that log with it', async () => {
    const file = join(dir, 'restored.sqlite');
    const store = createSqliteStore({ file });
    await store.migrate();
    await store.insert(Array.from({ length: 2000 }, () => newJobWrite()));
    // Jobs deleted (retention): the backup, compacted, lays its pages out otherwise than the file.
    store.db.exec('DELETE FROM jobs WHERE rowid % 5 <> 0');
    store.db.exec(`VACUUM INTO '${join(dir, 'backup.sqlite')}'`);
    // The scheduler runs on and dies: its write-ahead log holds commits not checkpointed into the file.
    store.db.pragma('wal_autocheckpoint = 0');
    await store.insert(Array.from({ length: 300 }, () => newJobWrite()));
    copyFileSync(`${file}-wal`, join(dir, 'crashed-wal'));
    await store.close();
    // The operator puts the backup back in the file's place, leaving the log beside it.
    copyFileSync(join(dir, 'backup.sqlite'), file);
    copyFileSync(join(dir, 'crashed-wal'), `${file}-wal`);
    rmSync(`${file}-shm`, { force: true });
    const damaged = (e: unknown) => asGiven(e) && (e as Error).message.includes(file) && /SQLITE_CORRUPT|SQLITE_NOTADB/.test((e as Error).message)
      && (e as Error).message.includes(`${file}-wal`);
    try {
      const reopened = createSqliteStore({ file });
      await assert.rejects(reopened.migrate().finally(() => reopened.close()), damaged);
    } catch (e) {
      assert.ok(damaged(e), String(e));
    }
  });

  test('a closed store is unavailable', async () => {
    const store = createSqliteStore({ file: join(dir, 'closed.sqlite') });
    await store.migrate();
    await store.close();
    await assert.rejects(store.getJob('01ARZ3NDEKTSV4RRFFQ69G5FAV'), unavailable);
    await assert.rejects(store.stats(), unavailable);
    await assert.rejects(store.ping(), unavailable);
  });
});

describe('isSqliteUnavailable', () => {
  const sqliteError = (code: string) => Object.assign(new Error(code), { name: 'SqliteError', code });
  for (const code of ['SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_LOCKED', 'SQLITE_IOERR', 'SQLITE_IOERR_WRITE', 'SQLITE_CANTOPEN', 'SQLITE_FULL', 'SQLITE_READONLY', 'SQLITE_READONLY_DBMOVED']) {
    test(`unavailable: ${code}`, () => assert.equal(isSqliteUnavailable(sqliteError(code)), true));
  }
  for (const code of ['SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_ERROR', 'SQLITE_MISMATCH', 'SQLITE_BUSYNESS']) {
    test(`not unavailable: ${code}`, () => assert.equal(isSqliteUnavailable(sqliteError(code)), false));
  }
  test('not unavailable: a plain error', () => assert.equal(isSqliteUnavailable(new Error('SQLITE_BUSY')), false));
});
