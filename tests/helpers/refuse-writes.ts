/**
 * Makes a table of a real store refuse one kind of write, with a trigger, for
 * tests of what a failure halfway through a change leaves behind (on both
 * stores: the trigger fails the statement as the database's own error would).
 * `refuseWrites` answers the function that lifts the refusal again.
 */
import type { Pool } from 'mysql2/promise';
import type { Database } from 'better-sqlite3';

/** A table and the statement kind it refuses. */
export type Refusal = { table: 'audit_log' | 'api_keys'; op: 'INSERT' | 'UPDATE' };

/** What the helper needs of a store: the SQLite one has `db`, the MySQL one `pool`. */
export type TriggerHost = { db: Database } | { pool: Pool };

export async function refuseWrites(store: object, { table, op }: Refusal): Promise<() => Promise<void>> {
  const host = store as TriggerHost;
  const name = `refuse_${op.toLowerCase()}_${table}`;
  const message = `test: ${table} refuses ${op}`;
  if ('db' in host) {
    host.db.exec(`CREATE TRIGGER ${name} BEFORE ${op} ON ${table} BEGIN SELECT RAISE(ABORT, '${message}'); END`);
    return async () => void host.db.exec(`DROP TRIGGER IF EXISTS ${name}`);
  }
  await host.pool.query(`CREATE TRIGGER ${name} BEFORE ${op} ON ${table} FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '${message}'`);
  return async () => void (await host.pool.query(`DROP TRIGGER IF EXISTS ${name}`));
}
