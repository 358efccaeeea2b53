/**
 * The QueueStore port in SQL, shared by both stores: the `queues` table lists
 * every queue a job may name (engine/queue-registry.ts). An admission locks
 * the whole list (MySQL: every row and the gap after the last, FOR UPDATE;
 * SQLite: the write transaction holds the database), so two processes
 * admitting new queues at once cannot both take the last place.
 */
import type { QueueShare, QueueStore } from '../../engine/ports.js';
import type { Dialect } from './dialect.js';
import type { Exec, Program } from './program.js';
import { toNum } from './rows.js';
import { marks, type Sql } from './statements.js';
import type { InTransaction } from './keys.js';

/** The statement that reads which of `names` are listed. */
const listedOf = (names: readonly string[]): Sql => ({ sql: `SELECT name FROM queues WHERE name IN (${marks(names.length)})`, params: [...names] });

/**
 * Lists the `names` not listed yet, the first ones first, while fewer than
 * `max` are listed, and fewer than `share.max` by `share.tenant`; returns
 * those that found no place.
 */
function* admitProgram(d: Dialect, names: readonly string[], max: number, at: number, share: QueueShare | undefined): Program<string[]> {
  // The counts first: their lock is what makes the check and the inserts one step for every other admission.
  const { rows: [count] } = yield {
    sql: `SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN tenant = ? THEN 1 ELSE 0 END), 0) AS mine FROM queues ${d.forUpdate}`,
    params: [share?.tenant ?? null],
  };
  let listed = toNum(count?.n ?? 0);
  let mine = toNum(count?.mine ?? 0);
  const { rows } = yield listedOf(names);
  const known = new Set(rows.map((r) => String(r.name)));
  const refused: string[] = [];
  for (const name of names) {
    if (known.has(name)) continue;
    if (listed >= max || (share && mine >= share.max)) {
      refused.push(name);
      continue;
    }
    yield { sql: 'INSERT INTO queues (name, created_at, tenant) VALUES (?, ?, ?)', params: [name, at, share?.tenant ?? null] };
    known.add(name);
    listed++;
    mine++;
  }
  return refused;
}

export function createSqlQueues(exec: Exec, d: Dialect, inTransaction: InTransaction): QueueStore {
  return {
    admitQueues: async (names, max, at, share) => {
      const distinct = [...new Set(names)];
      if (distinct.length === 0) return [];
      // Listed already (the usual case): no transaction, no lock.
      const read = listedOf(distinct);
      const { rows } = await exec(read.sql, read.params);
      const listed = new Set(rows.map((r) => String(r.name)));
      const rest = distinct.filter((n) => !listed.has(n));
      return rest.length === 0 ? [] : inTransaction(() => admitProgram(d, rest, max, at, share));
    },
    countQueues: async () => toNum((await exec('SELECT COUNT(*) AS n FROM queues', [])).rows[0]?.n ?? 0),
  };
}
