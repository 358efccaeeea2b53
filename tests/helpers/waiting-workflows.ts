/**
 * `count` instances of a workflow that waits 1 s (`waits`), started on an
 * SQLite store in memory, on a clock the test moves with `tick`: due timers
 * for the tests of the workflow driver's timer passes.
 */
import assert from 'node:assert/strict';
import { setup } from 'xstate';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import type { Clock } from '../../engine/ports.js';
import { ulidIds } from '../../engine/system.js';
import { WorkflowService } from '../../engine/workflows.js';

export async function waitingWorkflows(count: number) {
  let t = 1_900_000_000_000;
  const clock: Clock = { now: () => t, sleep: () => Promise.resolve() };
  const waits = setup({}).createMachine({ initial: 'wait', states: { wait: { after: { 1000: 'done' } }, done: { type: 'final' } } });
  const store = createSqliteStore({ file: ':memory:' });
  await store.migrate();
  const definitions = new HandlerRegistry().workflow('waits', waits);
  const service = new WorkflowService({ store, clock, ids: ulidIds(), definitions });
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = await service.start({ tenant: 'default', name: 'waits', input: null });
    assert.ok(r.ok);
    ids.push(r.workflow.id);
  }
  /** Moves the clock on by `ms`; the time now. */
  const tick = (ms: number) => (t += ms);
  return { store, clock, definitions, service, ids, tick };
}
