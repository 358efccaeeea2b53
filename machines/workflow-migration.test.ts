/**
 * Moving live instances between definition versions (workflow-migration.ts):
 * what a move keeps, starts, cancels and drops; the check of a migration
 * against every state the old version reaches; replay across a move.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assign, setup } from 'xstate';
import * as saga from '../examples/order-saga.js';
import { checkMigration, migrateWorkflow, replayHistory } from './workflow-migration.js';
import { applyWorkflowEvent, defineWorkflow, job, startWorkflow, stepWorkflow, WorkflowDefinitionError, type PersistedWorkflow, type WorkflowDefinition } from './workflow.js';

const v1 = defineWorkflow('approval', setup({
  types: { context: {} as { asks: number } },
  actors: { notify: job('approval.notify'), archive: job('approval.archive') },
}).createMachine({
  id: 'approval', initial: 'waiting', context: { asks: 0 },
  states: {
    waiting: {
      invoke: { id: 'notify', src: 'notify' },
      after: { 60_000: 'expired' },
      on: { APPROVE: 'approved', REMIND: { actions: assign({ asks: ({ context }) => context.asks + 1 }) } },
    },
    archiving: { invoke: { id: 'archive', src: 'archive' }, on: { DONE: 'approved' } },
    approved: { type: 'final' },
    expired: { type: 'final' },
  },
}), { version: 1 });

/** Version 2 names the waiting state `pending`, audits while pending, and no longer archives. */
const v2Machine = setup({
  types: { context: {} as { asks: number; reminders: number } },
  actors: { notify: job('approval.notify'), audit: job<unknown, { reminders: number }>('approval.audit') },
}).createMachine({
  id: 'approval', initial: 'pending', context: { asks: 0, reminders: 0 },
  states: {
    pending: {
      type: 'parallel',
      states: {
        notifying: { invoke: { id: 'notify', src: 'notify' } },
        auditing: { invoke: { id: 'audit', src: 'audit', input: ({ context }) => ({ reminders: context.reminders }) } },
      },
      on: { APPROVE: 'approved' },
    },
    approved: { type: 'final' },
    expired: { type: 'final' },
  },
});
const moveState = ({ value, context }: { value: unknown; context: unknown }) => {
  const asks = (context as { asks: number }).asks;
  const map = new Map<unknown, unknown>([['waiting', { pending: { notifying: {}, auditing: {} } }], ['approved', 'approved'], ['expired', 'expired']]);
  if (!map.has(value)) throw new Error(`no state for ${JSON.stringify(value)}`);
  return { value: map.get(value) as never, context: { asks, reminders: asks } };
};
const v2 = defineWorkflow('approval', v2Machine, { version: 2, migrate: { from: 1, state: moveState } });

const ids = (p: string) => (invokeId: string, i: number) => `${p}-${invokeId}-${i}`;

describe('moving an instance to the next version', () => {
  it('keeps the timer of a state that stays; its delay changed, the timer becomes the new delay\'s, due when it was (not dropped: nothing else would move the instance on)', () => {
    const withDelay = (version: number, ms: number) => defineWorkflow('approval', setup({
      types: { context: {} as { asks: number } },
      actors: { notify: job('approval.notify'), archive: job('approval.archive') },
    }).createMachine({
      id: 'approval', initial: 'waiting', context: { asks: 0 },
      states: {
        waiting: { invoke: { id: 'notify', src: 'notify' }, after: { [ms]: 'expired' }, on: { APPROVE: 'approved' } },
        approved: { type: 'final' },
        expired: { type: 'final' },
      },
    }), { version, migrate: { from: 1, state: (s) => s } });
    const s = startWorkflow(v1, undefined, 0, ids('a')).next;
    const same = migrateWorkflow(1, withDelay(2, 60_000), s, ids('m'));
    assert.ok(same.ok);
    assert.deepEqual(same.next.timers.map((t) => t.id), ['xstate.after.60000.approval.waiting'], 'the same delay: kept');
    assert.deepEqual(same.effects.dropTimers, []);
    const v2 = withDelay(2, 120_000);
    const changed = migrateWorkflow(1, v2, s, ids('m'));
    assert.ok(changed.ok);
    assert.deepEqual(changed.next.timers, [{ id: 'xstate.after.120000.approval.waiting', dueAt: 60_000, event: { type: 'xstate.after.120000.approval.waiting' } }]);
    assert.deepEqual(changed.effects.dropTimers, ['xstate.after.60000.approval.waiting']);
    const fired = applyWorkflowEvent(v2, changed.next, { type: 'TIMER', timerId: 'xstate.after.120000.approval.waiting' }, 60_000, ids('t'));
    assert.ok(fired.ok);
    assert.equal(fired.next.value, 'expired', 'the timer moves it on');
  });

  it('carries a timer over only where it is plain: never beside one kept, never early; one delay with guarded transitions; a named delay with a dot', () => {
    const approval = (version: number, after: Record<string, unknown>, delays: Record<string, number> = {}) => defineWorkflow('approval', setup({ delays, guards: { never: () => false } }).createMachine({
      id: 'approval', initial: 'waiting',
      states: { waiting: { after: after as never, on: { APPROVE: 'a' } }, a: { type: 'final' }, b: { type: 'final' } },
    }), version === 1 ? { version } : { version, migrate: { from: 1, state: (x) => x } });
    const move = (v1: WorkflowDefinition, v2: WorkflowDefinition) => {
      const r = migrateWorkflow(1, v2, startWorkflow(v1, undefined, 0, ids('a')).next, ids('m'));
      assert.ok(r.ok);
      return r.next.timers.map((t) => [t.id, t.dueAt]);
    };
    // Two delays, the later kept: kept as it was, the other dropped (not carried onto the kept one's id, due early).
    assert.deepEqual(move(approval(1, { 1000: 'a', 2000: 'b' }), approval(2, { 2000: 'b' })), [['xstate.after.2000.approval.waiting', 2000]]);
    // One delay, written as guarded transitions: one timer, carried.
    assert.deepEqual(move(approval(1, { 1000: 'a' }), approval(2, { 2000: [{ guard: 'never', target: 'a' }, { target: 'b' }] })), [['xstate.after.2000.approval.waiting', 1000]]);
    // Named delays whose names hold a dot.
    assert.deepEqual(move(approval(1, { 'wait.long': 'a' }, { 'wait.long': 1000 }), approval(2, { 'wait.short': 'a' }, { 'wait.short': 500 })), [['xstate.after.wait.short.approval.waiting', 1000]]);
    // Several delays now: which would it be? Dropped.
    assert.deepEqual(move(approval(1, { 1000: 'a' }), approval(2, { 2000: 'a', 3000: 'b' })), []);
  });

  it('replays a move recorded before timers were carried over as it was taken: the timer dropped', () => {
    const withDelay = (version: number, ms: number) => defineWorkflow('approval', setup({}).createMachine({
      id: 'approval', initial: 'waiting', states: { waiting: { after: { [ms]: 'expired' } }, expired: { type: 'final' } },
    }), version === 1 ? { version } : { version, migrate: { from: 1, state: (x) => x } });
    const [v1, v2] = [withDelay(1, 60_000), withDelay(2, 120_000)];
    const replay = (carryTimers?: true) => replayHistory((v) => (v === 1 ? v1 : v2), { version: 1, input: undefined, at: 0, jobIds: [] }, [
      { input: { type: 'MIGRATE', from: 1, to: 2, ...(carryTimers ? { carryTimers } : {}) }, at: 10, jobIds: [] },
    ]).state.timers.map((t) => t.id);
    assert.deepEqual(replay(), []);
    assert.deepEqual(replay(true), ['xstate.after.120000.approval.waiting']);
  });

  it('keeps the running job of an invocation that stays, starts the new ones, drops the timer of a state left', () => {
    let s: PersistedWorkflow = startWorkflow(v1, undefined, 0, ids('a')).next;
    const reminded = stepWorkflow(v1, s, { type: 'REMIND' }, 1, ids('b'));
    assert.ok(reminded.ok);
    s = reminded.next;
    const r = migrateWorkflow(1, v2, s, ids('m'));
    assert.ok(r.ok);
    assert.deepEqual(r.next.value, { pending: { notifying: {}, auditing: {} } });
    assert.deepEqual(r.next.context, { asks: 1, reminders: 1 });
    assert.deepEqual(r.next.children.map((c) => [c.invokeId, c.jobId]).sort(), [['audit', 'm-audit-0'], ['notify', 'a-notify-0']]);
    assert.deepEqual(r.effects.start.map((x) => [x.jobType, x.input]), [['approval.audit', { reminders: 1 }]]);
    assert.deepEqual(r.effects.cancel, []);
    assert.deepEqual(r.effects.dropTimers, ['xstate.after.60000.approval.waiting']);
    assert.deepEqual(r.next.timers, []);
    const approved = stepWorkflow(v2, r.next, { type: 'APPROVE' }, 2, ids('c'));
    assert.ok(approved.ok && approved.next.status === 'done', 'the moved instance runs on the new machine');
  });

  it('cancels the job of an invocation the new version does not have; refuses a state it does not have', () => {
    const archiving: PersistedWorkflow = {
      value: 'archiving', context: { asks: 0 }, history: [], status: 'active', timers: [],
      children: [{ invokeId: 'archive', jobId: 'j-archive', jobType: 'approval.archive' }],
    };
    const toApproved = defineWorkflow('approval', v2Machine, { version: 2, migrate: { from: 1, state: () => ({ value: 'approved', context: {} }) } });
    const r = migrateWorkflow(1, toApproved, archiving, ids('m'));
    assert.ok(r.ok);
    assert.equal(r.next.status, 'done');
    assert.deepEqual(r.effects.cancel.map((c) => c.jobId), ['j-archive']);
    const nowhere = defineWorkflow('approval', v2Machine, { version: 2, migrate: { from: 1, state: () => ({ value: 'limbo', context: {} }) } });
    assert.throws(() => migrateWorkflow(1, nowhere, archiving, ids('m')), /gives "limbo", not a state of version 2/);
  });

  it('refuses a move to a context or a job input JSON cannot store, as a step that leaves one is refused; the check names such states', () => {
    const s0 = startWorkflow(v1, undefined, 0, ids('a')).next;
    const bigContext = defineWorkflow('approval', v2Machine, {
      version: 2, migrate: { from: 1, state: () => ({ value: { pending: { notifying: {}, auditing: {} } }, context: { asks: 0, reminders: 10n } }) },
    });
    assert.throws(() => migrateWorkflow(1, bigContext, s0, ids('m')), (err: Error) => err instanceof WorkflowDefinitionError && /the context cannot be stored as JSON/.test(err.message));
    // The audit job's input is computed from the new context at the move: a BigInt there is refused too.
    const bigAudit = setup({
      types: { context: {} as { asks: number; reminders: number } },
      actors: { notify: job('approval.notify'), audit: job<unknown, { big: bigint }>('approval.audit') },
    }).createMachine({
      id: 'approval', initial: 'pending', context: { asks: 0, reminders: 0 },
      states: { pending: { invoke: [{ id: 'notify', src: 'notify' }, { id: 'audit', src: 'audit', input: () => ({ big: 1n }) }] } },
    });
    const toBigAudit = defineWorkflow('approval', bigAudit, { version: 2, migrate: { from: 1, state: ({ context }) => ({ value: 'pending', context: { ...(context as object), reminders: 0 } }) } });
    assert.throws(() => migrateWorkflow(1, toBigAudit, s0, ids('m')), /the input of audit \(approval\.audit\) cannot be stored as JSON/);
    const check = checkMigration(v1, bigContext, { input: undefined, signals: [{ type: 'REMIND' }], limit: 5 });
    assert.ok(check.problems.length > 0 && check.problems.length === check.states, `every state reached is a problem: ${JSON.stringify(check)}`);
    assert.ok(check.problems.every((p) => /cannot be stored as JSON/.test(p.problem)));
  });

  it('checks a migration against every state the old version reaches, and names those it cannot move', () => {
    const good = checkMigration(v1, v2, { input: undefined, signals: [{ type: 'APPROVE' }, { type: 'REMIND' }, { type: 'DONE' }] });
    assert.ok(good.states >= 2, `states reached: ${good.states}`);
    assert.deepEqual(good.problems, []);
    // `archiving` is unreachable in v1 (no transition enters it): the check sees only reachable states.
    const partial = defineWorkflow('approval', v2Machine, {
      version: 2, migrate: { from: 1, state: ({ value, context }) => (((context as { asks: number }).asks > 1) ? { value: 'gone', context } : moveState({ value, context })) },
    });
    const bad = checkMigration(v1, partial, { input: undefined, signals: [{ type: 'REMIND' }], limit: 50 });
    assert.ok(bad.problems.length > 0);
    assert.ok(bad.problems.every((p) => (p.context as { asks: number }).asks > 1 && /gives "gone"/.test(p.problem)));
  });

  it('checks the order saga example against a version 2 that keeps its states (the identity migration)', () => {
    const d1 = defineWorkflow('order.fulfil', saga.orderSaga, { version: 1 });
    const v2Saga = saga.orderSaga.provide({});
    const d2 = defineWorkflow('order.fulfil', v2Saga, { version: 2, migrate: { from: 1, state: (old) => old } });
    const r = checkMigration(d1, d2, {
      input: { orderId: 'o', amount: 1, country: 'NL' },
      outputs: (type) => ({ chargeId: 'c', reservationId: 'r', trackingId: 't', type }),
    });
    assert.ok(r.states >= 8, `the saga's reachable states: ${r.states}`);
    assert.deepEqual(r.problems, []);
    assert.equal(r.truncated, false);
  });

  it('replays a history across a move: the old machine before it, the new one after', () => {
    const s0 = startWorkflow(v1, undefined, 0, ids('a')).next;
    const moved = migrateWorkflow(1, v2, s0, ids('m'));
    assert.ok(moved.ok);
    const approved = stepWorkflow(v2, moved.next, { type: 'APPROVE' }, 5, ids('c'));
    assert.ok(approved.ok);
    const defs = new Map([[1, v1], [2, v2]]);
    const r = replayHistory((v) => defs.get(v), { version: 1, input: undefined, at: 0, jobIds: ['a-notify-0'] }, [
      { input: { type: 'MIGRATE', from: 1, to: 2 }, at: 1, jobIds: ['m-audit-0'] },
      { input: { type: 'SIGNAL', event: { type: 'APPROVE' } }, at: 5, jobIds: [] },
    ]);
    assert.equal(r.version, 2);
    assert.deepEqual(r.state, approved.next);
    assert.throws(() => replayHistory((v) => (v === 1 ? v1 : undefined), { version: 1, input: undefined, at: 0, jobIds: ['x'] }, [
      { input: { type: 'MIGRATE', from: 1, to: 2 }, at: 1, jobIds: [] },
    ]), /version 2 of the workflow is not registered/);
  });
});
