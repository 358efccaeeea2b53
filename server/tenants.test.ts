/**
 * Tenants at the API, on both stores: a key of one tenant sees, lists, counts
 * and acts on its own tenant's jobs only. Another tenant's job answers 404
 * exactly as a job that does not exist, and a 404 writes nothing. Operator
 * actions are recorded in the audit log with the key that did them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuditEntry, AuditStore } from '../engine/ports.js';
import { startSqliteTestApp, startTestApp, type TestApp } from '../tests/helpers/app.js';
import { authWith, MemoryKeyStore } from '../tests/helpers/keys.js';
import type { JobDetail, JobView } from './schemas.js';

/** An audit log kept in memory (newest last). */
class MemoryAudit implements AuditStore {
  readonly entries: AuditEntry[] = [];
  async recordAudit(entry: AuditEntry): Promise<void> {
    this.entries.push(entry);
  }
  async listAudit(tenant: string, limit: number): Promise<AuditEntry[]> {
    return this.entries.filter((e) => e.tenant === tenant).reverse().slice(0, limit);
  }
  async purgeAudit(): Promise<number> {
    return 0;
  }
}

type Key = Awaited<ReturnType<MemoryKeyStore['make']>>;

for (const [name, start] of [['MariaDB', startTestApp], ['SQLite', startSqliteTestApp]] as const) {
  describe(`tenants at the API (${name})`, () => {
    let t: TestApp;
    let acme: Key;
    let globex: Key;
    const audit = new MemoryAudit();
    before(async () => {
      const keys = new MemoryKeyStore();
      acme = await keys.make('acme');
      globex = await keys.make('globex');
      t = await start({ auth: authWith(keys, 'on'), audit });
    });
    after(() => t?.close());

    const submit = async (as: Key, body: object = {}, headers: Record<string, string> = {}) => {
      const r = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: { n: 1 }, ...body }, headers: { ...as.headers, ...headers } });
      assert.ok(r.statusCode === 201 || r.statusCode === 200, r.body);
      return { status: r.statusCode, job: r.json() as JobView };
    };
    const call = (as: Key, method: 'GET' | 'POST' | 'DELETE', url: string) => t.app.inject({ method, url, headers: as.headers });
    const absent = '01JD3W7Z9Q4X2M8K5N6P0R1S2T';

    test('another tenant\'s job is a 404 exactly like a job that does not exist, for every job route; the job stays as it was', async () => {
      const { job } = await submit(acme, { queue: 'q-hidden' });
      const own = await call(acme, 'GET', `/v1/jobs/${job.id}`);
      assert.equal(own.statusCode, 200);
      assert.equal((own.json() as JobDetail).events.length, 1);
      const before = await t.store.getJob(job.id);
      const eventsBefore = await t.store.getEvents(job.id);
      const entriesBefore = audit.entries.length;
      for (const [method, path] of [['GET', ''], ['POST', '/cancel'], ['POST', '/redrive'], ['DELETE', '']] as const) {
        const theirs = await call(globex, method, `/v1/jobs/${job.id}${path}`);
        const none = await call(globex, method, `/v1/jobs/${absent}${path}`);
        assert.equal(theirs.statusCode, 404, `${method} ${path}: ${theirs.body}`);
        assert.equal(theirs.json().code, 'ATS_ERR_JOB_NOT_FOUND');
        assert.equal(theirs.json().message.replace(job.id, 'ID'), none.json().message.replace(absent, 'ID'), 'the same answer as for an id no job has');
      }
      assert.deepEqual(await t.store.getJob(job.id), before, 'the job is unchanged');
      assert.deepEqual(await t.store.getEvents(job.id), eventsBefore, 'no event was written');
      assert.equal(audit.entries.length, entriesBefore, 'nothing was audited');
    });

    test('cancel, redrive and delete by the owning tenant work and are audited with the key that did them', async () => {
      const { job } = await submit(acme, { queue: 'q-ops' });
      assert.equal((await call(acme, 'POST', `/v1/jobs/${job.id}/cancel`)).statusCode, 200);
      assert.equal((await call(acme, 'POST', `/v1/jobs/${job.id}/redrive`)).statusCode, 200);
      assert.equal((await call(acme, 'POST', `/v1/jobs/${job.id}/cancel`)).statusCode, 200);
      assert.equal((await call(acme, 'DELETE', `/v1/jobs/${job.id}`)).statusCode, 204);
      const mine = audit.entries.filter((e) => e.target === job.id);
      assert.deepEqual(mine.map((e) => e.action), ['job.cancel', 'job.redrive', 'job.cancel', 'job.delete']);
      assert.ok(mine.every((e) => e.keyId === acme.record.id && e.tenant === 'acme' && Number.isFinite(e.at)));
      // A refused action (409) is not audited.
      const { job: live } = await submit(acme, { queue: 'q-ops' });
      assert.equal((await call(acme, 'POST', `/v1/jobs/${live.id}/redrive`)).statusCode, 409);
      assert.equal((await call(acme, 'DELETE', `/v1/jobs/${live.id}`)).statusCode, 409);
      assert.equal(audit.entries.filter((e) => e.target === live.id).length, 0);
    });

    test('lists show only the caller\'s tenant\'s jobs, with every filter and across pages', async () => {
      const queue = `q-list-${name}`;
      const gOld = (await submit(globex, { queue })).job.id;
      const a = [(await submit(acme, { queue })).job.id, (await submit(acme, { queue })).job.id];
      const g = (await submit(globex, { queue })).job.id;
      const list = async (as: Key, query: string) => ((await call(as, 'GET', `/v1/jobs?${query}`)).json() as { jobs: JobView[]; nextCursor: string | null });
      assert.deepEqual((await list(acme, `queue=${queue}`)).jobs.map((j) => j.id), [...a].reverse());
      assert.deepEqual((await list(globex, `queue=${queue}`)).jobs.map((j) => j.id), [g, gOld]);
      assert.ok(!(await list(globex, 'limit=200')).jobs.some((j) => a.includes(j.id)));
      assert.ok(!(await list(globex, 'state=pending&limit=200')).jobs.some((j) => a.includes(j.id)));
      assert.ok(!(await list(globex, 'type=demo.echo&limit=200')).jobs.some((j) => a.includes(j.id)));
      const page1 = await list(acme, `queue=${queue}&limit=1`);
      assert.deepEqual(page1.jobs.map((j) => j.id), [a[1]]);
      assert.deepEqual((await list(acme, `queue=${queue}&limit=1&cursor=${page1.nextCursor}`)).jobs.map((j) => j.id), [a[0]]);
      // A cursor is a position, not a right: acme's, sent by globex, pages globex's own jobs older than it.
      for (const filter of [`queue=${queue}`, 'type=demo.echo', 'state=pending', `state=pending&queue=${queue}`]) {
        const theirs = await list(globex, `${filter}&limit=500&cursor=${page1.nextCursor}`);
        assert.ok(theirs.jobs.every((j) => !a.includes(j.id) && j.id < a[1]!), filter);
        assert.ok(theirs.jobs.some((j) => j.id === gOld), filter);
      }
    });

    test('stats count only the caller\'s tenant\'s jobs', async () => {
      const queue = `q-stats-${name}`;
      await submit(acme, { queue });
      await submit(acme, { queue });
      await submit(globex, { queue });
      const stats = async (as: Key) => (await call(as, 'GET', '/v1/stats')).json() as { total: number; byQueue: Record<string, Record<string, number>> };
      assert.equal((await stats(acme)).byQueue[queue]?.pending, 2);
      assert.equal((await stats(globex)).byQueue[queue]?.pending, 1);
      const acmeTotal = (await stats(acme)).total;
      assert.equal(acmeTotal, (await t.store.listJobs({ tenant: 'acme', limit: 1000 })).length);
    });

    test('the same Idempotency-Key in two tenants makes two jobs; a repeat in one tenant answers its own job', async () => {
      const headers = { 'idempotency-key': `shared-${name}` };
      const first = await submit(acme, { queue: 'q-key' }, headers);
      const other = await submit(globex, { queue: 'q-key' }, headers);
      assert.equal(first.status, 201);
      assert.equal(other.status, 201, 'another tenant\'s key does not stand in for this one');
      assert.notEqual(first.job.id, other.job.id);
      const again = await submit(acme, { queue: 'q-key' }, headers);
      assert.equal(again.status, 200);
      assert.equal(again.job.id, first.job.id);
      // A different body under globex's key conflicts with globex's job only.
      const conflict = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'demo.echo', payload: { n: 2 }, queue: 'q-key' }, headers: { ...globex.headers, ...headers } });
      assert.equal(conflict.statusCode, 409);
      assert.match(conflict.json().message, new RegExp(other.job.id));
    });

    test('a batch submits every job as the caller\'s tenant\'s, with per-tenant idempotency keys', async () => {
      const items = [{ type: 'demo.echo', payload: {}, queue: 'q-batch', idempotencyKey: `b-${name}` }, { type: 'demo.echo', payload: {}, queue: 'q-batch' }];
      const batch = async (as: Key) => (await t.app.inject({ method: 'POST', url: '/v1/jobs/batch', payload: { jobs: items }, headers: as.headers })).json() as { results: { status: number; id: string }[] };
      const a = await batch(acme);
      const g = await batch(globex);
      assert.deepEqual([...a.results, ...g.results].map((r) => r.status), [201, 201, 201, 201]);
      for (const r of a.results) assert.equal((await t.store.getJob(r.id))?.tenant, 'acme');
      for (const r of g.results) assert.equal((await t.store.getJob(r.id))?.tenant, 'globex');
      assert.equal((await batch(acme)).results[0]!.id, a.results[0]!.id, 'a repeat finds the tenant\'s own job');
    });

    test('edges count the caller\'s tenant\'s transitions; insights are the default tenant\'s only', async () => {
      const edges = async (as: Key) => ((await call(as, 'GET', '/v1/stats/edges')).json() as { edges: { event: string; count: number }[] }).edges;
      const submitted = async (as: Key) => (await edges(as)).find((e) => e.event === 'SUBMITTED')?.count ?? 0;
      const [a0, g0] = [await submitted(acme), await submitted(globex)];
      await submit(acme, { queue: 'q-edges' });
      // The answers are shared for a second per tenant.
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(await submitted(acme), a0 + 1);
      assert.equal(await submitted(globex), g0, 'another tenant\'s submit is not counted');
      const insights = (await call(globex, 'GET', '/v1/insights')).json();
      assert.deepEqual(insights.types, []);
    });
  });
}
