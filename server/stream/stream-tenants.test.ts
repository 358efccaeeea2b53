/**
 * The stream per tenant, on both stores: a client connected with a key gets
 * its tenant's events, progress and stats only, live and replayed; a filter
 * naming another tenant's job id gets nothing (as an id no job has).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { STORE_BACKENDS } from '../../tests/helpers/stores.js';
import { authWith, MemoryKeyStore } from '../../tests/helpers/keys.js';
import { key, spec, startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';
import type { JobStore, ProgressStore } from '../../engine/ports.js';

type Key = Awaited<ReturnType<MemoryKeyStore['make']>>;

for (const backend of STORE_BACKENDS) {
  describe(`stream tenants (${backend.name})`, () => {
    let store: JobStore & ProgressStore;
    let cleanup: () => Promise<void>;
    let instance: StreamInstance;
    let acme: Key;
    let globex: Key;
    const clients: TestClient[] = [];
    const connect = async (as: Key) => {
      const c = await TestClient.connect(instance.url, { headers: as.headers });
      clients.push(c);
      return c;
    };

    before(async () => {
      ({ store, cleanup } = await backend.open());
      await store.migrate();
      const keys = new MemoryKeyStore();
      acme = await keys.make('acme');
      globex = await keys.make('globex');
      instance = await startStreamInstance({ store, auth: authWith(keys, 'on'), options: { pollMs: 20 } });
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await instance?.close();
      await cleanup?.();
    });

    it('a client gets its tenant\'s events only, live and replayed; a filter on another tenant\'s job id gets nothing', async () => {
      const mineAll = await connect(acme);
      const theirsAll = await connect(globex);
      const start = await mineAll.subscribe({});
      await theirsAll.subscribe({});
      const [a, g] = await instance.transitions.submitMany([spec('t.tenant', 'q', { tenant: 'acme' }), spec('t.tenant', 'q', { tenant: 'globex' })]);
      const aId = a!.job.id;
      const gId = g!.job.id;
      const snoop = await connect(globex);
      await snoop.subscribe({ jobId: aId });
      await instance.transitions.apply(aId, { type: 'CANCEL' });
      await instance.transitions.apply(gId, { type: 'CANCEL' });

      await mineAll.waitFor(() => mineAll.events().length >= 2 || undefined);
      await theirsAll.waitFor(() => theirsAll.events().length >= 2 || undefined);
      await sleep(300);
      assert.deepEqual(mineAll.events().map(key), [`${aId}#1`, `${aId}#2`]);
      assert.deepEqual(theirsAll.events().map(key), [`${gId}#1`, `${gId}#2`]);
      assert.deepEqual(snoop.events(), [], 'another tenant\'s job id matches nothing');
      assert.deepEqual(snoop.of('error'), [], 'and is not told it exists');

      const replay = await connect(globex);
      await replay.subscribe({}, start);
      await replay.waitFor(() => replay.events().length >= 2 || undefined);
      await sleep(200);
      assert.deepEqual(replay.events().map(key), [`${gId}#1`, `${gId}#2`], 'a replay from a cursor skips the other tenant\'s events too');
    });

    it('stats on the stream are the tenant\'s own', async () => {
      await instance.transitions.submitMany([spec('t.stats', 'q-stats', { tenant: 'acme' }), spec('t.stats', 'q-stats', { tenant: 'acme' }), spec('t.stats', 'q-stats', { tenant: 'globex' })]);
      const statsOf = async (as: Key) => {
        const c = await connect(as);
        c.send({ op: 'stats' });
        return (await c.waitFor((ms) => ms.find((m) => m.kind === 'stats'))) as unknown as { byQueue: Record<string, Record<string, number>> };
      };
      assert.equal((await statsOf(acme)).byQueue['q-stats']?.pending, 2);
      assert.equal((await statsOf(globex)).byQueue['q-stats']?.pending, 1);
    });

    it('progress goes to the tenant\'s clients only', async () => {
      const mine = await connect(acme);
      const theirs = await connect(globex);
      await mine.subscribe({});
      await theirs.subscribe({});
      const [r] = await instance.transitions.submitMany([spec('t.progress', 'q-progress', { tenant: 'acme' })]);
      const id = r!.job.id;
      await instance.transitions.apply(id, { type: 'PUBLISHED', attempt: 1 });
      await instance.transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' });
      assert.equal(await store.setProgress(id, 1, '42', Date.now()), true);
      assert.equal((await store.getProgress(id))?.tenant, 'acme');
      await mine.waitFor((ms) => ms.find((m) => m.kind === 'progress' && m.jobId === id));
      await sleep(300);
      assert.deepEqual(theirs.of('progress'), []);
    });
  });
}
