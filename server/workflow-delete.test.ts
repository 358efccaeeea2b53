/**
 * `DELETE /v1/workflows/:id` on the real MariaDB and on SQLite: an ended
 * instance is deleted (204) with its history, its idempotency key free
 * after; an active one is a 409 ATS_ERR_WORKFLOW_ACTIVE and stays as it
 * was; an unknown id and another tenant's instance are a 404, and the other
 * tenant's stays; the delete is in the audit log (`workflow.delete`) with
 * the key that did it. Its child jobs stay, and delete as any job: an ended
 * or deleted instance does not make them ATS_ERR_JOB_AWAITED.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { requireMysql } from '../tests/helpers/mysql.js';
import { oneStepWorkflow } from '../tests/helpers/workflow-machines.js';
import { makeKey } from '../tests/helpers/keys.js';
import { startSqliteTestApp, startTestApp, type TestApp } from '../tests/helpers/app.js';

const mysqlReady = await requireMysql();

const backends: [string, typeof startTestApp, string | false][] = [
  ['MariaDB', startTestApp, mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)'],
  ['SQLite', startSqliteTestApp, false],
];

type Instance = { id: string; status: string; version: number; children: { jobId: string }[] };

for (const [name, start, skip] of backends) {
  describe(`DELETE /v1/workflows/:id (${name})`, { skip }, () => {
    /** An app with keys on (and so the audit log), a key of every scope for tenants acme and globex, and the one-step workflow. */
    async function withApp(
      body: (t: TestApp, as: (tenant: 'acme' | 'globex') => Record<string, string>, keyId: (tenant: 'acme' | 'globex') => string) => Promise<void>,
    ): Promise<void> {
      const t = await start({}, { auth: 'auto', workflows: oneStepWorkflow('one-step', 'wf.step') });
      try {
        const keys = { acme: await makeKey(t.store, 'acme', undefined, 'acme'), globex: await makeKey(t.store, 'globex', undefined, 'globex') };
        await body(t, (tenant) => keys[tenant].headers, (tenant) => keys[tenant].record.id);
      } finally {
        await t.close();
      }
    }

    test('an active instance is a 409 ATS_ERR_WORKFLOW_ACTIVE and stays; cancelled, it is deleted (204) with its history; its child stays, and deletes as any job', () => withApp(async (t, as, keyId) => {
      const headers = as('acme');
      const started = await t.app.inject({ method: 'POST', url: '/v1/workflows', payload: { name: 'one-step', input: { email: 'ann@ats.invalid' } }, headers });
      assert.equal(started.statusCode, 201, started.body);
      const wf = started.json() as Instance;
      const childId = wf.children[0]!.jobId;
      const del = (id = wf.id, h = headers) => t.app.inject({ method: 'DELETE', url: `/v1/workflows/${id}`, headers: h });

      const refused = await del();
      assert.equal(refused.statusCode, 409, refused.body);
      assert.equal(refused.json().code, 'ATS_ERR_WORKFLOW_ACTIVE');
      assert.match(refused.json().message, new RegExp(`^Workflow instance ${wf.id} is active; .*cancel it first`));
      const still = await t.app.inject({ url: `/v1/workflows/${wf.id}`, headers });
      assert.deepEqual([still.statusCode, still.json().status, still.json().version], [200, 'active', 1], 'nothing written');

      assert.equal((await t.app.inject({ method: 'POST', url: `/v1/workflows/${wf.id}/cancel`, headers })).statusCode, 200);
      const deleted = await del();
      assert.equal(deleted.statusCode, 204, deleted.body);
      assert.equal(deleted.body, '');
      for (const url of [`/v1/workflows/${wf.id}`, `/v1/workflows/${wf.id}/events`]) {
        const r = await t.app.inject({ url, headers });
        assert.deepEqual([r.statusCode, r.json().code], [404, 'ATS_ERR_WORKFLOW_NOT_FOUND'], url);
      }
      assert.deepEqual(await t.store.getWorkflowEvents(wf.id), []);
      const listed = await t.app.inject({ url: '/v1/workflows', headers });
      assert.ok(!listed.body.includes(wf.id), 'not listed');
      const again = await del();
      assert.deepEqual([again.statusCode, again.json().code], [404, 'ATS_ERR_WORKFLOW_NOT_FOUND']);

      // The audit log has the delete, with the key that did it, after the cancel.
      const audit = await t.store.listAudit('acme', 10);
      assert.deepEqual(audit.filter((e) => e.target === wf.id).map((e) => e.action), ['workflow.delete', 'workflow.cancel']);
      assert.equal(audit[0]!.keyId, keyId('acme'));

      // The child job stays (cancelled with the instance), naming its instance; it deletes as any job.
      const child = await t.app.inject({ url: `/v1/jobs/${childId}`, headers });
      assert.deepEqual([child.statusCode, child.json().state], [200, 'cancelled']);
      assert.equal((await t.store.getJob(childId))?.parent?.workflowId, wf.id);
      const childDeleted = await t.app.inject({ method: 'DELETE', url: `/v1/jobs/${childId}`, headers });
      assert.equal(childDeleted.statusCode, 204, childDeleted.body);
    }));

    test('a done instance: its child, finished, deletes before the instance (nothing waits on it); the start\'s key is free once the instance is deleted', () => withApp(async (t, as) => {
      const headers = as('acme');
      const body = { name: 'one-step', input: null, idempotencyKey: 'order-7' };
      const wf = (await t.app.inject({ method: 'POST', url: '/v1/workflows', payload: body, headers })).json() as Instance;
      const childId = wf.children[0]!.jobId;
      const at = Date.now();
      assert.ok((await t.transitions.apply(childId, { type: 'STARTED', attempt: 1, leaseUntil: at + 30_000, workerId: 'w' })).ok);
      assert.ok((await t.transitions.apply(childId, { type: 'SUCCEEDED', attempt: 1, result: 7 })).ok);
      // Not taken yet: the instance still waits on the child's end, which keeps the child.
      assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/jobs/${childId}`, headers })).json().code, 'ATS_ERR_JOB_AWAITED');
      assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/workflows/${wf.id}`, headers })).json().code, 'ATS_ERR_WORKFLOW_ACTIVE');
      await t.workflows!.sweep(10);
      assert.equal((await t.app.inject({ url: `/v1/workflows/${wf.id}`, headers })).json().status, 'done');
      // Ended: the instance waits on nothing, and the child deletes while the instance is still there.
      assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/jobs/${childId}`, headers })).statusCode, 204);
      assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/workflows/${wf.id}`, headers })).statusCode, 204);

      const restarted = await t.app.inject({ method: 'POST', url: '/v1/workflows', payload: body, headers });
      assert.equal(restarted.statusCode, 201, 'a new instance');
      assert.notEqual(restarted.json().id, wf.id);
    }));

    test('an unknown id, or another tenant\'s ended instance, is a 404 and the other\'s stays; a malformed id is a 400', () => withApp(async (t, as) => {
      const theirs = (await t.app.inject({ method: 'POST', url: '/v1/workflows', payload: { name: 'one-step' }, headers: as('globex') })).json() as Instance;
      assert.equal((await t.app.inject({ method: 'POST', url: `/v1/workflows/${theirs.id}/cancel`, headers: as('globex') })).statusCode, 200);
      const other = await t.app.inject({ method: 'DELETE', url: `/v1/workflows/${theirs.id}`, headers: as('acme') });
      assert.deepEqual([other.statusCode, other.json()], [404, { code: 'ATS_ERR_WORKFLOW_NOT_FOUND', message: `No workflow instance has id ${theirs.id}` }]);
      const kept = await t.app.inject({ url: `/v1/workflows/${theirs.id}`, headers: as('globex') });
      assert.deepEqual([kept.statusCode, kept.json().status, kept.json().version], [200, 'cancelled', 2]);
      assert.deepEqual((await t.store.listAudit('acme', 10)).filter((e) => e.action === 'workflow.delete'), [], 'nothing audited');

      const unknown = await t.app.inject({ method: 'DELETE', url: '/v1/workflows/01ARZ3NDEKTSV4RRFFQ69G5FAV', headers: as('acme') });
      assert.deepEqual([unknown.statusCode, unknown.json().code], [404, 'ATS_ERR_WORKFLOW_NOT_FOUND']);
      const bad = await t.app.inject({ method: 'DELETE', url: '/v1/workflows/not-an-id', headers: as('acme') });
      assert.deepEqual([bad.statusCode, bad.json().code], [400, 'ATS_ERR_VALIDATION']);
      // A key without the operate scope: 403, nothing deleted.
      const reader = await makeKey(t.store, 'globex', ['read'], 'reader');
      assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/workflows/${theirs.id}`, headers: reader.headers })).statusCode, 403);
      assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/workflows/${theirs.id}`, headers: as('globex') })).statusCode, 204);
    }));
  });
}
