/**
 * Two write shapes of the scheduler, each measured alone on MariaDB with the
 * scheduler's own schema (its migrations) and a snapshot of the size it
 * writes, in transactions of 50 jobs (a worker's batch of claims):
 *
 * - job updates: one compare-and-set `UPDATE` per job, sent as one
 *   multi-statement, against one `UPDATE ... JOIN` of a derived table
 *   (`updateJobsCas`), after the same `SELECT ... FOR UPDATE`;
 * - outbox: five rows per job (one per message, as before messages were
 *   batched) against one row per transaction holding its 250 messages; each
 *   inserted, then claimed and deleted as the relay does.
 *
 * Prints MariaDB's and this process's CPU seconds per 1,000 jobs for each,
 * twice in alternating order. Run it alone.
 *
 *   node --import tsx bench/limits/sql-writes.ts '{"jobs":20000}'
 */
import { createConnection, type Connection, type ResultSetHeader, type RowDataPacket } from 'mysql2/promise';
import { createMysqlStore } from '../../adapters/mysql/index.js';
import { UPDATE_JOB_CAS, updateJobsCas } from '../../adapters/sql/statements.js';
import { start } from '../../machines/lifecycle.js';
import { runId } from '../lib/driver.js';
import { CpuMeter, serverPids } from '../lib/proc.js';
import { createBenchDatabase } from '../lib/services.js';
import { round } from '../lib/stats.js';

const { jobs = 20_000 } = JSON.parse(process.argv[2] ?? '{}') as { jobs?: number };
const PER_TX = 50;
const MESSAGES_PER_JOB = 5;

const db = await createBenchDatabase(runId());
const store = await createMysqlStore({ url: db.url });
await store.migrate();
await store.close();
const conn = await createConnection({ uri: db.url, multipleStatements: true });

const snapshot = JSON.stringify(start({ at: Date.now(), maxAttempts: 3, backoff: { kind: 'exponential', baseMs: 1000, maxMs: 60_000, jitter: 'full' } }).next);
const ids = Array.from({ length: jobs }, (_, i) => String(i).padStart(26, '0'));
for (let i = 0; i < jobs; i += 1000) {
  const part = ids.slice(i, i + 1000);
  await conn.query(
    `INSERT INTO jobs (id, type, queue, state, version, attempt, priority, timeout_ms, payload, snapshot, created_at, updated_at) VALUES ${part.map(() => "(?, 'demo.echo', 'default', 'pending', 1, 0, 0, 30000, '{}', ?, 1, 1)").join(', ')}`,
    part.flatMap((id) => [id, snapshot]),
  );
}

const marks = (n: number) => Array.from({ length: n }, () => '?').join(', ');
const batches = (): string[][] => Array.from({ length: Math.ceil(jobs / PER_TX) }, (_, k) => ids.slice(k * PER_TX, (k + 1) * PER_TX));
let version = 1;

/** One transaction per batch: lock the jobs, then write them with `write`; every job moves one version. */
async function updateAll(write: (c: Connection, part: string[], v: number) => Promise<number>): Promise<void> {
  for (const part of batches()) {
    await conn.query('START TRANSACTION');
    await conn.query(`SELECT id, snapshot FROM jobs WHERE id IN (${marks(part.length)}) ORDER BY id FOR UPDATE`, part);
    const changed = await write(conn, part, version);
    if (changed !== part.length) throw new Error(`${changed} of ${part.length} jobs updated`);
    await conn.query('COMMIT');
  }
  version++;
}
const params = (part: string[], v: number) => part.flatMap((id) => ['running', v + 1, 1, 5, 5, snapshot, 2, id, v]);

const perJobUpdates = () => updateAll(async (c, part, v) => {
  const [res] = await c.query(part.map(() => UPDATE_JOB_CAS).join(';\n'), params(part, v));
  return (Array.isArray(res) ? (res as ResultSetHeader[]) : [res as ResultSetHeader]).reduce((n, r) => n + r.affectedRows, 0);
});
const oneUpdate = () => updateAll(async (c, part, v) => {
  const [res] = await c.query(updateJobsCas(part.length), params(part, v));
  return (res as ResultSetHeader).affectedRows;
});

const message = JSON.stringify({ jobId: ids[0], seq: 2, type: 'STARTED', from: 'pending', to: 'running', at: 1, data: { type: 'STARTED', attempt: 1, workerId: 'w-1', leaseUntil: 2, at: 1 }, jobType: 'demo.echo', queue: 'default' });
const headers = JSON.stringify({ 'content-type': 'application/json', 'ats-kind': 'transition', 'ats-schema': '1' });

/** Insert the outbox rows of every batch (`rows` per transaction), then claim and delete them 500 messages at a time. */
async function outbox(rowsOf: (part: string[]) => unknown[][], claimRows: number): Promise<void> {
  for (const part of batches()) {
    const rows = rowsOf(part);
    await conn.query(`INSERT INTO outbox (topic, msg_key, payload, headers, created_at, message_count) VALUES ${rows.map(() => '(?, ?, ?, ?, 1, ?)').join(', ')}`, rows.flat());
  }
  for (;;) {
    await conn.query('START TRANSACTION');
    const [claimed] = await conn.query<RowDataPacket[]>('SELECT id FROM outbox ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED', [claimRows]);
    if (claimed.length === 0) {
      await conn.query('COMMIT');
      return;
    }
    const taken = claimed.map((r) => r.id as number);
    await conn.query(`SELECT payload, headers FROM outbox WHERE id IN (${marks(taken.length)})`, taken);
    await conn.query(`DELETE FROM outbox WHERE id IN (${marks(taken.length)}) LIMIT ?`, [...taken, taken.length]);
    await conn.query('COMMIT');
  }
}
const rowPerMessage = () => outbox((part) => part.flatMap((id) => Array.from({ length: MESSAGES_PER_JOB }, () => ['ats.events', id, message, headers, null])), 500);
const rowPerTransaction = () => outbox((part) => [['*', '', Array.from({ length: part.length * MESSAGES_PER_JOB }, () => `ats.events\n${part[0]}\n${headers}\n${message}`).join('\n'), '{}', part.length * MESSAGES_PER_JOB]], 2);

const meter = new CpuMeter(() => ({ ...serverPids(['mariadb']), bench: [process.pid] }));
const results: Record<string, Array<Record<string, number>>> = {};
async function measure(name: string, fn: () => Promise<void>): Promise<void> {
  meter.start();
  await fn();
  const cpu = meter.stop();
  (results[name] ??= []).push(Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round((v * 1000) / jobs, 3)])));
}
try {
  for (let round = 0; round < 2; round++) {
    const shapes: Array<[string, () => Promise<void>]> = [
      ['update: one statement per job', perJobUpdates], ['update: one statement per transaction', oneUpdate],
      ['outbox: a row per message', rowPerMessage], ['outbox: a row per transaction', rowPerTransaction],
    ];
    for (const [name, fn] of round === 0 ? shapes : shapes.reverse()) await measure(name, fn);
  }
  console.log(`BENCH_RESULT ${JSON.stringify({ jobs, perTransaction: PER_TX, cpuPer1k: results })}`);
} finally {
  await conn.end();
  await db.drop();
}
