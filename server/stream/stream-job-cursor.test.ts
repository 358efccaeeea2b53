/**
 * The job view's `streamCursor` (`GET /v1/jobs/:id`) as a stream cursor: a
 * subscription to the job from it is sent exactly the job's events after
 * the ones the view showed, in order, each once, however the job and others
 * move around the read (what `ats watch --job` relies on), on SQLite and on
 * MariaDB.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import type { JobStore } from '../../engine/ports.js';
import { createTestStore, requireMysql } from '../../tests/helpers/mysql.js';
import { randomQueue } from '../../tests/helpers/app.js';
import { history, key, spec, startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';
import type { JobDetail } from '../schemas.js';
import { encodeStreamCursor } from './cursor.js';

const mysqlUp = await requireMysql();
const PAGE = 3;

async function sqlite(): Promise<{ store: JobStore; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-job-cursor-'));
  const store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
  await store.migrate();
  return { store, cleanup: async () => (await store.close(), rmSync(dir, { recursive: true, force: true })) };
}

async function mariadb(): Promise<{ store: JobStore; cleanup: () => Promise<void> }> {
  const t = await createTestStore({ poolSize: 8 });
  return { store: t.store, cleanup: t.cleanup };
}

for (const [name, open] of [['SQLite', sqlite], ['MariaDB', mariadb]] as const) {
  describe(`the job view's streamCursor as a stream cursor (${name})`, { skip: name === 'MariaDB' && !mysqlUp && 'MariaDB not reachable' }, () => {
    let db: { store: JobStore; cleanup: () => Promise<void> };
    let instance: StreamInstance;
    const clients: TestClient[] = [];
    /** Reads of every job's events a replay page's size (PAGE) asks for: pages of a replay through the whole table. */
    let tablePages = 0;
    before(async () => {
      db = await open();
      const counted = Object.create(db.store) as JobStore;
      counted.readEventsAfter = (afterId, limit, throughId) => {
        if (limit === PAGE) tablePages++;
        return db.store.readEventsAfter(afterId, limit, throughId);
      };
      // Small pages: a replay of more than one page.
      instance = await startStreamInstance({ store: counted, options: { replayPageSize: PAGE } });
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await instance?.close();
      await db?.cleanup();
    });

    const submit = async (n: number) => (await instance.transitions.submitMany(Array.from({ length: n }, () => spec('t.cursor', randomQueue())))).map((r) => r.job.id);
    /** Cancel, then redrive (cancelled back to pending), `rounds` times: two events a round. */
    const churn = async (id: string, rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        assert.equal((await instance.transitions.apply(id, { type: 'CANCEL' })).ok, true);
        assert.equal((await instance.transitions.apply(id, { type: 'REDRIVE' })).ok, true);
      }
    };
    const view = async (id: string) => {
      const r = await instance.app.inject({ url: `/v1/jobs/${id}` });
      assert.equal(r.statusCode, 200, r.body);
      return r.json() as JobDetail;
    };
    /** A client subscribed to the job from `cursor`, once it has `count` events (and a moment more, for any extra). */
    const replayed = async (id: string, cursor: string, count: number) => {
      const c = await TestClient.connect(instance.url);
      clients.push(c);
      await c.subscribe({ jobId: id }, cursor);
      await c.waitFor(() => c.events().length >= count || undefined);
      await sleep(300);
      return c.events();
    };

    it('is the cursor of the newest event shown: a replay of the job from it is its later events, in order, each once', async () => {
      const [job, ...others] = await submit(3);
      await churn(job!, 2);
      for (const o of others) await churn(o, 1);
      const shown = await view(job!);
      assert.equal(shown.events.length, 5);
      // The same position the stream gives the newest event shown.
      const all = await replayed(job!, encodeStreamCursor(0), 5);
      assert.equal(all.at(-1)!.seq, shown.version);
      assert.equal(shown.streamCursor, all.at(-1)!.cursor, 'the stream cursor of the newest event shown');
      // Later transitions of the job, and of others between them.
      for (const o of others) await churn(o, 1);
      await churn(job!, 2);
      for (const o of others) await churn(o, 1);
      const later = await replayed(job!, shown.streamCursor, 4);
      assert.deepEqual(later.map((e) => e.seq), [6, 7, 8, 9], 'every later event of the job, none shown, in order');
      assert.ok(later.every((e) => e.jobId === job), 'the job\'s only');
    });

    it('a replay of one job from an old cursor reads that job\'s events, not every job\'s since', async () => {
      const [job] = await submit(1);
      const shown = await view(job!);
      // Many other jobs' events after the cursor (well over ten pages of them), then the job's.
      const others = await submit(20);
      for (const o of others) await churn(o, 1);
      await churn(job!, 1);
      tablePages = 0;
      const later = await replayed(job!, shown.streamCursor, 2);
      assert.deepEqual(later.map((e) => [e.seq, e.type]), [[2, 'CANCEL'], [3, 'REDRIVE']]);
      assert.ok(tablePages <= 1, `pages of every job's events read for the replay: ${tablePages}`);
    });

    it('a read while the job and others keep moving: the view\'s history and the replay from its cursor are the job\'s history, no gap, no duplicate', async () => {
      const [job, ...others] = await submit(4);
      const moving = Promise.all([churn(job!, 8), ...others.map((o) => churn(o, 8))]);
      const views: JobDetail[] = [];
      for (let i = 0; i < 6; i++) {
        views.push(await view(job!));
        await sleep(5);
      }
      await moving;
      const all = await history(db.store, [job!]);
      assert.equal(all.length, 17);
      for (const shown of views) {
        const later = await replayed(job!, shown.streamCursor, all.length - shown.events.length);
        assert.deepEqual(
          [...shown.events.map((e) => key({ jobId: job!, seq: e.seq })), ...later.map(key)], all,
          `the view (up to seq ${shown.version}) and the replay from its cursor: the whole history, in order, once`,
        );
      }
    });
  });
}
