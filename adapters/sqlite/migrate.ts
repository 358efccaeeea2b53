/**
 * Apply `adapters/sqlite/migrations/*.sql` in one `BEGIN IMMEDIATE`
 * transaction: it takes the database's write lock before reading the ledger,
 * so a second process starting meanwhile waits, then finds nothing pending.
 * Its wait outlasts the longest migration (adapters/sql/migration-wait.ts):
 * one attempt waits busy_timeout, then it tries again, logging that it
 * waits, for up to `MIGRATION_WAIT_MS`. SQLite DDL is transactional: a failed
 * migration leaves no trace.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from 'better-sqlite3';
import { AtsError } from '../../engine/errors.js';
import { foreignTables, loadMigrations, MigrationFailed, pending, unknownApplied, warnOfNewerSchema, type Migration } from '../sql/migrations.js';
import { BUSY, whileMigrating, type MigrationWait } from '../sql/migration-wait.js';
import type { StoreClock } from '../sql/options.js';
import { CREATE_SCHEMA_MIGRATIONS, INSERT_MIGRATION, SELECT_APPLIED_MIGRATIONS } from '../sql/statements.js';

export const SQLITE_MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

/**
 * Writes the header's user_version back unchanged. With nothing pending the
 * migration writes nothing, and a file that opened read-only (SQLite falls
 * back to reading a file it may not write) would start and then fail every
 * write: this fails the start instead, with SQLITE_READONLY.
 */
function probeWrite(db: Database): void {
  const version = Number(db.pragma('user_version', { simple: true }));
  db.pragma(`user_version = ${version}`);
}

/**
 * Throws ATS_ERR_CONFIG, before anything is written, when the file is another
 * program's database (adapters/sql/migrations.ts `foreignTables`), rather
 * than failing on its tables half way through a migration.
 */
function refuseForeign(db: Database, migrations: readonly Migration[]): void {
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name);
  const ledgerColumns = tables.some((n) => n.toLowerCase() === 'schema_migrations')
    ? (db.pragma('table_info(schema_migrations)') as { name: string }[]).map((c) => c.name)
    : null;
  const why = foreignTables(migrations, { tables, ledgerColumns });
  if (why) {
    throw new AtsError('ATS_ERR_CONFIG', `the SQLite database ${db.memory ? db.name : resolve(db.name)} is not the scheduler's: ${why}; nothing was written to it: move it away, or give the scheduler another folder`);
  }
}

/**
 * Migrates; when no other process holds the file, before it returns (the
 * first attempt runs synchronously). `wait.attemptMs` plays no part: an
 * attempt waits the connection's busy_timeout.
 */
export function migrateSqlite(db: Database, clock: StoreClock, dir = SQLITE_MIGRATIONS_DIR, wait: MigrationWait = {}): Promise<void> {
  const migrations = loadMigrations(dir);
  const apply = db.transaction(() => {
    refuseForeign(db, migrations);
    db.exec(CREATE_SCHEMA_MIGRATIONS);
    probeWrite(db);
    const applied = (db.prepare(SELECT_APPLIED_MIGRATIONS).all() as { version: number }[]).map((r) => r.version);
    for (const m of pending(migrations, applied)) {
      try {
        db.exec(m.sql);
      } catch (err) {
        throw new MigrationFailed(m, err);
      }
      db.prepare(INSERT_MIGRATION).run(m.version, m.name, clock.now());
    }
    return unknownApplied(migrations, applied);
  });
  return whileMigrating(() => {
    try {
      warnOfNewerSchema(migrations, apply.immediate(), wait.logger);
      return undefined;
    } catch (err) {
      // Another process holds the write lock past busy_timeout (SQLITE_BUSY and its variants): most likely its migration.
      if (String((err as { code?: unknown }).code).startsWith('SQLITE_BUSY')) return BUSY;
      throw err;
    }
  }, clock, wait);
}
