/**
 * Time review: a workflow's `after` delay read from its input (a deadline the
 * caller gives) may put its timer after the year 9999. The API's date-times
 * are RFC 3339 instants with four-digit years (a job's runAt and a schedule's
 * ticks are held to 9999-12-31T23:59:59.999Z for that reason), yet the
 * instance's view shows such a timer's dueAt as `+0xxxxx-...`.
 * Expected: the start is refused (400 ATS_ERR_INVALID_WORKFLOW_INPUT), or at
 * least every dueAt the API writes is an RFC 3339 date-time.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setup } from 'xstate';
import { HandlerRegistry, registerDemoHandlers } from '../../engine/handlers.js';
import { startSqliteTestApp, type TestApp } from '../helpers/app.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Waits in `waiting` until a deadline its input gives as a delay in ms. */
const deadline = setup({
  types: { context: {} as { waitMs: number }, input: {} as { waitMs?: unknown } | null },
  delays: { deadline: ({ context }) => context.waitMs },
}).createMachine({
  id: 'deadline',
  context: ({ input }) => ({ waitMs: typeof input?.waitMs === 'number' ? input.waitMs : 1000 }),
  initial: 'waiting',
  states: { waiting: { after: { deadline: 'late' } }, late: { type: 'final' } },
});

let t: TestApp;
before(async () => {
  t = await startSqliteTestApp({}, { workflows: registerDemoHandlers(new HandlerRegistry()).workflow('deadline', deadline) });
});
after(async () => {
  await t?.close();
});

test('a workflow timer due after the year 9999 is refused, or shown as an RFC 3339 date-time', async () => {
  // 10,000 years: well inside what a Date holds (MAX_TIMER_DUE_AT), far past 9999-12-31.
  const r = await t.app.inject({ method: 'POST', url: '/v1/workflows', payload: { name: 'deadline', input: { waitMs: 10_000 * 365 * 86_400_000 } } });
  if (r.statusCode === 400) return; // refused: fine
  assert.equal(r.statusCode, 201, r.body);
  const id = (r.json() as { id: string }).id;
  const view = (await t.app.inject({ url: `/v1/workflows/${id}` })).json() as { timers: Array<{ id: string; dueAt: string }> };
  assert.equal(view.timers.length, 1);
  assert.match(view.timers[0]!.dueAt, RFC3339, `GET /v1/workflows/${id} shows the timer due ${view.timers[0]!.dueAt}`);
});
