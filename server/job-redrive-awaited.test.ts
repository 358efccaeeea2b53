/**
 * `POST /v1/jobs/:id/redrive` of a workflow's child, on MariaDB and SQLite.
 * A finished child whose end its active instance has not taken yet is
 * refused (409 ATS_ERR_JOB_AWAITED, as DELETE refuses it) and nothing is
 * written: redriven, the instance would still take the end it missed (and
 * run its onError), while the new run's end would be dropped. Once the
 * instance has taken the end, the child redrives as any job, and its new
 * run's end changes nothing for the instance.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { requireMysql } from '../tests/helpers/mysql.js';
import { oneStepWorkflow } from '../tests/helpers/workflow-machines.js';
import { startSqliteTestApp, startTestApp, type TestApp } from '../tests/helpers/app.js';

const mysqlReady = await requireMysql();


const backends: [string, typeof startTestApp, string | false][] = [
  ['MariaDB', startTestApp, mysqlReady ? false : 'MariaDB not reachable (ATS_ALLOW_SKIP=1)'],
  ['SQLite', startSqliteTestApp, false],
];

/** One child job (`wf.redrive`, one attempt): `ok` on its end, `failed` on its error. */
const redriveStep = () => oneStepWorkflow('redrive-step', 'wf.redrive', { maxAttempts: 1 });

/** Starts an instance; returns its id and its child's. */
async function startInstance(t: TestApp): Promise<{ wfId: string; childId: string }> {
  const r = await t.app.inject({ method: 'POST', url: '/v1/workflows', payload: { name: 'redrive-step', input: null } });
  assert.equal(r.statusCode, 201, r.body);
  const wf = r.json() as { id: string; children: { jobId: string }[] };
  return { wfId: wf.id, childId: wf.children[0]!.jobId };
}

/** Starts an instance and kills its child (one failed attempt); returns their ids. No log runs: the end has not reached the instance. */
async function deadChild(t: TestApp): Promise<{ wfId: string; childId: string }> {
  const { wfId, childId } = await startInstance(t);
  assert.ok((await t.transitions.apply(childId, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + 30_000, workerId: 'w' })).ok);
  const failed = await t.transitions.apply(childId, { type: 'FAILED', attempt: 1, error: { message: 'boom', name: 'Error', retryable: false } });
  assert.ok(failed.ok && failed.job.snapshot.value === 'dead', 'the child is dead');
  return { wfId, childId };
}

for (const [name, start, skip] of backends) {
  describe(`POST /v1/jobs/:id/redrive of a workflow's child (${name})`, { skip }, () => {
    test('a dead child its instance still waits on is a 409 ATS_ERR_JOB_AWAITED, and nothing is written', async () => {
      const t = await start({}, { workflows: redriveStep() });
      try {
        const { wfId, childId } = await deadChild(t);
        const before = await t.store.getJob(childId);
        const refused = await t.app.inject({ method: 'POST', url: `/v1/jobs/${childId}/redrive` });
        assert.equal(refused.statusCode, 409, refused.body);
        assert.equal(refused.json().code, 'ATS_ERR_JOB_AWAITED');
        assert.match(refused.json().message, new RegExp(`is dead, but its workflow instance ${wfId} has not taken its end yet`));
        const after = await t.store.getJob(childId);
        assert.equal(after!.snapshot.value, 'dead', 'still dead');
        assert.equal(after!.version, before!.version, 'nothing written');
        assert.equal((await t.store.getEvents(childId)).length, 3, 'no REDRIVE event');
        // In process, the transition service answers the same.
        const inProcess = await t.transitions.apply(childId, { type: 'REDRIVE' });
        assert.deepEqual(inProcess.ok ? 'applied' : [inProcess.reason, 'workflowId' in inProcess ? inProcess.workflowId : null], ['awaited', wfId]);
        assert.equal((await t.store.getJob(childId))!.version, before!.version, 'nothing written');

        // The sweep tells the instance the end the job really had, and it takes its error path.
        await t.workflows!.sweep(10);
        const ended = (await t.app.inject({ url: `/v1/workflows/${wfId}` })).json() as { status: string; value: unknown };
        assert.deepEqual([ended.status, ended.value], ['done', 'failed']);

        // Now it redrives as any job; the new run's end is not the instance's any more.
        const redriven = await t.app.inject({ method: 'POST', url: `/v1/jobs/${childId}/redrive` });
        assert.equal(redriven.statusCode, 200, redriven.body);
        assert.equal(redriven.json().state, 'pending');
        assert.ok((await t.transitions.apply(childId, { type: 'STARTED', attempt: 2, leaseUntil: Date.now() + 30_000, workerId: 'w' })).ok);
        assert.ok((await t.transitions.apply(childId, { type: 'SUCCEEDED', attempt: 2, result: 1 })).ok);
        await t.workflows!.sweep(10);
        const still = (await t.app.inject({ url: `/v1/workflows/${wfId}` })).json() as { status: string; value: unknown };
        assert.deepEqual([still.status, still.value], ['done', 'failed'], 'the later end changes nothing');
      } finally {
        await t.close();
      }
    });

    test('a cancelled child of an instance cancelled with it is not awaited: it redrives', async () => {
      const t = await start({}, { workflows: redriveStep() });
      try {
        const { wfId, childId } = await startInstance(t);
        const cancelled = await t.app.inject({ method: 'POST', url: `/v1/workflows/${wfId}/cancel` });
        assert.equal(cancelled.statusCode, 200, cancelled.body);
        assert.equal((await t.store.getJob(childId))!.snapshot.value, 'cancelled');
        const redriven = await t.app.inject({ method: 'POST', url: `/v1/jobs/${childId}/redrive` });
        assert.equal(redriven.statusCode, 200, redriven.body);
        assert.equal(redriven.json().state, 'pending');
      } finally {
        await t.close();
      }
    });

    test('a live child is refused as any live job (409 ATS_ERR_TRANSITION_NOT_ALLOWED), awaited or not', async () => {
      const t = await start({}, { workflows: redriveStep() });
      try {
        const { childId } = await startInstance(t);
        const refused = await t.app.inject({ method: 'POST', url: `/v1/jobs/${childId}/redrive` });
        assert.equal(refused.statusCode, 409, refused.body);
        assert.equal(refused.json().code, 'ATS_ERR_TRANSITION_NOT_ALLOWED');
      } finally {
        await t.close();
      }
    });
  });
}
