/** What only the SQLite store has: its file setup and migrating from two processes at once. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { transitionWrite } from '../../engine/transitions.js';
import { loadMigrations } from '../sql/migrations.js';
import { CREATE_SCHEMA_MIGRATIONS } from '../sql/statements.js';
import { createSqliteStore } from './index.js';
import { SQLITE_MIGRATIONS_DIR } from './migrate.js';

const INDEX = new URL('./index.ts', import.meta.url).href;

/** A child process that opens `file` and migrates it; resolves with its exit code and stderr. */
function migrateInChild(file: string): Promise<{ code: number | null; stderr: string }> {
  const script = `const { createSqliteStore } = await import(${JSON.stringify(INDEX)});
    const store = createSqliteStore({ file: ${JSON.stringify(file)} });
    await store.migrate();
    await store.close();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('SQLite store', () => {
  it('two processes migrating one fresh file at once both succeed, and each migration runs once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ats-sqlite-'));
    try {
      const file = join(dir, 'a', 'b', 'ats.sqlite');
      const results = await Promise.all([migrateInChild(file), migrateInChild(file), migrateInChild(file)]);
      for (const r of results) assert.equal(r.code, 0, r.stderr);
      const store = createSqliteStore({ file });
      try {
        const rows = store.db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as { version: number; name: string }[];
        assert.deepEqual(rows.map((r) => [r.version, r.name]), loadMigrations(SQLITE_MIGRATIONS_DIR).map((m) => [m.version, m.name]));
        assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
        assert.equal(Number(store.db.pragma('busy_timeout', { simple: true })), 5000);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('deletes the rows the log acked, and keeps those whose publish failed', async () => {
    const store = createSqliteStore({ file: ':memory:' });
    await store.migrate();
    await store.insert([newJobWrite()]);
    await assert.rejects(store.relayOutbox(10, async () => { throw new Error('broker down'); }), /broker down/);
    assert.deepEqual(store.db.prepare('SELECT COUNT(*) AS n FROM outbox').all(), [{ n: 1 }], 'one row holds the transaction\'s two messages');
    assert.equal(await store.relayOutbox(10, async () => {}), 2);
    assert.deepEqual(store.db.prepare('SELECT COUNT(*) AS n FROM outbox').all(), [{ n: 0 }]);
    await store.close();
  });

  it('migration 0003 counts the jobs a database already holds', async () => {
    const store = createSqliteStore({ file: ':memory:' });
    try {
      await store.migrate();
      await store.insert([newJobWrite({ queue: 'a' }), newJobWrite({ queue: 'a' }), newJobWrite({ queue: '__proto__', type: 't' })]);
      // The database as it was before 0003: no counts table, 0003 (and 0013, which keys it by tenant) not applied;
      // 0013 makes `jobs` again with the columns it knows, so 0015 (which adds `parent`) runs again after it.
      store.db.exec('DROP TABLE job_counts; DELETE FROM schema_migrations WHERE version IN (3, 13, 15)');
      await store.migrate();
      const counts = (await store.jobCounts()).map((c) => [c.queue, c.type, c.state, c.n]).sort();
      assert.deepEqual(counts, [['__proto__', 't', 'pending', 1], ['a', 'demo.echo', 'pending', 2]]);
      await store.insert([newJobWrite({ queue: 'a' })]);
      assert.equal((await store.stats()).byQueue['a']!.pending, 3);
    } finally {
      await store.close();
    }
  });

  it('migration 0004: a job running before it (or written by an older process) is found when its lease ends; the two indexes are gone', async () => {
    const store = createSqliteStore({ file: ':memory:' });
    try {
      await store.migrate();
      const w = newJobWrite();
      await store.insert([w]);
      const at = 1_700_000_000_000;
      await store.update([w.job.id], (jobs) => {
        const p = transitionWrite(jobs.get(w.job.id)!, { type: 'PUBLISHED', at, attempt: 1 })!;
        return { writes: [p, transitionWrite(p.job, { type: 'STARTED', at, attempt: 1, leaseUntil: at + 1000, workerId: 'w' })!], result: null };
      });
      // The database as it was before 0004.
      store.db.exec(`CREATE INDEX ix_jobs_state_lease ON jobs (state, lease_until);
        CREATE INDEX ix_outbox_unpublished ON outbox (published_at, id);
        UPDATE jobs SET due_at = NULL; DELETE FROM schema_migrations WHERE version = 4`);
      await store.migrate();
      assert.equal((store.db.prepare('SELECT due_at FROM jobs').get() as { due_at: number }).due_at, at + 1000, 'the lease end as due_at');
      assert.deepEqual((await store.findExpiredLeases(at + 1000, 10)).map((j) => j.id), [w.job.id]);
      // A process of the version before, still running during a rolling upgrade, writes due_at NULL.
      store.db.exec('UPDATE jobs SET due_at = NULL');
      assert.deepEqual((await store.findExpiredLeases(at + 1000, 10)).map((j) => j.id), [w.job.id]);
      assert.deepEqual(await store.findExpiredLeases(at + 999, 10), []);
      const gone = store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ('ix_jobs_state_lease', 'ix_outbox_unpublished')").all();
      assert.deepEqual(gone, []);
    } finally {
      await store.close();
    }
  });

  it('a file that holds another program\'s tables: refused as not the scheduler\'s (a bad setting), nothing written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ats-sqlite-'));
    try {
      const file = join(dir, 'ats.sqlite');
      const other = new Database(file);
      other.exec("CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO jobs (name) VALUES ('theirs')");
      other.close();
      const store = createSqliteStore({ file });
      try {
        await assert.rejects(store.migrate(), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'ATS_ERR_CONFIG');
          assert.equal(err.message, `the SQLite database ${file} is not the scheduler's: it holds a table named as the scheduler's (jobs) and no record of the scheduler's migrations (schema_migrations); nothing was written to it: move it away, or give the scheduler another folder`);
          return true;
        });
        assert.deepEqual(store.db.prepare('SELECT name FROM sqlite_master ORDER BY name').all(), [{ name: 'jobs' }], 'nothing written');
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a file whose table is not as the migrations make it (beside the scheduler\'s ledger): the migration fails naming the file and the migration, and changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ats-sqlite-'));
    try {
      const file = join(dir, 'ats.sqlite');
      const other = new Database(file);
      other.exec(`${CREATE_SCHEMA_MIGRATIONS}; CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO jobs (name) VALUES ('theirs')`);
      other.close();
      const store = createSqliteStore({ file });
      try {
        await assert.rejects(store.migrate(), (err: Error) => {
          assert.match(err.message, new RegExp(`^the SQLite database ${file.replace(/[.*+?^\${}()|[\]\\/]/g, '\\$&')} cannot be used: migration 0001_init failed: no such column: state \\(SQLITE_ERROR\\)$`));
          return true;
        });
        assert.deepEqual(store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all(), [{ name: 'jobs' }, { name: 'schema_migrations' }], 'nothing written');
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('works in memory', async () => {
    const store = createSqliteStore({ file: ':memory:' });
    await store.migrate();
    await store.migrate();
    await store.ping();
    assert.equal((await store.stats()).byState.pending, 0);
    await store.close();
    await assert.rejects(store.ping());
  });

  it('cuts the write-ahead log back to walSizeLimitBytes once checkpointed, instead of keeping its largest size', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ats-sqlite-'));
    const file = join(dir, 'ats.sqlite');
    const limit = 256 * 1024;
    const store = createSqliteStore({ file, walSizeLimitBytes: limit });
    try {
      await store.migrate();
      const big = 'x'.repeat(20_000);
      // About 8 MB written at once: the log grows past the limit (checkpoints wait for the transaction's end).
      await store.insert(Array.from({ length: 400 }, () => newJobWrite({ payload: { big } })));
      assert.ok(statSync(`${file}-wal`).size > limit, 'the log grew past the limit');
      store.db.pragma('wal_checkpoint(PASSIVE)');
      await store.insert([newJobWrite()]); // the next write starts the log over, cut to the limit
      assert.ok(statSync(`${file}-wal`).size <= limit, `the log was cut back (${statSync(`${file}-wal`).size} bytes)`);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('deleted jobs leave no trace of their payloads or errors in the file: the space freed is zeroed (secure_delete)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ats-sqlite-'));
    const file = join(dir, 'ats.sqlite');
    const store = createSqliteStore({ file });
    const marks = { payload: 'PAYLOAD-erase-7Q2', spilled: 'SPILLED-erase-7Q2', error: 'ERROR-erase-7Q2' };
    const inFile = (mark: string): boolean => readFileSync(file).includes(Buffer.from(mark));
    try {
      await store.migrate();
      // A kept job beside it: its page stays in use, so the deleted rows' bytes are freed within a page, not with it.
      await store.insert([newJobWrite({ payload: { keep: 'kept' } })]);
      const w = newJobWrite({ payload: { who: marks.payload }, maxAttempts: 2 });
      await store.insert([w]);
      const at = w.job.createdAt + 10;
      await store.update([w.job.id], (jobs) => {
        const p = transitionWrite(jobs.get(w.job.id)!, { type: 'PUBLISHED', at, attempt: 1 })!;
        const s = transitionWrite(p.job, { type: 'STARTED', at, attempt: 1, leaseUntil: at + 1000, workerId: 'w' })!;
        const f = transitionWrite(s.job, { type: 'FAILED', at, attempt: 1, error: { message: marks.error, retryable: false }, rand: 0 })!;
        return { writes: [p, s, f], result: null };
      });
      // A big one too, whose payload spills over pages of its own (freed whole).
      const big = newJobWrite({ payload: { who: marks.spilled, pad: 'p'.repeat(50_000) } });
      await store.insert([big]);
      await store.update([big.job.id], (jobs) => ({ writes: [transitionWrite(jobs.get(big.job.id)!, { type: 'CANCEL', at })!], result: null }));
      // Its messages published (a dead letter carries the payload): the outbox rows go as the relay's.
      while ((await store.relayOutbox(100, async () => {})) > 0);
      store.db.pragma('wal_checkpoint(TRUNCATE)');
      assert.ok(inFile(marks.payload) && inFile(marks.error) && inFile(marks.spilled), 'the marks are in the file before the delete');
      assert.deepEqual(await store.deleteJob(w.job.id), { ok: true });
      assert.deepEqual(await store.deleteJob(big.job.id), { ok: true });
      store.db.pragma('wal_checkpoint(TRUNCATE)');
      for (const mark of Object.values(marks)) assert.equal(inFile(mark), false, `${mark} is still in the database file after the delete`);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
