/**
 * The metrics hooks of the workflow service, on both SQL stores: the child
 * jobs a step submits and the CANCELs of the children it leaves are
 * transitions this process committed, reported once per committed step
 * (with the job before each: null for a submit), as the transition service
 * reports its own. A step that commits nothing reports nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setup } from 'xstate';
import { job } from '../machines/workflow.js';
import { STORE_BACKENDS, withMigratedStore } from '../tests/helpers/stores.js';
import { HandlerRegistry } from './handlers.js';
import type { Metrics } from './metrics.js';
import type { JobRecord, JobStore, TransitionWrite, WorkflowStore } from './ports.js';
import { mathRandom, systemClock, ulidIds } from './system.js';
import { TransitionService } from './transitions.js';
import { WorkflowService } from './workflows.js';

/** `first` runs job w.a; NEXT leaves it for `second`, which runs w.b. */
const twoSteps = setup({ actors: { a: job('w.a', { queue: 'qa' }), b: job('w.b', { queue: 'qb' }) } }).createMachine({
  id: 'two', initial: 'first',
  states: {
    first: { invoke: { id: 'a', src: 'a' }, on: { NEXT: 'second' } },
    second: { invoke: { id: 'b', src: 'b' } },
  },
});

function spy() {
  const commits: Array<{ writes: TransitionWrite[]; before: (JobRecord | null)[] }> = [];
  const metrics: Pick<Metrics, 'transitionsCommitted'> = {
    transitionsCommitted: (writes, before) => void commits.push({ writes: [...writes], before: [...before] }),
  };
  /** Each commit as `EVENT type from>to (state before)`. */
  const seen = () => commits.map((c) => c.writes.map((w, i) => `${w.event.type} ${w.job.type} ${w.event.from ?? 'none'}>${w.event.to} (${c.before[i]?.snapshot.value ?? 'null'})`));
  return { metrics, commits, seen };
}

for (const backend of STORE_BACKENDS) {
  describe(`workflow steps report their child jobs' transitions (${backend.name})`, () => {
    it('the submit of each child, the CANCEL of a running child it leaves and of those a cancel ends; nothing for a step not taken', async () => {
      await withMigratedStore(backend, async (s) => {
        const store = s as unknown as JobStore & WorkflowStore;
        const registry = new HandlerRegistry().workflow('two', twoSteps);
        const m = spy();
        const ids = ulidIds();
        const service = new WorkflowService({ store, clock: systemClock, ids, definitions: registry, metrics: m.metrics });
        const transitions = new TransitionService({ store, clock: systemClock, random: mathRandom, ids });

        const started = await service.start({ tenant: 'default', name: 'two', input: null, idempotencyKey: 'k' });
        assert.ok(started.ok);
        assert.deepEqual(m.seen(), [['SUBMITTED w.a none>pending (null)']]);
        assert.equal(m.commits[0]!.writes[0]!.job.queue, 'qa');

        // The same start again holds the key: nothing committed, nothing reported.
        const again = await service.start({ tenant: 'default', name: 'two', input: null, idempotencyKey: 'k' });
        assert.ok(again.ok && !again.created);
        assert.equal(m.commits.length, 1);

        const a = started.workflow.state.children[0]!.jobId;
        const claimed = await transitions.apply(a, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 60_000, workerId: 'w' });
        assert.ok(claimed.ok);
        assert.equal(m.commits.length, 1, 'the transition service reports its own commits (none here: no metrics)');

        // Not taken now: no step, no report.
        const refused = await service.signal(started.workflow.id, 'default', { type: 'NOPE' });
        assert.equal(refused.ok, false);
        assert.equal(m.commits.length, 1);

        const next = await service.signal(started.workflow.id, 'default', { type: 'NEXT' });
        assert.ok(next.ok);
        assert.deepEqual(m.seen()[1], ['CANCEL w.a running>cancelled (running)', 'SUBMITTED w.b none>pending (null)']);

        const cancelled = await service.cancel(started.workflow.id, 'default');
        assert.ok(cancelled.ok);
        assert.deepEqual(m.seen()[2], ['CANCEL w.b pending>cancelled (pending)']);
        assert.equal(m.commits.length, 3);
        // What was reported is what the store holds.
        assert.equal((await store.getJob(a))!.snapshot.value, 'cancelled');
      });
    });

    it('a step the store decided twice (a lost race) is reported once, with the decision that committed', async () => {
      await withMigratedStore(backend, async (s) => {
        const racing = s as unknown as JobStore & WorkflowStore;
        const updateWorkflow = racing.updateWorkflow.bind(racing);
        let decisions = 0;
        racing.updateWorkflow = ((id, decide, read) => updateWorkflow(id, (wf, message, signalled) => {
          // The first decision is dropped, as after a lost compare-and-set; its cancels are never run.
          decide(wf, message, signalled);
          decisions++;
          return decide(wf, message, signalled);
        }, read)) as WorkflowStore['updateWorkflow'];
        const registry = new HandlerRegistry().workflow('two', twoSteps);
        const m = spy();
        const service = new WorkflowService({ store: racing, clock: systemClock, ids: ulidIds(), definitions: registry, metrics: m.metrics });
        const started = await service.start({ tenant: 'default', name: 'two', input: null });
        assert.ok(started.ok);
        assert.ok((await service.signal(started.workflow.id, 'default', { type: 'NEXT' })).ok);
        assert.equal(decisions, 1);
        assert.deepEqual(m.seen(), [
          ['SUBMITTED w.a none>pending (null)'],
          ['CANCEL w.a pending>cancelled (pending)', 'SUBMITTED w.b none>pending (null)'],
        ]);
        const b = (await racing.getWorkflow(started.workflow.id))!.state.children[0]!.jobId;
        assert.equal(m.commits[1]!.writes[1]!.job.id, b, 'the child reported is the one committed');
      });
    });
  });
}
