/**
 * The highest event id ever handed out, on both SQL stores: deleting the
 * events that held it does not lower it (the stream tells a cursor some
 * server issued from a forged one by it).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { mathRandom, systemClock, ulidIds } from '../../engine/system.js';
import { TransitionService } from '../../engine/transitions.js';
import { STORE_BACKENDS, withMigratedStore } from '../../tests/helpers/stores.js';
import type { WorkflowStore } from '../../engine/ports.js';

for (const backend of STORE_BACKENDS) {
  describe(`the last issued event id on ${backend.name}`, () => {
    it('is 0 on a new store, follows the events written, and stays when they are deleted', () => withMigratedStore(backend, async (store) => {
      assert.equal(await store.lastIssuedEventId(), 0);
      assert.equal(await (store as unknown as WorkflowStore).lastIssuedWorkflowEventId(), 0);
      const svc = new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds() });
      const [r] = await svc.submitMany([{ type: 'demo.echo', payload: {}, queue: 'default', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 1000, priority: 0 }]);
      assert.ok(r!.ok);
      assert.ok((await svc.apply(r!.job.id, { type: 'CANCEL' })).ok);
      const last = await store.lastEventId();
      assert.ok(last >= 2);
      assert.equal(await store.lastIssuedEventId(), last);
      assert.deepEqual(await store.deleteJob(r!.job.id), { ok: true });
      assert.equal(await store.lastEventId(), 0, 'no event left');
      assert.equal(await store.lastIssuedEventId(), last, 'still the highest id handed out');
    }));
  });
}
