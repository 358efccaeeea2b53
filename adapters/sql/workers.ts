/** The WorkerRegistryStore port over one "run this statement" function, shared by both stores. */
import type { WorkerRecord, WorkerRegistryStore } from '../../engine/ports.js';
import { MAX_WORKERS_LISTED } from '../../engine/worker-presence.js';
import type { Dialect } from './dialect.js';
import { toNum, type Row } from './rows.js';
import type { Exec } from './program.js';

const COLUMNS = 'id, host, pid, queues, types, concurrency, started_at, last_seen_at';

function rowToWorker(r: Row): WorkerRecord {
  return {
    id: String(r.id), host: String(r.host), pid: toNum(r.pid), queues: JSON.parse(String(r.queues)) as string[],
    types: JSON.parse(String(r.types)) as string[], concurrency: toNum(r.concurrency), startedAt: toNum(r.started_at), lastSeenAt: toNum(r.last_seen_at),
  };
}

export function createSqlWorkers(exec: Exec, d: Dialect): WorkerRegistryStore {
  const onConflict = d.setOnConflict('id', COLUMNS.split(', ').slice(1));
  const upsert = `INSERT INTO workers (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ${onConflict.sql}`;
  return {
    upsertWorker: async (w) => {
      const rest = [w.host, w.pid, JSON.stringify(w.queues), JSON.stringify(w.types), w.concurrency, w.startedAt, w.lastSeenAt];
      await exec(upsert, [w.id, ...rest, ...(onConflict.rebind ? rest : [])]);
    },
    deleteWorker: async (id) => {
      await exec('DELETE FROM workers WHERE id = ?', [id]);
    },
    listWorkers: async () => (await exec(`SELECT ${COLUMNS} FROM workers ORDER BY id LIMIT ?`, [MAX_WORKERS_LISTED])).rows.map(rowToWorker),
    purgeWorkers: async (before) => (await exec('DELETE FROM workers WHERE last_seen_at < ?', [before])).changes,
  };
}
