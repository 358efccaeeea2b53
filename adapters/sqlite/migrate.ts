/**
 * Apply `adapters/sqlite/migrations/*.sql` in one `BEGIN IMMEDIATE`
 * transaction: it takes the database's write lock before reading the ledger,
 * so a second process starting at once waits (busy_timeout), then finds
 * nothing pending. SQLite DDL is transactional: a failed migration leaves no trace.
 */
import { fileURLToPath } from 'node:url';
import type { Database } from 'better-sqlite3';
import { loadMigrations, pending } from '../sql/migrations.js';
import type { StoreClock } from '../sql/options.js';
import { CREATE_SCHEMA_MIGRATIONS, INSERT_MIGRATION, SELECT_APPLIED_MIGRATIONS } from '../sql/statements.js';

export const SQLITE_MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

export function migrateSqlite(db: Database, clock: StoreClock, dir = SQLITE_MIGRATIONS_DIR): void {
  const migrations = loadMigrations(dir);
  const apply = db.transaction(() => {
    db.exec(CREATE_SCHEMA_MIGRATIONS);
    const applied = (db.prepare(SELECT_APPLIED_MIGRATIONS).all() as { version: number }[]).map((r) => r.version);
    for (const m of pending(migrations, applied)) {
      db.exec(m.sql);
      db.prepare(INSERT_MIGRATION).run(m.version, m.name, clock.now());
    }
  });
  apply.immediate();
}
