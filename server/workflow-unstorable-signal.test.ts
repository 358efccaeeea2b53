/**
 * Over HTTP: a signal the machine takes but whose step cannot be stored (a
 * context nested past 32 levels, or grown past 4 MiB) answers 400
 * ATS_ERR_VALIDATION or 413 ATS_ERR_PAYLOAD_TOO_LARGE with the reason, never a
 * 500, and writes nothing; a signal into an eventless loop ends the instance in
 * error (200) instead of holding the server. The instance and the list still
 * answer, on SQLite and MariaDB.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assign, setup } from 'xstate';
import { HandlerRegistry } from '../engine/handlers.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { startSqliteTestApp, startTestApp } from '../tests/helpers/app.js';

const mysqlReady = await requireMysql();

const machine = setup({ types: { context: {} as Record<string, unknown> } }).createMachine({
  id: 'unstorable', initial: 'open', context: {},
  states: {
    open: {
      on: {
        DEEPEN: {
          actions: assign(({ event }) => {
            let v: Record<string, unknown> = { leaf: 1 };
            for (let i = 1; i < (event as unknown as { levels: number }).levels; i++) v = { a: v };
            return v;
          }),
        },
        GROW: { actions: assign({ blob: ({ event }) => 'x'.repeat((event as unknown as { bytes: number }).bytes) }) },
        SPIN: 'spin',
      },
    },
    spin: { always: { target: 'spin', reenter: true, actions: assign({ n: ({ context }) => Number(context.n ?? 0) + 1 }) } },
  },
});

const backends: [string, typeof startTestApp, string | false][] = [
  ['MariaDB', startTestApp, mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)'],
  ['SQLite', startSqliteTestApp, false],
];

for (const [name, start, skip] of backends) {
  describe(`a signal whose step cannot be stored (${name})`, { skip }, () => {
    test('is a 400 or 413 with the reason, writing nothing; a loop ends the instance in error; reads still answer', async () => {
      const t = await start({}, { workflows: new HandlerRegistry().workflow('unstorable', machine) });
      try {
        const started = await t.app.inject({ method: 'POST', url: '/v1/workflows', payload: { name: 'unstorable', input: null } });
        assert.equal(started.statusCode, 201, started.body);
        const id = (started.json() as { id: string }).id;
        const version = async () => ((await t.app.inject({ url: `/v1/workflows/${id}` })).json() as { version: number }).version;
        const send = (payload: object) => t.app.inject({ method: 'POST', url: `/v1/workflows/${id}/events`, payload, headers: { 'idempotency-key': JSON.stringify(payload) } });

        const deep = await send({ type: 'DEEPEN', levels: 33 });
        assert.equal(deep.statusCode, 400, deep.body);
        assert.equal(deep.json().code, 'ATS_ERR_VALIDATION');
        assert.match(deep.json().message, /^DEEPEN is not taken: the step it makes cannot be stored, so nothing was written: the context nests deeper than 32 levels/);
        const big = await send({ type: 'GROW', bytes: 5 * 1024 * 1024 });
        assert.equal(big.statusCode, 413, big.body);
        assert.equal(big.json().code, 'ATS_ERR_PAYLOAD_TOO_LARGE');
        assert.match(big.json().message, /the context is \d+ bytes of JSON, more than the 4194304/);
        assert.equal(await version(), 1, 'nothing written');
        assert.equal((await send({ type: 'DEEPEN', levels: 32 })).statusCode, 200);

        const spin = await send({ type: 'SPIN' });
        assert.equal(spin.statusCode, 200, spin.body);
        assert.equal(spin.json().status, 'error');
        assert.match(spin.json().error.message, /more than 10000 microsteps/);
        const read = await t.app.inject({ url: `/v1/workflows/${id}` });
        assert.equal(read.statusCode, 200);
        const list = await t.app.inject({ url: '/v1/workflows' });
        assert.equal(list.statusCode, 200);
        assert.equal((list.json() as { workflows: unknown[] }).workflows.length, 1);
        assert.equal((await t.app.inject({ url: `/v1/workflows/${id}/verify` })).json().ok, true);
      } finally {
        await t.close();
      }
    });
  });
}
