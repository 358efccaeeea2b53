/**
 * Apply `adapters/mysql/migrations/*.sql` under a named lock, so processes
 * starting together apply each migration once: the first takes the lock and
 * migrates, the others wait, then find nothing pending. The wait outlasts the
 * longest migration (adapters/sql/migration-wait.ts): GET_LOCK for
 * `attemptMs`, then again, logging that it waits, for up to `MIGRATION_WAIT_MS`.
 */
import { fileURLToPath } from 'node:url';
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { AtsError } from '../../engine/errors.js';
import { foreignTables, loadMigrations, MigrationFailed, pending, unknownApplied, warnOfNewerSchema, type Migration } from '../sql/migrations.js';
import { BUSY, whileMigrating, type MigrationWait } from '../sql/migration-wait.js';
import { CREATE_SCHEMA_MIGRATIONS, INSERT_MIGRATION, SELECT_APPLIED_MIGRATIONS } from '../sql/statements.js';
import type { StoreClock } from '../sql/options.js';
import { GET_MIGRATION_LOCK, RELEASE_MIGRATION_LOCK } from './statements.js';
import { isMysqlUnavailable } from './unavailable.js';

export const MYSQL_MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

/** The tables of the database the session uses. */
const SELECT_TABLES = 'SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE()';
/** The columns of its `schema_migrations`. */
const SELECT_LEDGER_COLUMNS = "SELECT column_name AS c FROM information_schema.columns WHERE table_schema = DATABASE() AND LOWER(table_name) = 'schema_migrations'";

/** How long one GET_LOCK waits before the process logs that it still waits and asks again. */
const LOCK_ATTEMPT_MS = 10_000;

/** MySQL/MariaDB: the index or column to drop does not exist. */
const ER_CANT_DROP_FIELD_OR_KEY = 1091;
/** MySQL/MariaDB: the column to add exists. */
const ER_DUP_FIELDNAME = 1060;
/** MySQL/MariaDB: an index of that name exists. */
const ER_DUP_KEYNAME = 1061;

/**
 * A rerun of a migration that died after this DROP (or ADD COLUMN, or
 * CREATE INDEX) and before its ledger row finds the index already gone (the
 * column or the index already there): that statement is done. (MySQL 8 has
 * neither `DROP INDEX IF EXISTS`, `ADD COLUMN IF NOT EXISTS` nor `CREATE INDEX IF NOT EXISTS`.)
 */
function alreadyDropped(statement: string, err: unknown): boolean {
  const errno = (err as { errno?: unknown } | null)?.errno;
  return (errno === ER_CANT_DROP_FIELD_OR_KEY && /^ALTER TABLE \w+ DROP (INDEX|KEY) \w+$/i.test(statement))
    || (errno === ER_DUP_FIELDNAME && /^ALTER TABLE \w+ ADD COLUMN \w+ [^,;]+$/i.test(statement))
    || (errno === ER_DUP_KEYNAME && /^CREATE (UNIQUE )?INDEX \w+ ON \w+ \([^;]+\)$/i.test(statement));
}

/** The database the connection uses, for a message (never the URL: it may hold a password). */
async function databaseOf(conn: PoolConnection): Promise<string> {
  try {
    const [[row]] = await conn.query<RowDataPacket[]>('SELECT DATABASE() AS db');
    return String(row?.db);
  } catch {
    return '(unknown)';
  }
}

/**
 * Throws ATS_ERR_CONFIG, before anything is written, when the database is
 * another program's (adapters/sql/migrations.ts `foreignTables`): a
 * `MYSQL_URL` naming an application's own database, whose `jobs` or `outbox`
 * the scheduler would otherwise pass over and then fail on, half of its
 * schema made beside them.
 */
async function refuseForeign(conn: PoolConnection, migrations: readonly Migration[]): Promise<string[]> {
  const [tables] = await conn.query<RowDataPacket[]>(SELECT_TABLES);
  const names = tables.map((r) => String(r.t));
  let ledgerColumns: string[] | null = null;
  if (names.some((n) => n.toLowerCase() === 'schema_migrations')) {
    const [columns] = await conn.query<RowDataPacket[]>(SELECT_LEDGER_COLUMNS);
    ledgerColumns = columns.map((r) => String(r.c));
  }
  const why = foreignTables(migrations, { tables: names, ledgerColumns });
  if (why) {
    throw new AtsError('ATS_ERR_CONFIG', `the MySQL database ${await databaseOf(conn)} is not the scheduler's: ${why}; nothing was written to it: give the scheduler a database of its own`);
  }
  return names;
}

/**
 * The server's errors for a statement this user has no privilege for: a
 * least-privilege user (SELECT, INSERT, UPDATE, DELETE) runs no DDL.
 */
const DENIED_ERRNOS: ReadonlySet<number> = new Set([
  1142, // ER_TABLEACCESS_DENIED_ERROR: CREATE / ALTER / INDEX / DROP command denied for a table
  1044, // ER_DBACCESS_DENIED_ERROR
  1227, // ER_SPECIFIC_ACCESS_DENIED_ERROR
]);

/**
 * What a start by a user without DDL privileges on a database that lacks
 * migrations throws: not a statement that failed on what the database holds,
 * but the schema to be migrated by someone who may (a DBA, with `ats start`
 * or `ats keys ls` under their user). Exit 1 at start: a supervisor's restart gets past it once
 * the database is migrated.
 */
async function deniedMigration(conn: PoolConnection, todo: readonly Migration[], err: unknown): Promise<Error> {
  const file = (m: Migration) => `${String(m.version).padStart(4, '0')}_${m.name}`;
  const missing = todo.length === 1 ? `migration ${file(todo[0]!)}, and this user may not run it` : `${todo.length} migrations (${file(todo[0]!)} to ${file(todo[todo.length - 1]!)}), and this user may not run them`;
  return new Error(
    `the MySQL database ${await databaseOf(conn)} lacks ${missing}: ${(err as Error).message}; ` +
    'migrate it with a user that has CREATE, ALTER, INDEX and DROP besides SELECT, INSERT, UPDATE and DELETE (or ALL) on the database ' +
    '(ats start, or ats keys ls, with that user in MYSQL_URL), then start again',
    { cause: err },
  );
}

const denied = (err: unknown): boolean => DENIED_ERRNOS.has((err as { errno?: unknown } | null)?.errno as number);

/**
 * MySQL DDL commits implicitly: a migration that dies halfway is not rolled
 * back. Hence `IF NOT EXISTS` in the files and `alreadyDropped`, so a rerun
 * completes it.
 */
export async function migrateMysql(pool: Pool, clock: StoreClock, dir = MYSQL_MIGRATIONS_DIR, wait: MigrationWait = {}): Promise<void> {
  const migrations = loadMigrations(dir);
  // GET_LOCK belongs to the session: every statement must run on this one connection.
  const conn = await pool.getConnection();
  try {
    // GET_LOCK counts whole seconds (here at least one: a zero would not wait at all).
    const attemptS = Math.max(1, Math.round((wait.attemptMs ?? LOCK_ATTEMPT_MS) / 1000));
    await whileMigrating(async () => {
      const [[lock]] = await conn.query<RowDataPacket[]>(GET_MIGRATION_LOCK, [attemptS]);
      // 0: another session holds it (its migration); NULL: an error on the server (the session killed).
      if (lock?.locked === null || lock?.locked === undefined) throw new AtsError('ATS_ERR_STORE_UNAVAILABLE', 'could not take the migration lock');
      return Number(lock.locked) === 1 ? undefined : BUSY;
    }, clock, wait);
    try {
      const tables = await refuseForeign(conn, migrations);
      const hasLedger = tables.includes('schema_migrations');
      const versions = hasLedger ? (await conn.query<RowDataPacket[]>(SELECT_APPLIED_MIGRATIONS))[0].map((r) => Number(r.version)) : [];
      warnOfNewerSchema(migrations, unknownApplied(migrations, versions), wait.logger);
      const todo = pending(migrations, versions);
      // The ledger made when missing, and run again (IF NOT EXISTS) when there is something to migrate, as a check
      // of the user's privileges before any migration's statement runs (some begin with an UPDATE of every job).
      // Nothing to migrate, nothing run: a user without CREATE (the database migrated by a DBA) is refused even this.
      if (!hasLedger || todo.length > 0) {
        try {
          await conn.query(CREATE_SCHEMA_MIGRATIONS);
        } catch (err) {
          if (denied(err)) throw await deniedMigration(conn, todo, err);
          throw err;
        }
      }
      for (const m of todo) {
        for (const [i, statement] of m.statements.entries()) {
          try {
            await conn.query(statement);
          } catch (err) {
            if (alreadyDropped(statement, err)) continue;
            if (denied(err)) throw await deniedMigration(conn, todo.slice(todo.indexOf(m)), err);
            // An outage stays what it is (the store's callers read it as one); anything else names the migration.
            if (isMysqlUnavailable(err)) throw err;
            throw new MigrationFailed(m, err, {
              before: `the MySQL database ${await databaseOf(conn)} cannot be used: `,
              where: ` at its statement ${i + 1} of ${m.statements.length}`,
              after: '; MySQL does not roll DDL back: the statements before it stay applied, and the next start runs this migration again from its first statement',
            });
          }
        }
        await conn.query(INSERT_MIGRATION, [m.version, m.name, clock.now()]);
      }
    } finally {
      await conn.query(RELEASE_MIGRATION_LOCK);
    }
  } finally {
    conn.release();
  }
}
