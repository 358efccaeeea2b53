/**
 * An instance stored before workflow timers were held to 1970..9999 (a timer
 * due at a Date's last millisecond, as a step could then write) still loads,
 * and its view's dueAt is an RFC 3339 date-time with a four-digit year like
 * every other: the last instant the API writes.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createMachine } from 'xstate';
import { HandlerRegistry } from '../engine/handlers.js';
import type { MysqlStore } from '../adapters/mysql/index.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { startTestApp, type TestApp } from '../tests/helpers/app.js';

await requireMysql();
const waiter = createMachine({ id: 'waiter', initial: 'waiting', states: { waiting: { after: { 60_000: 'done' } }, done: { type: 'final' } } });

let t: TestApp;
before(async () => {
  t = await startTestApp({}, { workflows: new HandlerRegistry().workflow('waiter', waiter) });
});
after(() => t.close());

test('a timer stored due after the year 9999 shows the last instant the API writes', async () => {
  const r = await t.app.inject({ method: 'POST', url: '/v1/workflows', payload: { name: 'waiter' } });
  assert.equal(r.statusCode, 201, r.body);
  const id = (r.json() as { id: string }).id;
  // As the old bound (8_640_000_000_000_000, a Date's last millisecond) let a step write it.
  const pool = (t.store as unknown as MysqlStore).pool;
  await pool.query("UPDATE workflows SET state = JSON_SET(state, '$.timers[0].dueAt', 8640000000000000) WHERE id = ?", [id]);
  await pool.query('UPDATE workflow_timers SET due_at = 8640000000000000 WHERE workflow_id = ?', [id]);
  const got = await t.app.inject({ url: `/v1/workflows/${id}` });
  assert.equal(got.statusCode, 200, got.body);
  const timers = (got.json() as { timers: Array<{ dueAt: string }> }).timers;
  assert.deepEqual(timers.map((timer) => timer.dueAt), ['9999-12-31T23:59:59.999Z']);
});
