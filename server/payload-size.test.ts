/**
 * The largest job the API takes is one the database stores: at the largest
 * body limit (MAX_BODY_LIMIT_BYTES), a payload of the shape that grows most
 * when escaped into SQL (backslashes, each doubled) is stored whole on MariaDB
 * and on SQLite, and an app asked for a larger limit is refused at build (the
 * configuration refuses it too: cli/config.test.ts). Before the bound, a 20 MiB
 * payload under a 64 MiB limit was a 500 on MariaDB (past `max_allowed_packet`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildApp } from './app.js';
import { MAX_BODY_LIMIT_BYTES } from './deps.js';
import { startSqliteTestApp, startTestApp } from '../tests/helpers/app.js';

for (const [name, start] of [['mysql', startTestApp], ['sqlite', startSqliteTestApp]] as const) {
  describe(`a job at the largest body limit (${name})`, () => {
    it('is stored whole, even a payload that doubles when escaped', async () => {
      const t = await start({ limits: { bodyLimitBytes: MAX_BODY_LIMIT_BYTES } });
      try {
        // Each backslash is two bytes of JSON in the body and four of SQL text in the statement.
        const envelope = JSON.stringify({ type: 'demo.echo', payload: '' }).length;
        const payload = '\\'.repeat(Math.floor((MAX_BODY_LIMIT_BYTES - envelope) / 2));
        const body = JSON.stringify({ type: 'demo.echo', payload });
        assert.ok(body.length <= MAX_BODY_LIMIT_BYTES && body.length > MAX_BODY_LIMIT_BYTES - 4);
        const r = await t.app.inject({ method: 'POST', url: '/v1/jobs', headers: { 'content-type': 'application/json' }, payload: body });
        assert.equal(r.statusCode, 201, r.body.slice(0, 300));
        const stored = await t.store.getJob(r.json().id);
        assert.equal(stored?.payload, payload);
        const over = await t.app.inject({ method: 'POST', url: '/v1/jobs', headers: { 'content-type': 'application/json' }, payload: body + ' '.repeat(MAX_BODY_LIMIT_BYTES - body.length + 1) });
        assert.equal(over.statusCode, 413);
      } finally {
        await t.close();
      }
    });

    it('an app asked for a larger body limit is refused at build', async () => {
      const t = await start();
      try {
        await assert.rejects(buildApp({ ...t.deps, limits: { bodyLimitBytes: MAX_BODY_LIMIT_BYTES + 1 } }), /limits\.bodyLimitBytes is 4194305: at most 4194304/);
      } finally {
        await t.close();
      }
    });
  });
}
