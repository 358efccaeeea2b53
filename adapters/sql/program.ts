/**
 * The write paths (insert, update) written once for both stores, as
 * generators that yield SQL steps and receive their outcomes. The MySQL store
 * drives them with `await` on a pooled connection, the SQLite store drives
 * them synchronously inside one `db.transaction()`: the same statements, in
 * the same order, with the same checks. Transactions, locks and retries stay
 * in the adapters.
 */
import type { Row } from './rows.js';
import type { Sql } from './statements.js';

/** What a step returns: its rows (a SELECT) and how many rows it changed (DML). */
export interface Outcome {
  rows: Row[];
  changes: number;
  /** For a multi-statement step (`Sql.multi`): the changed rows of each statement, in order. */
  each?: number[];
}

export type Program<T> = Generator<Sql, T, Outcome>;

/** Runs one statement outside a program: its rows (a SELECT) or its changed rows. */
export type Exec = (sql: string, params: readonly unknown[]) => Promise<Outcome>;

/** Run a program with a synchronous executor (better-sqlite3). */
export function runSync<T>(program: Program<T>, exec: (step: Sql) => Outcome): T {
  let next = program.next();
  while (!next.done) next = program.next(exec(next.value));
  return next.value;
}

/** Run a program with an asynchronous executor (mysql2). */
export async function runAsync<T>(program: Program<T>, exec: (step: Sql) => Promise<Outcome>): Promise<T> {
  let next = program.next();
  while (!next.done) next = program.next(await exec(next.value));
  return next.value;
}
