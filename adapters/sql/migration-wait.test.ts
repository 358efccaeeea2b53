/**
 * A process that starts while another one migrates waits for that migration
 * (it may take minutes: 0013 rebuilds `jobs` on SQLite), then finds nothing
 * pending; it gives up with ATS_ERR_STORE_UNAVAILABLE only after the long
 * limit. On both stores, with the limits shortened: one attempt (SQLite's
 * busy_timeout, one GET_LOCK) far shorter than the hold, the whole wait longer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import type { Logger } from '../../engine/ports.js';
import { createTestDatabase, requireMysql } from '../../tests/helpers/mysql.js';
import { createMysqlStore } from '../mysql/index.js';
import { migrateMysql, MYSQL_MIGRATIONS_DIR } from '../mysql/migrate.js';
import { createSqliteStore } from '../sqlite/index.js';
import { migrateSqlite, SQLITE_MIGRATIONS_DIR } from '../sqlite/migrate.js';
import { loadMigrations } from './migrations.js';
import { SYSTEM_CLOCK } from './options.js';
import { INSERT_MIGRATION } from './statements.js';

/** A logger that keeps each line's message. */
function recordingLogger(): Logger & { lines: string[]; fields: unknown[] } {
  const lines: string[] = [];
  const fields: unknown[] = [];
  const keep = (msg: string, f?: unknown) => void (lines.push(msg), fields.push(f));
  return { lines, fields, debug: keep, info: keep, warn: keep, error: keep };
}

const WAITING = "waiting for another process's migration";

/** A fresh database whose migration lock another session holds until `release`. */
interface Held {
  release(): Promise<void>;
  migrate(wait: { timeoutMs: number; attemptMs: number; logger: Logger }): Promise<void>;
  applied(): Promise<number[]>;
  /** Records `version` as applied, as a newer build's migration would. */
  record(version: number): Promise<void>;
}

/** A fresh SQLite file whose write lock another connection holds (as a migrating process does). */
async function heldSqlite(attemptMs: number, fn: (h: Held) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-migwait-'));
  const file = join(dir, 'ats.sqlite');
  const store = createSqliteStore({ file, busyTimeoutMs: attemptMs });
  const other = new Database(file);
  try {
    other.exec('BEGIN IMMEDIATE');
    await fn({
      release: async () => void other.exec('COMMIT'),
      migrate: (wait) => Promise.resolve().then(() => migrateSqlite(store.db, SYSTEM_CLOCK, SQLITE_MIGRATIONS_DIR, wait)),
      applied: async () => (store.db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version),
      record: async (version) => void store.db.prepare(INSERT_MIGRATION).run(version, 'from_a_newer_build', Date.now()),
    });
  } finally {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A fresh MariaDB database whose migration lock another session holds. */
async function heldMysql(fn: (h: Held) => Promise<void>): Promise<void> {
  await requireMysql();
  const db = await createTestDatabase();
  const store = await createMysqlStore({ url: db.url, poolSize: 2 });
  const other = await createConnection({ uri: db.url });
  try {
    const [[took]] = await other.query<RowDataPacket[]>("SELECT GET_LOCK(LEFT(CONCAT('ats_migrate:', DATABASE()), 64), 0) AS locked");
    assert.equal(Number(took?.locked), 1);
    await fn({
      release: async () => void (await other.query("SELECT RELEASE_LOCK(LEFT(CONCAT('ats_migrate:', DATABASE()), 64))")),
      migrate: (wait) => migrateMysql(store.pool, SYSTEM_CLOCK, MYSQL_MIGRATIONS_DIR, wait),
      applied: async () => ((await store.pool.query('SELECT version FROM schema_migrations ORDER BY version'))[0] as { version: number }[]).map((r) => Number(r.version)),
      record: async (version) => void (await store.pool.query(INSERT_MIGRATION, [version, 'from_a_newer_build', Date.now()])),
    });
  } finally {
    await other.end();
    await store.close();
    await db.drop();
  }
}

const cases: { name: string; attemptMs: number; with: (fn: (h: Held) => Promise<void>) => Promise<void>; dir: string }[] = [
  { name: 'sqlite', attemptMs: 50, with: (fn) => heldSqlite(50, fn), dir: SQLITE_MIGRATIONS_DIR },
  { name: 'mysql', attemptMs: 1000, with: heldMysql, dir: MYSQL_MIGRATIONS_DIR },
];

for (const c of cases) {
  describe(`migration wait (${c.name})`, () => {
    it('a process starting during another one\'s long migration waits past one attempt, logs that it waits, then migrates', () => c.with(async (h) => {
      const logger = recordingLogger();
      const migrating = h.migrate({ timeoutMs: 60_000, attemptMs: c.attemptMs, logger });
      const outcome = migrating.then(() => 'migrated', (err: unknown) => err);
      // Held for well over one attempt: the old code gave up after one.
      await sleep(c.attemptMs * 2.5);
      await h.release();
      assert.equal(await outcome, 'migrated');
      assert.ok(logger.lines.includes(WAITING), logger.lines.join(' | '));
      assert.deepEqual(await h.applied(), loadMigrations(c.dir).map((m) => m.version));
    }));

    it('a database a newer build migrated: warned of, naming the versions this build does not know, and still used', () => c.with(async (h) => {
      await h.release();
      const quiet = recordingLogger();
      await h.migrate({ timeoutMs: 60_000, attemptMs: c.attemptMs, logger: quiet });
      assert.deepEqual(quiet.lines, [], 'nothing to say of a database this build migrated');
      const newest = loadMigrations(c.dir).at(-1)!.version;
      await h.record(newest + 1);
      const logger = recordingLogger();
      await h.migrate({ timeoutMs: 60_000, attemptMs: c.attemptMs, logger });
      assert.deepEqual(logger.lines, ['the database holds migrations this build does not know (a newer build migrated it); this build runs on it as it is']);
      assert.deepEqual(logger.fields, [{ newestKnown: newest, unknownApplied: [newest + 1] }]);
    }));

    it('gives up with ATS_ERR_STORE_UNAVAILABLE once the whole wait is over', () => c.with(async (h) => {
      const logger = recordingLogger();
      await assert.rejects(h.migrate({ timeoutMs: c.attemptMs * 2, attemptMs: c.attemptMs, logger }), (err: unknown) => {
        assert.equal((err as { code?: unknown }).code, 'ATS_ERR_STORE_UNAVAILABLE');
        assert.match((err as Error).message, /another process's migration/);
        return true;
      });
      assert.ok(logger.lines.includes(WAITING));
    }));
  });
}
