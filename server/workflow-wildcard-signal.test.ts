/**
 * A signal of type `*` (XState's wildcard: any event, in a machine's `on`;
 * never an event's own type) is refused with 400 ATS_ERR_VALIDATION, over
 * HTTP and by the in-process `WorkflowService.signal`, and nothing is
 * written. Under Node's `--conditions=development` XState's development
 * build throws on such an event, which ended the instance in error; under
 * the default build it was a 409.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { HandlerRegistry } from '../engine/handlers.js';
import { isAtsError } from '../engine/errors.js';
import { requireMysql } from '../tests/helpers/mysql.js';
import { startSqliteTestApp, startTestApp } from '../tests/helpers/app.js';
import { wildcardMachine } from '../tests/helpers/wildcard-signal.js';

const mysqlReady = await requireMysql();
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const backends: [string, typeof startTestApp, string | false][] = [
  ['MariaDB', startTestApp, mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)'],
  ['SQLite', startSqliteTestApp, false],
];

for (const [name, start, skip] of backends) {
  describe(`a signal of type * (${name})`, { skip }, () => {
    test('is a 400 ATS_ERR_VALIDATION over HTTP and in process, and the instance is unchanged', async () => {
      const definitions = new HandlerRegistry();
      definitions.workflow('wildcard', wildcardMachine(), { version: 1 });
      const t = await start({}, { workflows: definitions });
      try {
        const started = await t.app.inject({ method: 'POST', url: '/v1/workflows', payload: { name: 'wildcard', input: null } });
        assert.equal(started.statusCode, 201, started.body);
        const id = (started.json() as { id: string }).id;
        const read = async () => {
          const wf = (await t.app.inject({ url: `/v1/workflows/${id}` })).json() as { status: string; value: unknown; version: number; updatedAt: string };
          const events = (await t.app.inject({ url: `/v1/workflows/${id}/events` })).json() as { events: unknown[] };
          return { ...wf, events: events.events.length };
        };
        const before = await read();

        const r = await t.app.inject({ method: 'POST', url: `/v1/workflows/${id}/events`, payload: { type: '*' }, headers: { 'idempotency-key': 'k1' } });
        assert.equal(r.statusCode, 400, r.body);
        assert.equal(r.json().code, 'ATS_ERR_VALIDATION');
        assert.match(r.json().message, /body\/type: \* is XState's wildcard/);
        assert.deepEqual(await read(), before, 'nothing written');

        await assert.rejects(t.workflows!.signal(id, 'default', { type: '*' }), (err) => isAtsError(err) && err.code === 'ATS_ERR_VALIDATION' && err.status === 400);
        assert.deepEqual(await read(), before, 'nothing written');
        // An engine's type, in process as over HTTP: the same 400.
        await assert.rejects(t.workflows!.signal(id, 'default', { type: 'xstate.init' }), (err) => isAtsError(err) && err.code === 'ATS_ERR_VALIDATION' && /xstate\. are the engine's/.test(err.message));
        assert.deepEqual(await read(), before, 'nothing written');

        // Any other type goes on as before.
        const taken = await t.app.inject({ method: 'POST', url: `/v1/workflows/${id}/events`, payload: { type: 'GO' } });
        assert.equal(taken.statusCode, 200, taken.body);
        assert.equal(taken.json().status, 'done');
      } finally {
        await t.close();
      }
    });
  });
}

test('under --conditions=development (XState\'s development build) a signal of type * no longer ends the instance in error', async () => {
  const args = ['--conditions=development', '--conditions=ats-source', '--import', 'tsx', join(root, 'tests/helpers/wildcard-signal.ts')];
  const { stdout } = await promisify(execFile)(process.execPath, args, { cwd: root, maxBuffer: 16 << 20 });
  const out = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
    development: boolean; route: { status: number; code: string }; service: { code?: string; ok?: boolean }; after: { status: string; version: number; error: unknown };
  };
  assert.equal(out.development, true, 'the development build is the one loaded');
  assert.deepEqual(out.route, { status: 400, code: 'ATS_ERR_VALIDATION' });
  assert.deepEqual(out.service, { code: 'ATS_ERR_VALIDATION' });
  assert.deepEqual([out.after.status, out.after.version, out.after.error], ['active', 1, null]);
});
