/**
 * The embedded store's group commit on a real file: commits do not wait for
 * the disk, answers do (adapters/sqlite/group-sync.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { AtsError } from '../../engine/errors.js';
import { createSqliteStore } from './index.js';
import { walFile } from './wal-file.js';

const dir = mkdtempSync(join(tmpdir(), 'ats-group-commit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshFile = () => join(dir, `db-${++files}.sqlite`);

/** A WAL sync the test lets go of: `release()` ends every sync begun so far. */
function gate() {
  let open = false;
  let waiting: Array<() => void> = [];
  return {
    syncs: 0,
    sync(): Promise<void> {
      this.syncs++;
      return open ? Promise.resolve() : new Promise((resolve) => waiting.push(resolve));
    },
    release() {
      open = true;
      for (const w of waiting) w();
      waiting = [];
    },
  };
}

const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

async function isDone(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => { done = true; }, () => { done = true; });
  await settled();
  await settled();
  return done;
}

describe('SQLite group commit', () => {
  it('runs a file with synchronous = NORMAL, and memory with FULL', async () => {
    const file = createSqliteStore({ file: freshFile() });
    const memory = createSqliteStore({ file: ':memory:' });
    try {
      assert.equal(Number(file.db.pragma('synchronous', { simple: true })), 1);
      assert.equal(Number(memory.db.pragma('synchronous', { simple: true })), 2);
    } finally {
      await file.close();
      await memory.close();
    }
  });

  it('answers a write, a read of it and a publish of its outbox only once the log is synced', async () => {
    const g = gate();
    const store = createSqliteStore({ file: freshFile(), walSync: () => g.sync() });
    g.release();
    await store.migrate();
    const held = gate();
    // From here on the log's syncs wait for the test.
    const storeHeld = createSqliteStore({ file: store.db.name, walSync: () => held.sync() });
    try {
      const write = newJobWrite();
      const inserting = storeHeld.insert([write]);
      assert.equal(await isDone(inserting), false, 'the insert committed and waits for the sync');
      // The row is committed: another connection reads it at once.
      assert.equal((store.db.prepare('SELECT COUNT(*) AS n FROM jobs').get() as { n: number }).n, 1);
      const reading = storeHeld.getJob(write.job.id);
      let published = 0;
      const relaying = storeHeld.relayOutbox(10, async (rows) => { published += rows.length; });
      assert.equal(await isDone(reading), false, 'a read of a write not yet on disk waits too');
      assert.equal(await isDone(relaying), false);
      assert.equal(published, 0, 'no outbox row is published before it is on disk');
      held.release();
      await inserting;
      assert.equal((await reading)?.id, write.job.id);
      assert.equal(await relaying, 2);
      assert.equal(published, 2);
      assert.ok(held.syncs >= 1);
    } finally {
      await storeHeld.close();
      await store.close();
    }
  });

  it('holds an error too until what it may stem from is on disk', async () => {
    const g = gate();
    g.release();
    const store = createSqliteStore({ file: freshFile(), walSync: () => g.sync() });
    await store.migrate();
    const held = gate();
    const storeHeld = createSqliteStore({ file: store.db.name, walSync: () => held.sync() });
    try {
      const write = newJobWrite();
      const inserting = storeHeld.insert([write]);
      // The same job again: refused on a row committed, not yet on disk.
      const again = storeHeld.insert([write]);
      assert.equal(await isDone(again), false);
      held.release();
      await inserting;
      await assert.rejects(again);
    } finally {
      await storeHeld.close();
      await store.close();
    }
  });

  it('a read of another connection\'s commit waits for a sync of its own (the other may not have synced yet)', async () => {
    const g = gate();
    g.release();
    const writer = createSqliteStore({ file: freshFile(), walSync: () => g.sync() });
    await writer.migrate();
    const writerHeld = gate();
    const writing = createSqliteStore({ file: writer.db.name, walSync: () => writerHeld.sync() });
    const readerHeld = gate();
    const reader = createSqliteStore({ file: writer.db.name, walSync: () => readerHeld.sync() });
    try {
      const write = newJobWrite();
      const inserting = writing.insert([write]);
      assert.equal(await isDone(inserting), false);
      const reading = reader.getJob(write.job.id);
      assert.equal(await isDone(reading), false, 'the row is committed, not on disk: the reader syncs the log itself');
      readerHeld.release();
      assert.equal((await reading)?.id, write.job.id);
      assert.ok(readerHeld.syncs >= 1);
      writerHeld.release();
      await inserting;
    } finally {
      await reader.close();
      await writing.close();
      await writer.close();
    }
  });

  it('a write that changed no row, and the relay\'s delete of what it published, wait for no sync', async () => {
    const g = gate();
    g.release();
    const store = createSqliteStore({ file: freshFile(), walSync: () => g.sync() });
    await store.migrate();
    await store.insert([newJobWrite()]);
    const syncs = g.syncs;
    assert.equal(await store.purgeWorkers(0), 0);
    await store.deleteWorker('no-such-worker');
    assert.equal(g.syncs, syncs, 'nothing changed: nothing to sync');
    const held = gate();
    const storeHeld = createSqliteStore({ file: store.db.name, walSync: () => held.sync() });
    try {
      // The rows are on disk already: published at once, and the answer does not wait for the delete's sync.
      let published = 0;
      const relaying = storeHeld.relayOutbox(10, async (rows) => { published += rows.length; });
      assert.equal(await isDone(relaying), true);
      assert.equal(await relaying, 2);
      assert.equal(published, 2);
    } finally {
      held.release();
      await storeHeld.close();
      await store.close();
    }
  });

  it('answers reads with no sync when nothing was written', async () => {
    const g = gate();
    g.release();
    const store = createSqliteStore({ file: freshFile(), walSync: () => g.sync() });
    try {
      await store.migrate();
      const before = g.syncs;
      assert.equal(await store.getJob('01ARZ3NDEKTSV4RRFFQ69G5FAV'), null);
      assert.equal(await store.lastEventId(), 0);
      assert.equal(g.syncs, before);
    } finally {
      await store.close();
    }
  });

  it('a sync that fails fails the write waiting on it and every operation after, as the store unavailable', async () => {
    let fail = false;
    const store = createSqliteStore({ file: freshFile(), walSync: async () => { if (fail) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }); } });
    await store.migrate();
    fail = true;
    const unavailable = (err: unknown) => err instanceof AtsError && err.code === 'ATS_ERR_STORE_UNAVAILABLE';
    await assert.rejects(store.insert([newJobWrite()]), unavailable);
    fail = false;
    await assert.rejects(store.getJob('01ARZ3NDEKTSV4RRFFQ69G5FAV'), unavailable, 'the connection is closed: no answer from a log that may not be on disk');
    await assert.rejects(store.insert([newJobWrite()]), unavailable);
    await store.close();
  });

  it('keeps what it answered across a reopen, with the real sync of the log', async () => {
    const file = freshFile();
    const write = newJobWrite();
    const store = createSqliteStore({ file });
    await store.migrate();
    await store.insert([write]);
    await store.close();
    const again = createSqliteStore({ file });
    try {
      assert.equal((await again.getJob(write.job.id))?.id, write.job.id);
    } finally {
      await again.close();
    }
  });
});

describe('the log file sync', () => {
  it('syncs nothing when there is no log, then the log once there is one, and a log put in its place', async () => {
    const file = freshFile();
    const wal = walFile(file);
    try {
      await wal.sync();
      writeFileSync(`${file}-wal`, 'frames');
      await wal.sync();
      unlinkSync(`${file}-wal`);
      writeFileSync(`${file}-wal`, 'other frames');
      await wal.sync();
    } finally {
      await wal.release();
    }
  });
});
