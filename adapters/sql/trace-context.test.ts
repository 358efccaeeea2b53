/**
 * The trace context a job is submitted under is stored with it (migration
 * 0006, column `trace_context`) and read back on every read, so each later
 * dispatch of the job (the first, a retry's, a re-dispatch) carries it as
 * `traceparent`/`tracestate`. A job submitted without one stores NULL and
 * its messages carry no trace header. On SQLite and on MariaDB.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RowDataPacket } from 'mysql2/promise';
import { createMysqlStore, type MysqlStore } from '../mysql/index.js';
import { createSqliteStore } from '../sqlite/index.js';
import { TRACEPARENT_HEADER, TRACESTATE_HEADER } from '../../engine/messages.js';
import { TOPICS, type JobSpec, type JobStore, type OutboxRow, type TraceContext } from '../../engine/ports.js';
import { mathRandom, systemClock, ulidIds } from '../../engine/system.js';
import { TransitionService } from '../../engine/transitions.js';
import { createTestDatabase, requireMysql } from '../../tests/helpers/mysql.js';

const TRACE: TraceContext = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'vendor=a"b\\c,other=1' };

const spec = (extra: Partial<JobSpec> = {}): JobSpec => ({
  type: 'demo.fail', payload: {}, queue: 'default', maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 0 }, timeoutMs: 30_000, priority: 0, ...extra,
});

/** The outbox rows waiting, taken (and deleted) as the relay would. */
async function drain(store: JobStore): Promise<OutboxRow[]> {
  const rows: OutboxRow[] = [];
  while ((await store.relayOutbox(100, async (batch) => void rows.push(...batch))) > 0);
  return rows;
}

/** Submits one traced and one untraced job, runs the traced one to its retry, and checks what was stored and written. */
async function checkStore(store: JobStore, rawTraceColumn: (id: string) => Promise<unknown>): Promise<void> {
  const transitions = new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds() });
  const traced = await transitions.submit(spec({ traceContext: TRACE }));
  const plain = await transitions.submit(spec({ idempotencyKey: 'plain' }));
  assert.ok(traced.ok && plain.ok);
  const id = traced.job.id;

  assert.deepEqual((await store.getJob(id))?.traceContext, TRACE);
  assert.deepEqual((await store.listJobs({ limit: 10 })).find((j) => j.id === id)?.traceContext, TRACE);
  const untraced = await store.getJob(plain.job.id);
  assert.ok(untraced && !('traceContext' in untraced), 'a job submitted without a context has none');
  assert.ok(!('traceContext' in (await store.findByIdempotencyKey('default', 'plain', 'default'))!));
  assert.equal(await rawTraceColumn(plain.job.id), null);
  assert.equal(typeof (await rawTraceColumn(id)), 'string');

  // The first dispatch, then attempt 1 fails and the retry is due: the retry's dispatch is written from the job as read back.
  await transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' });
  await transitions.apply(id, { type: 'FAILED', attempt: 1, error: { message: 'boom', retryable: true } });
  const retry = await transitions.apply(id, { type: 'RETRY_DUE' });
  assert.ok(retry.ok, 'the retry is due at once (fixed 0 ms backoff)');
  assert.deepEqual(retry.job.traceContext, TRACE, 'a transition keeps the context');

  const rows = await drain(store);
  const dispatches = (jobId: string) => rows.filter((r) => r.topic === TOPICS.dispatch && r.key === jobId);
  assert.deepEqual(dispatches(id).map((r) => (r.payload as { attempt: number }).attempt), [1, 2]);
  for (const r of dispatches(id)) {
    assert.equal(r.headers[TRACEPARENT_HEADER], TRACE.traceparent);
    assert.equal(r.headers[TRACESTATE_HEADER], TRACE.tracestate);
  }
  assert.equal(dispatches(plain.job.id).length, 1);
  for (const r of rows.filter((r) => r.key === plain.job.id || r.topic !== TOPICS.dispatch)) {
    assert.ok(!Object.hasOwn(r.headers, TRACEPARENT_HEADER) && !Object.hasOwn(r.headers, TRACESTATE_HEADER), `${r.topic}: ${JSON.stringify(r.headers)}`);
  }
}

describe('a job’s trace context, stored', () => {
  it('SQLite: kept with the job, carried by each of its dispatches', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ats-trace-'));
    const store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    try {
      await store.migrate();
      await checkStore(store, async (id) => (store.db.prepare('SELECT trace_context FROM jobs WHERE id = ?').get(id) as { trace_context: unknown }).trace_context);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('MariaDB: kept with the job, carried by each of its dispatches; a rerun of migration 0006 completes', async () => {
    await requireMysql();
    const db = await createTestDatabase();
    let store: MysqlStore | null = null;
    try {
      store = await createMysqlStore({ url: db.url });
      await store.migrate();
      const s = store;
      await checkStore(s, async (id) => ((await s.pool.query<RowDataPacket[]>('SELECT trace_context FROM jobs WHERE id = ?', [id]))[0][0]!).trace_context);
      // Died after the ALTER, before the ledger row: the column is there, and the rerun counts it as added.
      await s.pool.query('DELETE FROM schema_migrations WHERE version = 6');
      await s.migrate();
      const [[row]] = await s.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM schema_migrations WHERE version = 6');
      assert.equal(Number(row!.n), 1);
    } finally {
      await store?.close();
      await db.drop();
    }
  });
});
