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
import { createSqliteStore, type SqliteStore } from './index.js';
import { walFile } from './wal-file.js';
import { hasSettled, settle } from '../../tests/helpers/manual-clock.js';

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

type Gate = ReturnType<typeof gate>;

/**
 * A migrated file (`first`, whose syncs end at once) and `open()`, which opens
 * another connection on it whose syncs wait for the test's `held.release()`;
 * all released and closed after `use`.
 */
async function onFile(use: (f: { first: SqliteStore; firstSyncs: Gate; open(): { store: SqliteStore; held: Gate } }) => Promise<void>): Promise<void> {
  const firstSyncs = gate();
  firstSyncs.release();
  const first = createSqliteStore({ file: freshFile(), walSync: () => firstSyncs.sync() });
  await first.migrate();
  const opened: Array<{ store: SqliteStore; held: Gate }> = [];
  const open = () => {
    const held = gate();
    const store = createSqliteStore({ file: first.db.name, walSync: () => held.sync() });
    opened.push({ store, held });
    return { store, held };
  };
  try {
    await use({ first, firstSyncs, open });
  } finally {
    for (const { store, held } of opened.reverse()) {
      held.release();
      await store.close();
    }
    await first.close();
  }
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

  it('answers a write, a read of it and a publish of its outbox only once the log is synced', () => onFile(async ({ first, open }) => {
    const { store, held } = open();
    const write = newJobWrite();
    const inserting = store.insert([write]);
    assert.equal(await hasSettled(inserting), false, 'the insert committed and waits for the sync');
    // The row is committed: another connection reads it at once.
    assert.equal((first.db.prepare('SELECT COUNT(*) AS n FROM jobs').get() as { n: number }).n, 1);
    const reading = store.getJob(write.job.id);
    let published = 0;
    const relaying = store.relayOutbox(10, async (rows) => { published += rows.length; });
    assert.equal(await hasSettled(reading), false, 'a read of a write not yet on disk waits too');
    assert.equal(await hasSettled(relaying), false);
    assert.equal(published, 0, 'no outbox row is published before it is on disk');
    held.release();
    await inserting;
    assert.equal((await reading)?.id, write.job.id);
    assert.equal(await relaying, 2);
    assert.equal(published, 2);
    assert.ok(held.syncs >= 1);
  }));

  it('holds an error too until what it may stem from is on disk', () => onFile(async ({ open }) => {
    const { store, held } = open();
    const write = newJobWrite();
    const inserting = store.insert([write]);
    // The same job again: refused on a row committed, not yet on disk.
    const again = store.insert([write]);
    assert.equal(await hasSettled(again), false);
    held.release();
    await inserting;
    await assert.rejects(again);
  }));

  it('a read of another connection\'s commit waits for a sync of its own (the other may not have synced yet)', () => onFile(async ({ open }) => {
    const writer = open();
    const reader = open();
    const write = newJobWrite();
    const inserting = writer.store.insert([write]);
    assert.equal(await hasSettled(inserting), false);
    const reading = reader.store.getJob(write.job.id);
    assert.equal(await hasSettled(reading), false, 'the row is committed, not on disk: the reader syncs the log itself');
    reader.held.release();
    assert.equal((await reading)?.id, write.job.id);
    assert.ok(reader.held.syncs >= 1);
    writer.held.release();
    await inserting;
  }));

  it('a write that changed no row, and the relay\'s delete of what it published, wait for no sync', () => onFile(async ({ first, firstSyncs, open }) => {
    await first.insert([newJobWrite()]);
    const syncs = firstSyncs.syncs;
    assert.equal(await first.purgeWorkers(0), 0);
    await first.deleteWorker('no-such-worker');
    assert.equal(firstSyncs.syncs, syncs, 'nothing changed: nothing to sync');
    // The rows are on disk already: published at once, and the answer does not wait for the delete's sync.
    const { store } = open();
    let published = 0;
    const relaying = store.relayOutbox(10, async (rows) => { published += rows.length; });
    assert.equal(await hasSettled(relaying), true);
    assert.equal(await relaying, 2);
    assert.equal(published, 2);
  }));

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
