/**
 * What an instance may store, on both SQL stores: a signal whose step would
 * leave a state past MAX_WORKFLOW_VALUE_BYTES (past what one MariaDB statement
 * carries, at 20 MiB), or a final output JSON cannot write, is refused with
 * the reason, writing nothing, instead of a write the store refuses at every
 * try (the instance then stuck, a signal answered with the store's error); a
 * step the engine takes ends the instance in error instead
 * (engine/workflow-misbehaving.test.ts). A start that would pass it is refused, writing nothing,
 * and so is a start's input or a signal's event past it (the in-process API:
 * over HTTP the body limit comes first).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assign, setup } from 'xstate';
import { MAX_WORKFLOW_VALUE_BYTES } from '../machines/workflow.js';
import { STORE_BACKENDS, withMigratedStore } from '../tests/helpers/stores.js';
import { AtsError } from './errors.js';
import { HandlerRegistry } from './handlers.js';
import type { JobStore, WorkflowStore } from './ports.js';
import { systemClock, ulidIds } from './system.js';
import { WorkflowService } from './workflows.js';

/** KEEP stores `bytes` characters in the context; END ends it with an output of a BigInt. */
const keeper = setup({
  types: { context: {} as { blob: string }, input: {} as { bytes: number } | null, events: {} as { type: 'KEEP'; bytes: number } | { type: 'END' } },
}).createMachine({
  id: 'keeper', initial: 'open', context: ({ input }) => ({ blob: 'x'.repeat(input?.bytes ?? 0) }),
  states: {
    open: { on: { KEEP: { actions: assign({ blob: ({ event }) => 'x'.repeat(event.bytes) }) }, END: 'closed' } },
    closed: { type: 'final' },
  },
  output: () => ({ n: 10n }),
});

/** Keeps its input in its context. */
const holder = setup({ types: { context: {} as { kept: unknown }, input: {} as unknown } }).createMachine({
  id: 'holder', initial: 'open', context: ({ input }) => ({ kept: input }), states: { open: {} },
});

for (const backend of STORE_BACKENDS) {
  describe(`a workflow step past what an instance may store (${backend.name})`, () => {
    const run = (fn: (store: JobStore & WorkflowStore, service: WorkflowService) => Promise<void>) => withMigratedStore(backend, async (s) => {
      const store = s as unknown as JobStore & WorkflowStore;
      const service = new WorkflowService({ store, clock: systemClock, ids: ulidIds(), definitions: new HandlerRegistry().workflow('keeper', keeper).workflow('holder', holder) });
      await fn(store, service);
    });

    it('a signal making a context of 20 MiB is refused (413), naming the context and its size; nothing is written, the instance goes on', () => run(async (store, service) => {
      const started = await service.start({ tenant: 'default', name: 'keeper', input: null });
      assert.ok(started.ok);
      const kept = await service.signal(started.workflow.id, 'default', { type: 'KEEP', bytes: 1000 });
      assert.ok(kept.ok && kept.workflow.state.status === 'active');
      await assert.rejects(service.signal(started.workflow.id, 'default', { type: 'KEEP', bytes: 20 * 1024 * 1024 }), (err: unknown) =>
        err instanceof AtsError && err.code === 'ATS_ERR_PAYLOAD_TOO_LARGE'
        && new RegExp(`^KEEP is not taken: .*the context is ${20 * 1024 * 1024 + 11} bytes of JSON, more than the ${MAX_WORKFLOW_VALUE_BYTES}`).test(err.message));
      const stored = (await store.getWorkflow(started.workflow.id))!;
      assert.equal(stored.state.status, 'active');
      assert.equal((stored.state.context as { blob: string }).blob.length, 1000, 'the context before the step is kept');
      assert.deepEqual((await store.getWorkflowEvents(started.workflow.id)).map((e) => e.type), ['START', 'SIGNAL']);
      assert.ok((await service.signal(started.workflow.id, 'default', { type: 'KEEP', bytes: 10 })).ok);
      assert.deepEqual(await service.verify((await store.getWorkflow(started.workflow.id))!), { ok: true, events: 3 });
    }));

    it('a signal reaching a final output JSON cannot store is refused (400), naming the output', () => run(async (store, service) => {
      const started = await service.start({ tenant: 'default', name: 'keeper', input: null });
      assert.ok(started.ok);
      await assert.rejects(service.signal(started.workflow.id, 'default', { type: 'END' }), (err: unknown) =>
        err instanceof AtsError && err.code === 'ATS_ERR_VALIDATION' && /^END is not taken: .*the output cannot be stored as JSON/.test(err.message));
      const stored = (await store.getWorkflow(started.workflow.id))!;
      assert.equal(stored.state.status, 'active');
      assert.equal(stored.version, 1);
    }));

    it('a start\'s input or a signal\'s event past the bound is refused (413) and writes nothing', () => run(async (store, service) => {
      const over = 'x'.repeat(MAX_WORKFLOW_VALUE_BYTES);
      await assert.rejects(service.start({ tenant: 'default', name: 'keeper', input: { over } }), (err: unknown) => err instanceof AtsError && err.code === 'ATS_ERR_PAYLOAD_TOO_LARGE' && /the input is \d+ bytes of JSON/.test(err.message));
      assert.deepEqual((await store.listWorkflowPage({ tenant: 'default', limit: 10 }, 1 << 20)).workflows, []);
      const started = await service.start({ tenant: 'default', name: 'keeper', input: null });
      assert.ok(started.ok);
      await assert.rejects(service.signal(started.workflow.id, 'default', { type: 'KEEP', bytes: 1, over }), (err: unknown) => err instanceof AtsError && err.code === 'ATS_ERR_PAYLOAD_TOO_LARGE' && /the event is \d+ bytes of JSON/.test(err.message));
      assert.equal((await store.getWorkflow(started.workflow.id))!.version, 1);
      await assert.rejects(service.signal(started.workflow.id, 'default', { type: 'KEEP', bytes: 1, n: 10n }), /the event cannot be stored as JSON/);
    }));

    it('a start whose input and first state are each within the bound, but not together as one row\'s SQL text, is refused and writes nothing', () => run(async (store, service) => {
      // A quote is one byte of JSON and two of SQL text: a state of exactly MAX_WORKFLOW_VALUE_BYTES of JSON, its
      // input a little less, twice that as SQL text in one INSERT (past MariaDB's 16 MiB max_allowed_packet).
      const emptyState = JSON.stringify({ value: 'open', context: { kept: '' }, history: [], status: 'active', children: [], timers: [] });
      const input = "'".repeat(MAX_WORKFLOW_VALUE_BYTES - emptyState.length);
      const refused = await service.start({ tenant: 'default', name: 'holder', input });
      assert.ok(!refused.ok && refused.reason === 'invalid-input', JSON.stringify(refused).slice(0, 300));
      assert.match(refused.message, /^workflow holder refused its input: its input and first state together are \d+ bytes as SQL text, more than the 15728640/);
      assert.deepEqual((await store.listWorkflowPage({ tenant: 'default', limit: 10 }, 1 << 20)).workflows, []);
      // Half of it fits.
      const half = input.slice(Math.floor(input.length / 2));
      const kept = await service.start({ tenant: 'default', name: 'holder', input: half });
      assert.ok(kept.ok);
      assert.equal(((await store.getWorkflow(kept.workflow.id))!.state.context as { kept: string }).kept, half);
    }));

    it('a start whose first context would pass the bound is refused and writes nothing', () => run(async (store, service) => {
      const refused = await service.start({ tenant: 'default', name: 'keeper', input: { bytes: MAX_WORKFLOW_VALUE_BYTES } });
      assert.ok(!refused.ok && refused.reason === 'invalid-input', JSON.stringify(refused).slice(0, 300));
      assert.match(refused.message, /^workflow keeper refused its input: the context is \d+ bytes of JSON/, 'named once');
      assert.deepEqual((await store.listWorkflowPage({ tenant: 'default', limit: 10 }, 1 << 20)).workflows, []);
    }));
  });
}
