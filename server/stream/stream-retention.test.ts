/**
 * Retention deletes terminal jobs with their `job_events` rows, so a stream
 * that resumes from an old cursor (or a tail that starts below them) meets
 * long runs of ids that will never come back. Those runs must be passed
 * without an error and without a `gapTimeoutMs` wait per run (a tail that
 * starts below them waits one `gapTimeoutMs` in all: see SeenMarks in
 * tail.ts). On SQLite and MariaDB, events are deleted straight from the
 * table, then a freshly started instance serves a client resuming from
 * cursor 0.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createConnection } from 'mysql2/promise';
import { monotonicFactory } from 'ulid';
import { createSqliteStore, type SqliteStore } from '../../adapters/sqlite/index.js';
import type { Clock, JobStore } from '../../engine/ports.js';
import { TransitionService } from '../../engine/transitions.js';
import { createTestStore, requireMysql } from '../../tests/helpers/mysql.js';
import { testClock } from '../../tests/helpers/app.js';
import { encodeStreamCursor } from './cursor.js';
import { assertOrdered, history, key, spec, startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';

const mysqlUp = await requireMysql();

const GAP_TIMEOUT_MS = 1500;
/** Waiting once is fine; waiting per run (dozens of runs) would take a minute. */
const BOUND_MS = 3 * GAP_TIMEOUT_MS;

interface Backend {
  store: JobStore;
  /** Deletes these jobs and their events, as retention does. */
  remove(jobIds: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

async function sqlite(): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-retention-'));
  const store: SqliteStore = createSqliteStore({ file: join(dir, 'ats.sqlite') });
  await store.migrate();
  return {
    store,
    async remove(ids) {
      const marks = ids.map(() => '?').join(',');
      store.db.prepare(`DELETE FROM job_events WHERE job_id IN (${marks})`).run(...ids);
      store.db.prepare(`DELETE FROM outbox WHERE msg_key IN (${marks})`).run(...ids);
      store.db.prepare(`DELETE FROM jobs WHERE id IN (${marks})`).run(...ids);
    },
    async close() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function mariadb(): Promise<Backend> {
  const t = await createTestStore({ poolSize: 4 });
  return {
    store: t.store,
    async remove(ids) {
      const conn = await createConnection({ uri: t.db.url });
      try {
        for (const table of ['job_events WHERE job_id', 'outbox WHERE msg_key', 'jobs WHERE id']) await conn.query(`DELETE FROM ${table} IN (?)`, [ids]);
      } finally {
        await conn.end();
      }
    },
    close: t.cleanup,
  };
}

for (const [name, open] of [['sqlite', sqlite], ['mariadb', mariadb]] as const) {
  describe(`a resumed stream over deleted events (${name})`, { skip: name === 'mariadb' && !mysqlUp && 'MariaDB not reachable' }, () => {
    let backend: Backend;
    let instance: StreamInstance;
    const clients: TestClient[] = [];

    before(async () => {
      backend = await open();
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await instance?.close();
      await backend?.close();
    });

    it('passes the runs of missing ids without an error and without a wait per run', async () => {
      // Committed a minute ago (retention only ever deletes old, terminal jobs).
      const past: Clock = { now: () => Date.now() - 60_000, sleep: testClock.sleep };
      const ulid = monotonicFactory();
      const transitions = new TransitionService({ store: backend.store, clock: past, random: { next: Math.random }, ids: { jobId: () => ulid() } });
      const ids: string[] = [];
      for (let round = 0; round < 6; round++) {
        const batch = (await transitions.submitMany(Array.from({ length: 8 }, () => spec('t.retention', 'default')))).map((r) => r.job.id);
        for (const id of batch) await transitions.apply(id, { type: 'CANCEL' });
        ids.push(...batch);
      }
      // Every other job of each round gone: many runs of missing ids, some long (a whole round's cancels).
      const gone = ids.filter((_, i) => i % 2 === 1 || (i >= 16 && i < 24));
      await backend.remove(gone);
      const kept = ids.filter((id) => !gone.includes(id));
      const expected = await history(backend.store, kept);

      // A process started now: its tail begins below these ids.
      instance = await startStreamInstance({ store: backend.store, options: { gapTimeoutMs: GAP_TIMEOUT_MS } });
      const c = await TestClient.connect(instance.url);
      clients.push(c);
      const started = Date.now();
      await c.subscribe({}, encodeStreamCursor(0));
      await c.waitFor(() => c.events().length >= expected.length || undefined, BOUND_MS, `${expected.length} events`);
      const ms = Date.now() - started;
      assert.ok(ms < BOUND_MS, `took ${ms} ms`);
      await sleep(100);
      assert.deepEqual(c.events().map(key).sort(), [...expected].sort(), 'every kept event, once');
      assertOrdered(c.events());
      assert.deepEqual(c.of('error'), []);
      assert.equal(c.closed, null);
    });
  });
}
