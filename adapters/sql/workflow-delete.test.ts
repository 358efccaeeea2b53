/**
 * `WorkflowStore.deleteWorkflow` (adapters/sql/workflows.ts
 * `deleteWorkflowProgram`) on SQLite and on MariaDB: an ended instance goes
 * whole (its row, its history with its signals' keys, its timer rows), in one
 * transaction however long its history; an active one stays, untouched; its
 * child jobs stay, and a finished child its instance no longer waits on
 * deletes as any job. On MariaDB, a delete racing a step of the same
 * instance: the status is read under the row's lock, so the delete sees what
 * the step left, and a step after the delete finds no instance.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Decide, JobEventRecord, JobParent, JobRecord, TransitionWrite, WorkflowRecord, WorkflowStore, WorkflowWrite } from '../../engine/ports.js';
import { outboxFor } from '../../engine/messages.js';
import { transitionWrite } from '../../engine/transitions.js';
import { start } from '../../machines/lifecycle.js';
import type { PersistedWorkflow, WorkflowChild, WorkflowStatus, WorkflowTimer } from '../../machines/workflow.js';
import { STORE_BACKENDS, runSql, withMigratedStore, type TestStore } from '../../tests/helpers/stores.js';
import type { MysqlStore } from '../mysql/index.js';
import { PURGE_MAX_EVENTS } from './workflows.js';

type Store = TestStore & WorkflowStore;

const T = 1_900_000_000_000;
const wid = (n: number): string => `01W${String(n).padStart(23, '0')}`;
const jid = (n: number): string => `01J${String(n).padStart(23, '0')}`;

function state(status: WorkflowStatus, opts: { timers?: WorkflowTimer[]; children?: WorkflowChild[] } = {}): PersistedWorkflow {
  return { value: 'a', context: { email: 'ann@ats.invalid' }, history: [], status, children: opts.children ?? [], timers: opts.timers ?? [] };
}

const timer = (id: string, dueAt: number): WorkflowTimer => ({ id, dueAt, event: { type: `xstate.after.${id}` } });

function instance(id: string, extra: Partial<WorkflowRecord> = {}): WorkflowRecord {
  return {
    id, tenant: 'default', name: 'order', definitionVersion: 1, input: { email: 'ann@ats.invalid' }, state: state('active'),
    version: 1, idempotencyKey: null, requestHash: null, createdAt: T, updatedAt: T, ...extra,
  };
}

/** A child job's submit, pending, as the engine writes it. */
function childWrite(id: string, parent: JobParent): TransitionWrite {
  const input = { at: T, maxAttempts: 3, backoff: { kind: 'fixed' as const, delayMs: 0 } };
  const { next, effects } = start(input);
  const job: JobRecord = {
    id, tenant: 'default', type: 'wf.step', queue: 'default', payload: null, priority: 0, timeoutMs: 30_000,
    idempotencyKey: null, requestHash: null, version: 1, snapshot: next, createdAt: T, updatedAt: T, parent,
  };
  const event: JobEventRecord = { jobId: id, seq: 1, type: 'SUBMITTED', from: null, to: next.value, at: T, data: input };
  return { job, expectedVersion: null, event, outbox: outboxFor(job, event, effects) };
}

function startWrite(w: WorkflowRecord, jobs: TransitionWrite[] = []): WorkflowWrite {
  return {
    workflow: w, expectedVersion: null, jobs, cancel: null,
    event: { workflowId: w.id, seq: 1, type: 'START', at: w.createdAt, data: { input: w.input, jobIds: jobs.map((j) => j.job.id) }, status: w.state.status },
  };
}

/** The next step of `w` into `next`: a signal (with an Idempotency-Key when given), or another type. */
function stepWrite(w: WorkflowRecord, next: PersistedWorkflow, opts: { type?: 'SIGNAL' | 'CANCEL'; key?: string } = {}): WorkflowWrite {
  const at = w.updatedAt + 1000;
  const data = opts.type === 'CANCEL' ? { reason: 'ended' } : { event: { type: 'GO', email: 'ann@ats.invalid' }, jobIds: [], ...(opts.key ? { idempotencyKey: opts.key } : {}) };
  return {
    workflow: { ...w, state: next, version: w.version + 1, updatedAt: at },
    expectedVersion: w.version,
    event: { workflowId: w.id, seq: w.version + 1, type: opts.type ?? 'SIGNAL', at, data, status: next.status },
    jobs: [],
    cancel: null,
  };
}

const step = (store: Store, id: string, next: PersistedWorkflow, opts: Parameters<typeof stepWrite>[2] = {}) =>
  store.updateWorkflow(id, (current) => ({ write: stepWrite(current!, next, opts), result: null }));

const cancelJobs: Decide<unknown> = (jobs) => ({
  writes: [...jobs.values()].map((job) => transitionWrite(job, { type: 'CANCEL', at: T + 5000, reason: 'test' })!),
  result: null,
});

const timersOf = async (store: Store, id: string) =>
  (await store.dueWorkflowTimers(Number.MAX_SAFE_INTEGER, 100)).filter((t) => t.workflowId === id).map((t) => t.timerId);

/** Adds events to `id`'s history straight into the table, up to seq `last`, and sets its version to it. */
async function longHistory(store: Store, id: string, status: WorkflowStatus, last: number): Promise<void> {
  for (let from = 2; from <= last; from += 1000) {
    const seqs = Array.from({ length: Math.min(1000, last - from + 1) }, (_, i) => from + i);
    await runSql(store,
      `INSERT INTO workflow_events (workflow_id, seq, type, at, data, status, state_value) VALUES ${seqs.map(() => "(?, ?, 'SIGNAL', ?, '{}', ?, '\"a\"')").join(', ')}`,
      seqs.flatMap((seq) => [id, seq, T, status]));
  }
  await runSql(store, 'UPDATE workflows SET version = ? WHERE id = ?', [last, id]);
}

for (const backend of STORE_BACKENDS) {
  const run = (fn: (store: Store) => Promise<void>) => () => withMigratedStore(backend, (store) => fn(store as Store));

  describe(`WorkflowStore.deleteWorkflow (${backend.name})`, () => {
    it('an ended instance goes whole (row, history with its signal keys, timer rows), its key free after; an active one stays untouched', run(async (store) => {
      const live = instance(wid(1), { state: state('active', { timers: [timer('t', T + 60_000)] }) });
      await store.insertWorkflow(startWrite(live));
      await step(store, live.id, state('active', { timers: [timer('t', T + 60_000)] }), { key: 'sig-1' });
      assert.deepEqual(await store.deleteWorkflow(live.id), { ok: false, reason: 'active' });
      const kept = await store.getWorkflow(live.id);
      assert.deepEqual([kept?.version, kept?.state.status], [2, 'active']);
      assert.equal((await store.getWorkflowEvents(live.id)).length, 2);
      assert.deepEqual(await timersOf(store, live.id), ['t']);

      for (const [n, status] of [[2, 'done'], [3, 'error'], [4, 'cancelled']] as const) {
        // A timer row left beside an ended state (it has none; retention deletes such a row all the same), a keyed signal, a key of its own.
        const w = instance(wid(n), { idempotencyKey: `k-${n}`, requestHash: 'a'.repeat(64), state: state('active', { timers: [timer('t', T)] }) });
        await store.insertWorkflow(startWrite(w));
        await step(store, w.id, state(status, { timers: [timer('t', T)] }), { key: `sig-${n}` });
        assert.deepEqual(await store.deleteWorkflow(w.id), { ok: true, status }, status);
        assert.equal(await store.getWorkflow(w.id), null);
        assert.deepEqual(await store.getWorkflowEvents(w.id), []);
        assert.deepEqual(await timersOf(store, w.id), []);
        assert.equal(await store.findWorkflowByIdempotencyKey('default', 'order', `k-${n}`), null, 'the key is free');
        assert.deepEqual(await store.deleteWorkflow(w.id), { ok: false, reason: 'not-found' }, 'a second delete');
      }
      // The key starts a new instance.
      assert.deepEqual(await store.insertWorkflow(startWrite(instance(wid(9), { idempotencyKey: 'k-2', requestHash: 'b'.repeat(64) }))), { ok: true });
      assert.deepEqual(await store.deleteWorkflow(wid(99)), { ok: false, reason: 'not-found' });
      // The live one and the new one are as they were: nothing of theirs went with the others.
      assert.equal((await store.getWorkflowEvents(live.id)).length, 2);
      assert.equal((await store.getWorkflowEvents(wid(9))).length, 1);
    }));

    it(`a history longer than retention's ${PURGE_MAX_EVENTS} events a transaction goes whole, in the one delete`, run(async (store) => {
      const w = instance(wid(1), { state: state('done') });
      await store.insertWorkflow(startWrite(w));
      await longHistory(store, w.id, 'done', PURGE_MAX_EVENTS + 2500);
      assert.equal((await store.getWorkflowEvents(w.id, PURGE_MAX_EVENTS)).length, 2500);
      assert.deepEqual(await store.deleteWorkflow(w.id), { ok: true, status: 'done' });
      assert.equal(await store.getWorkflow(w.id), null);
      assert.deepEqual(await store.getWorkflowEvents(w.id), [], 'no part of it left');
    }));

    it('its child jobs stay; a finished child is refused (awaited) while its active instance waits on it, deleted as any once the instance ended or went', run(async (store) => {
      const w = instance(wid(1), { state: state('active', { children: [{ invokeId: 'i', jobId: jid(1), jobType: 'wf.step' }] }) });
      await store.insertWorkflow(startWrite(w, [childWrite(jid(1), { workflowId: w.id, invokeId: 'i' }), childWrite(jid(2), { workflowId: w.id, invokeId: 'j' })]));
      await store.update([jid(1), jid(2)], cancelJobs);
      assert.deepEqual(await store.deleteJob(jid(1)), { ok: false, reason: 'awaited', state: 'cancelled', workflowId: w.id });
      await step(store, w.id, state('cancelled'), { type: 'CANCEL' });
      // Ended: the instance waits on nothing; its children are jobs like any other.
      assert.deepEqual(await store.deleteJob(jid(2)), { ok: true });
      assert.deepEqual(await store.deleteWorkflow(w.id), { ok: true, status: 'cancelled' });
      const child = await store.getJob(jid(1));
      assert.deepEqual([child?.snapshot.value, child?.parent], ['cancelled', { workflowId: w.id, invokeId: 'i' }], 'the child stays, naming its instance');
      assert.equal((await store.getEvents(jid(1))).length, 2);
      assert.deepEqual(await store.deleteJob(jid(1)), { ok: true }, 'a deleted instance blocks nothing');
      assert.deepEqual(await store.jobCounts(), await store.recountJobs());
    }));

    it('a step after the delete finds no instance and writes nothing', run(async (store) => {
      const w = instance(wid(1), { state: state('done') });
      await store.insertWorkflow(startWrite(w));
      assert.deepEqual(await store.deleteWorkflow(w.id), { ok: true, status: 'done' });
      let seen: WorkflowRecord | null | undefined;
      assert.equal(await store.updateWorkflow(w.id, (current) => {
        seen = current;
        return { write: null, result: 'not-found' };
      }), 'not-found');
      assert.equal(seen, null);
      assert.deepEqual(await store.getWorkflowEvents(w.id), []);
    }));

    if (backend.name === 'mysql') {
      /**
       * A step holding the instance's row lock (as `updateWorkflowProgram` does, from its locking read to its commit), written by hand
       * on a connection of its own so that it can stay open while a delete starts: `change` runs in it before the commit.
       */
      async function underStep(store: Store, id: string, change: (q: (sql: string, params: unknown[]) => Promise<unknown>) => Promise<void>, during: () => Promise<unknown>) {
        const conn = await (store as unknown as MysqlStore).pool.getConnection();
        try {
          await conn.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
          await conn.beginTransaction();
          await conn.query('SELECT id FROM workflows WHERE id = ? FOR UPDATE', [id]);
          await change((sql, params) => conn.query(sql, params));
          const pending = during();
          let settled = false;
          void pending.then(() => (settled = true), () => (settled = true));
          await new Promise((r) => setTimeout(r, 300));
          assert.equal(settled, false, 'the delete waits for the step\'s lock');
          await conn.commit();
          return await pending;
        } finally {
          conn.release();
        }
      }

      it('a delete racing a step that ends the instance waits for it, then deletes the instance whole, the step\'s event too', run(async (store) => {
        const w = instance(wid(1), { state: state('active', { timers: [timer('t', T)] }) });
        await store.insertWorkflow(startWrite(w));
        const r = await underStep(store, w.id, async (q) => {
          await q("UPDATE workflows SET status = 'done', state = ?, version = 2, updated_at = ? WHERE id = ?", [JSON.stringify(state('done')), T + 1, w.id]);
          await q("INSERT INTO workflow_events (workflow_id, seq, type, at, data, status, state_value) VALUES (?, 2, 'SIGNAL', ?, '{}', 'done', '\"a\"')", [w.id, T + 1]);
          await q('DELETE FROM workflow_timers WHERE workflow_id = ?', [w.id]);
        }, () => store.deleteWorkflow(w.id));
        assert.deepEqual(r, { ok: true, status: 'done' });
        assert.equal(await store.getWorkflow(w.id), null);
        assert.deepEqual(await store.getWorkflowEvents(w.id), []);
        assert.deepEqual(await timersOf(store, w.id), []);
      }));

      it('a delete racing a step that keeps the instance active waits for it, then refuses, and the step\'s writes stand', run(async (store) => {
        const w = instance(wid(1), { state: state('active', { timers: [timer('t', T)] }) });
        await store.insertWorkflow(startWrite(w));
        const r = await underStep(store, w.id, async (q) => {
          await q('UPDATE workflows SET version = 2, updated_at = ? WHERE id = ?', [T + 1, w.id]);
          await q("INSERT INTO workflow_events (workflow_id, seq, type, at, data, status, state_value) VALUES (?, 2, 'SIGNAL', ?, '{}', 'active', '\"a\"')", [w.id, T + 1]);
        }, () => store.deleteWorkflow(w.id));
        assert.deepEqual(r, { ok: false, reason: 'active' });
        assert.equal((await store.getWorkflow(w.id))?.version, 2);
        assert.deepEqual((await store.getWorkflowEvents(w.id)).map((e) => e.seq), [1, 2]);
        assert.deepEqual(await timersOf(store, w.id), ['t']);
      }));

      it('signals and deletes at once on an instance that ends: never half deleted (all of it, or none of it and a whole history)', run(async (store) => {
        for (let n = 1; n <= 20; n++) {
          const w = instance(wid(n));
          await store.insertWorkflow(startWrite(w));
          // A step that ends it, racing deletes: each delete either finds it active (refused) or ended (deletes it whole).
          const results = await Promise.all([
            step(store, w.id, state('done'), { key: `s-${n}` }).then(() => 'stepped', (e: unknown) => `step failed: ${(e as Error).message}`),
            store.deleteWorkflow(w.id),
            store.deleteWorkflow(w.id),
          ]);
          assert.equal(results[0], 'stepped');
          const wf = await store.getWorkflow(w.id);
          const events = await store.getWorkflowEvents(w.id);
          if (wf) assert.deepEqual(events.map((e) => e.seq), Array.from({ length: wf.version }, (_, i) => i + 1), `${w.id}: whole`);
          else assert.deepEqual(events, [], `${w.id}: gone whole`);
          const deleted = results.slice(1).filter((r) => typeof r === 'object' && r.ok).length;
          assert.ok(deleted <= 1, JSON.stringify(results));
          assert.equal(deleted === 1, wf === null, JSON.stringify(results));
        }
      }));
    }
  });
}
