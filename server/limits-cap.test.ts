/**
 * A tenant's 1,000 limits hold under concurrent PUTs of new keys, on the real
 * MariaDB and on SQLite: the count and the insert are one transaction, so
 * PUTs racing at 999 limits create one, and the others are 409
 * ATS_ERR_TOO_MANY_LIMITS; every limit stays listed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startSqliteTestApp, startTestApp } from '../tests/helpers/app.js';

for (const [name, start] of [['MariaDB', startTestApp], ['SQLite', startSqliteTestApp]] as const) {
  test(`${name}: concurrent PUTs of new keys at 999 limits create one; the others are 409 and write nothing`, async () => {
    const t = await start();
    try {
      for (let i = 0; i < 999; i++) await t.store.putLimit(`k${i}`, { concurrency: 1, rate: null }, t.clock.now());
      const rs = await Promise.all(Array.from({ length: 8 }, (_, i) =>
        t.app.inject({ method: 'PUT', url: `/v1/limits/n${i}`, payload: { concurrency: 1 } })));
      const statuses = rs.map((r) => r.statusCode).sort();
      assert.deepEqual(statuses, [201, 409, 409, 409, 409, 409, 409, 409], rs.map((r) => r.body).join('\n'));
      assert.ok(rs.filter((r) => r.statusCode === 409).every((r) => r.json().code === 'ATS_ERR_TOO_MANY_LIMITS'));
      assert.equal((await t.store.listLimits(2000)).length, 1000);
      assert.equal((await t.app.inject({ url: '/v1/limits' })).json().limits.length, 1000);
    } finally {
      await t.close();
    }
  });
}
