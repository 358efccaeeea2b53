/**
 * PUTs and DELETEs of one limit key at once, on the real MariaDB and on
 * SQLite: each PUT answers the limit it set (never another request's, never
 * a 500), one PUT of a new key creates it, and what is stored at the end is
 * what one of the last round's PUTs answered. New keys of one tenant created
 * at once (a provisioning script) all are: past the tenant's first key they
 * wait for each other at the tenant's count, and the few that deadlock on its
 * first rows are run again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { storedLimitKey } from '../engine/limits.js';
import { startSqliteTestApp, startTestApp } from '../tests/helpers/app.js';

const ROUNDS = 15;
const AT_ONCE = 6;

for (const [name, start] of [['MariaDB', startTestApp], ['SQLite', startSqliteTestApp]] as const) {
  test(`${name}: PUTs of one key at once each answer the limit they set; one creates it`, async () => {
    const t = await start();
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const key = `race-${round % 3}`;
        const fresh = round < 3;
        const bodies = Array.from({ length: AT_ONCE }, (_, i) => (i % 2 === 0
          ? { concurrency: i + 1 }
          : { concurrency: i + 1, rate: { max: i + 1, intervalMs: 1000 * (round + 1) } }));
        const rs = await Promise.all(bodies.map((body) => t.app.inject({ method: 'PUT', url: `/v1/limits/${key}`, payload: body })));
        rs.forEach((r, i) => {
          assert.ok(r.statusCode === 200 || r.statusCode === 201, r.body);
          const answered = r.json();
          assert.equal(answered.concurrency, bodies[i]!.concurrency, `round ${round}: PUT ${i} answered another request's limit: ${r.body}`);
          assert.deepEqual(answered.rate ?? null, bodies[i]!.rate ?? null, `round ${round}: PUT ${i}: ${r.body}`);
        });
        assert.equal(rs.filter((r) => r.statusCode === 201).length, fresh ? 1 : 0, `round ${round}: created by exactly one PUT of a new key`);
        const stored = (await t.app.inject({ url: `/v1/limits/${key}` })).json();
        assert.ok(rs.some((r) => r.json().concurrency === stored.concurrency && JSON.stringify(r.json().rate) === JSON.stringify(stored.rate)),
          `round ${round}: stored ${JSON.stringify(stored)} is what one PUT answered`);
      }
    } finally {
      await t.close();
    }
  });

  test(`${name}: a PUT racing DELETEs of its key answers the limit it set, never an error`, async () => {
    const t = await start();
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const rs = await Promise.all([
          t.app.inject({ method: 'PUT', url: '/v1/limits/gone', payload: { concurrency: round + 1 } }),
          t.app.inject({ method: 'DELETE', url: '/v1/limits/gone' }),
          t.app.inject({ method: 'PUT', url: '/v1/limits/gone', payload: { concurrency: round + 100 } }),
          t.app.inject({ method: 'DELETE', url: '/v1/limits/gone' }),
        ]);
        assert.ok([200, 201].includes(rs[0]!.statusCode), rs[0]!.body);
        assert.equal(rs[0]!.json().concurrency, round + 1);
        assert.ok([200, 201].includes(rs[2]!.statusCode), rs[2]!.body);
        assert.equal(rs[2]!.json().concurrency, round + 100);
        for (const d of [rs[1]!, rs[3]!]) assert.ok([204, 404].includes(d.statusCode), d.body);
      }
    } finally {
      await t.close();
    }
  });

  test(`${name}: 30 new keys of one tenant set at once are all created`, async () => {
    const t = await start();
    try {
      const tenant = `burst${Date.now().toString(36)}`;
      const out = await Promise.allSettled(Array.from({ length: 30 }, (_, i) =>
        t.store.putLimit(storedLimitKey(tenant, `k${i}`), { concurrency: i + 1, rate: null }, t.clock.now(), 1000)));
      const failed = out.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason));
      assert.deepEqual(failed, []);
      assert.ok(out.every((o) => o.status === 'fulfilled' && o.value.created));
      assert.equal((await t.store.listLimits(2000, tenant)).length, 30);
    } finally {
      await t.close();
    }
  });
}
