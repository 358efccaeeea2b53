/** The group commit's rules, over a sync the test holds and lets go. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { groupSync } from './group-sync.js';
import { hasSettled, settle } from '../../tests/helpers/manual-clock.js';

/** A sync the test ends by hand; `started` counts the syncs begun. */
function heldSync() {
  const pending: Array<{ resolve(): void; reject(err: unknown): void }> = [];
  const held = {
    started: 0,
    sync: () => new Promise<void>((resolve, reject) => { held.started++; pending.push({ resolve, reject }); }),
    /** Ends the oldest sync begun and not yet ended. */
    finish: async (err?: unknown) => {
      const p = pending.shift();
      assert.ok(p, 'a sync is in flight');
      if (err === undefined) p.resolve(); else p.reject(err);
      await settle();
    },
  };
  return held;
}



describe('group commit', () => {
  it('answers at once, with no sync, when nothing was written', async () => {
    const held = heldSync();
    const g = groupSync({ sync: held.sync });
    await g.durable();
    assert.equal(held.started, 0);
  });

  it('holds an answer until a sync begun after its write has ended', async () => {
    const held = heldSync();
    const g = groupSync({ sync: held.sync });
    g.wrote();
    const first = g.durable();
    await settle();
    assert.equal(held.started, 1);
    g.wrote(); // after the first sync began: it does not cover this write
    const second = g.durable();
    assert.equal(await hasSettled(first), false);
    await held.finish();
    assert.equal(await hasSettled(first), true);
    assert.equal(await hasSettled(second), false, 'the first sync began before the second write');
    assert.equal(held.started, 2);
    await held.finish();
    assert.equal(await hasSettled(second), true);
  });

  it('lets every answer waiting at once share one sync', async () => {
    const held = heldSync();
    const g = groupSync({ sync: held.sync });
    const waits: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      g.wrote();
      waits.push(g.durable());
    }
    await settle();
    assert.equal(held.started, 1, 'the first answer\'s sync began at its write');
    await held.finish();
    await settle();
    assert.equal(held.started, 2, 'the 49 writes after it share the next');
    await held.finish();
    await Promise.all(waits);
    await g.durable(); // nothing written since
    assert.equal(held.started, 2);
  });

  it('fails every answer, then and after, once a sync failed, and tells of it once', async () => {
    const held = heldSync();
    const failures: unknown[] = [];
    const g = groupSync({ sync: held.sync, onFailure: (err) => failures.push(err) });
    g.wrote();
    g.wrote();
    const waiting = [g.durable(), g.durable()].map((p) => p.then(() => 'answered', (err: unknown) => err));
    await settle();
    const boom = new Error('EIO');
    await held.finish(boom);
    assert.deepEqual(await Promise.all(waiting), [boom, boom]);
    g.wrote();
    await assert.rejects(g.durable(), (err) => err === boom);
    assert.equal(held.started, 1, 'no sync after the failure');
    assert.deepEqual(failures, [boom]);
  });

  for (const [name, outcome] of [['ends', undefined], ['fails', new Error('EIO')]] as const) {
    it(`closes after syncing what is left, and lets go of the file after the close (the last sync ${name})`, async () => {
      const held = heldSync();
      const steps: string[] = [];
      const g = groupSync({ sync: held.sync, release: async () => { steps.push('release'); } });
      g.wrote();
      const closing = g.close(() => steps.push('close'));
      await settle();
      assert.deepEqual(steps, [], 'the database stays open while its last writes are synced');
      await held.finish(outcome);
      await closing;
      assert.deepEqual(steps, ['close', 'release']);
    });
  }
});
