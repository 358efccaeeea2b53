/**
 * `/v1/schedules` on SQLite: create (201 + Location, defaults from the
 * server's, the job fields checked as `POST /v1/jobs` checks them), read with
 * the next run times and the ticks, list, change (pause, resume, a new
 * expression, a new payload), delete. Every refused request leaves the
 * schedules as they were. With keys: each tenant has its own schedules
 * (another's is a 404), and a tick's job is its schedule's tenant's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Type } from '@sinclair/typebox';
import type { InjectOptions } from 'fastify';
import type { ErrorCode } from '../engine/errors.js';
import { defineHandler, HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';
import { MAX_TEMPLATE_PAYLOAD_BYTES, ScheduleRunner } from '../engine/schedules.js';
import { buildApp } from './app.js';
import { startSqliteTestApp, startTestApp, TEST_DEFAULTS, type TestApp } from '../tests/helpers/app.js';
import { injectAs, startTenantApp, type MadeKey } from '../tests/helpers/keys.js';

const MINUTE = 60_000;
const job = { type: 'demo.echo' };
const create = (body: Record<string, unknown>): InjectOptions => ({ method: 'POST', url: '/v1/schedules', payload: body });
const patch = (name: string, body: unknown): InjectOptions => ({ method: 'PATCH', url: `/v1/schedules/${name}`, payload: body as object });

/** The wall-clock parts of `ms` in `timeZone` (what the cron expression reads). */
function local(ms: number, timeZone: string): { weekday: string; hour: string; minute: string; second: string } {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(ms));
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)!.value;
  return { weekday: part('weekday'), hour: part('hour'), minute: part('minute'), second: part('second') };
}

describe('/v1/schedules', () => {
  let t: TestApp;
  const registry = registerDemoHandlers(new HandlerRegistry()).register(defineHandler('email.send', {
    payload: Type.Object({ to: Type.String({ minLength: 3 }) }, { additionalProperties: false }),
    run: async (p) => ({ to: p.to }),
  }));
  before(async () => {
    t = await startSqliteTestApp({ knownTypes: () => registry.types(), checkPayload: (type, payload) => registry.checkPayload(type, payload) });
  });
  after(async () => {
    await t?.close();
  });

  const list = async () => {
    const r = await t.app.inject({ url: '/v1/schedules' });
    assert.equal(r.statusCode, 200, r.body);
    return r.json().schedules as Array<Record<string, unknown>>;
  };
  const get = async (name: string) => {
    const r = await t.app.inject({ url: `/v1/schedules/${name}` });
    assert.equal(r.statusCode, 200, r.body);
    return r.json();
  };
  /** The request is refused with `status` and `code`, and the schedules (and their jobs) are as they were. */
  const refused = async (req: InjectOptions, status: number, code: ErrorCode, says?: RegExp) => {
    const before = await list();
    const r = await t.app.inject(req);
    assert.equal(r.statusCode, status, `${req.method} ${req.url} ${JSON.stringify(req.payload)?.slice(0, 200)}: ${r.body.slice(0, 300)}`);
    const body = r.json() as { code: string; message: string };
    assert.deepEqual(Object.keys(body).sort(), ['code', 'message']);
    assert.equal(body.code, code, body.message);
    if (says) assert.match(body.message, says);
    assert.deepEqual(await list(), before, 'a refused request changed the schedules');
    return body;
  };

  test('create: 201 with its Location, the defaults filled in', async () => {
    const before = Date.now();
    const r = await t.app.inject(create({ name: 'every-15', cron: '*/15 * * * *', ...job, payload: { n: 1 } }));
    assert.equal(r.statusCode, 201, r.body);
    assert.equal(r.headers.location, 'schedules/every-15');
    const s = r.json();
    assert.deepEqual({ ...s, nextRunAt: undefined, createdAt: undefined, updatedAt: undefined }, {
      name: 'every-15', cron: '*/15 * * * *', timezone: 'UTC', overlap: 'skip', catchUp: 'none', paused: false,
      job: {
        type: 'demo.echo', payload: { n: 1 }, queue: TEST_DEFAULTS.queue, maxAttempts: TEST_DEFAULTS.maxAttempts,
        backoff: TEST_DEFAULTS.backoff, timeoutMs: TEST_DEFAULTS.timeoutMs, priority: TEST_DEFAULTS.priority,
      },
      nextRunAt: undefined, lastTickAt: null, lastJobId: null, submitted: 0, skipped: 0, missed: 0, createdAt: undefined, updatedAt: undefined,
    });
    const next = Date.parse(s.nextRunAt);
    assert.ok(next > before && next <= Date.now() + 15 * MINUTE && next % (15 * MINUTE) === 0, s.nextRunAt);
    assert.equal(s.createdAt, s.updatedAt);
    assert.ok(Math.abs(Date.parse(s.createdAt) - before) < MINUTE);
    assert.deepEqual(await get('every-15'), { ...(await get('every-15')), ...s });
  });

  test('create: every field given is kept; payload defaults to null', async () => {
    const body = {
      name: 'all.fields:1', cron: '0 30 9 * * 1-5', timezone: 'Europe/Berlin', type: 'demo.echo', queue: 'reports',
      maxAttempts: 7, backoff: { kind: 'fixed', delayMs: 250 }, timeoutMs: 5000, priority: -3, overlap: 'allow', catchUp: 'latest', paused: true,
    };
    const r = await t.app.inject(create(body));
    assert.equal(r.statusCode, 201, r.body);
    const s = r.json();
    assert.deepEqual(
      { name: s.name, cron: s.cron, timezone: s.timezone, overlap: s.overlap, catchUp: s.catchUp, paused: s.paused, nextRunAt: s.nextRunAt },
      { name: body.name, cron: body.cron, timezone: body.timezone, overlap: 'allow', catchUp: 'latest', paused: true, nextRunAt: null },
    );
    assert.deepEqual(s.job, { type: 'demo.echo', payload: null, queue: 'reports', maxAttempts: 7, backoff: { kind: 'fixed', delayMs: 250 }, timeoutMs: 5000, priority: -3 });
    const exp = await t.app.inject(create({ name: 'exp-backoff', cron: '0 0 * * *', ...job, backoff: { kind: 'exponential', baseMs: 10, maxMs: 100 } }));
    assert.deepEqual(exp.json().job.backoff, { kind: 'exponential', baseMs: 10, maxMs: 100, jitter: 'full' }, 'the submit\'s default jitter');
  });

  test('create: a name in use is a 409 and the first schedule stays', async () => {
    const first = await t.app.inject(create({ name: 'taken', cron: '0 * * * *', ...job }));
    assert.equal(first.statusCode, 201, first.body);
    await refused(create({ name: 'taken', cron: '*/5 * * * *', type: 'demo.sleep', payload: 1 }), 409, 'ATS_ERR_SCHEDULE_EXISTS', /taken/);
    const s = await get('taken');
    assert.equal(s.cron, '0 * * * *');
    assert.equal(s.job.type, 'demo.echo');
  });

  test('create: a bad expression is ATS_ERR_INVALID_CRON', async () => {
    for (const cron of ['61 * * * *', 'bad', '* * * *', '*/0 * * * *', '1-0 * * * *', '0 0 * * 8', '* * * * * * * *', '0 25 * * *']) {
      await refused(create({ name: 'bad-cron', cron, ...job }), 400, 'ATS_ERR_INVALID_CRON');
    }
  });

  test('a one-off date after the year 9999 is ATS_ERR_INVALID_CRON, and the schedules still answer', async () => {
    await refused(create({ name: 'far', cron: '+200000-01-01T00:00:00Z', ...job }), 400, 'ATS_ERR_INVALID_CRON', /9999/);
    assert.equal((await t.app.inject({ url: '/v1/schedules/far' })).statusCode, 404);
    assert.equal((await t.app.inject(create({ name: 'far-ok', cron: '0 0 1 1 *', ...job }))).statusCode, 201);
    await refused(patch('far-ok', { cron: '+200000-01-01T00:00:00Z' }), 400, 'ATS_ERR_INVALID_CRON', /9999/);
    assert.equal((await get('far-ok')).cron, '0 0 1 1 *');
    assert.equal((await t.app.inject({ url: '/v1/schedules' })).statusCode, 200);
  });

  test('create: an unknown time zone is ATS_ERR_INVALID_TIMEZONE', async () => {
    for (const timezone of ['Mars/Olympus_Mons', 'Europe/Berlinn', 'UTC+99', '../../etc/passwd', 'Europe/Berlin\u0000']) {
      await refused(create({ name: 'bad-tz', cron: '0 * * * *', timezone, ...job }), 400, 'ATS_ERR_INVALID_TIMEZONE', /IANA/);
    }
  });

  test('create: oversize strings are 400 before the expression is parsed', async () => {
    await refused(create({ name: 'big', cron: '*'.repeat(10 * 1024), ...job }), 400, 'ATS_ERR_VALIDATION', /cron.*200/);
    await refused(create({ name: 'big', cron: `${'0,'.repeat(5000)}0 * * * *`, ...job }), 400, 'ATS_ERR_VALIDATION', /cron/);
    await refused(create({ name: 'big', cron: '0 * * * *', timezone: 'Europe/'.repeat(1500), ...job }), 400, 'ATS_ERR_VALIDATION', /timezone/);
    await refused(create({ name: 'n'.repeat(101), cron: '0 * * * *', ...job }), 400, 'ATS_ERR_VALIDATION', /name/);
    await refused(create({ name: 'big', cron: '0 * * * *', ...job, type: 't'.repeat(201) }), 400, 'ATS_ERR_VALIDATION', /type/);
  });

  test('create: wrong types, bad names and out-of-range numbers are 400 ATS_ERR_VALIDATION', async () => {
    const ok = { name: 'typed', cron: '0 * * * *', ...job };
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...ok, name: 5 }, /name/],
      [{ ...ok, name: '' }, /name/],
      [{ ...ok, name: 'a/b' }, /name/],
      [{ ...ok, name: 'a b' }, /name/],
      [{ ...ok, name: 'ü' }, /name/],
      // Its path would be /v1/schedules/.. : fetch, browsers and the CLI resolve that to another path, so nothing could read, change or delete it.
      [{ ...ok, name: '.' }, /name/],
      [{ ...ok, name: '..' }, /name/],
      [{ ...ok, cron: 5 }, /cron/],
      [{ ...ok, cron: '' }, /cron/],
      [{ ...ok, cron: ['0', '*', '*', '*', '*'] }, /cron/],
      [{ ...ok, timezone: 1 }, /timezone/],
      [{ ...ok, timezone: '' }, /timezone/],
      [{ ...ok, paused: 'yes' }, /paused/],
      [{ ...ok, paused: 1 }, /paused/],
      [{ ...ok, overlap: 'never' }, /overlap/],
      [{ ...ok, catchUp: 'some' }, /catchUp/],
      [{ ...ok, catchUp: true }, /catchUp/],
      [{ ...ok, type: 42 }, /type/],
      [{ ...ok, maxAttempts: '3' }, /maxAttempts/],
      [{ ...ok, maxAttempts: 0 }, /maxAttempts/],
      [{ ...ok, maxAttempts: 101 }, /maxAttempts/],
      [{ ...ok, priority: 1.5 }, /priority/],
      [{ ...ok, priority: 1001 }, /priority/],
      [{ ...ok, timeoutMs: 0 }, /timeoutMs/],
      [{ ...ok, timeoutMs: 86_400_001 }, /timeoutMs/],
      [{ ...ok, backoff: { kind: 'linear' } }, /backoff/],
      [{ ...ok, backoff: { kind: 'exponential', baseMs: 100, maxMs: 10 } }, /maxMs/],
      [{ ...ok, queue: 'a/b' }, /queue/],
    ];
    for (const [body, says] of cases) await refused(create(body), 400, 'ATS_ERR_VALIDATION', says);
    for (const missing of ['name', 'cron', 'type']) {
      const body = { ...ok };
      delete (body as Record<string, unknown>)[missing];
      await refused(create(body), 400, 'ATS_ERR_VALIDATION', new RegExp(missing));
    }
  });

  test('create: an unknown field is 400, runAt included (the tick is the run time)', async () => {
    const ok = { name: 'extra', cron: '0 * * * *', ...job };
    await refused(create({ ...ok, colour: 'red' }), 400, 'ATS_ERR_VALIDATION', /unknown field 'colour'/);
    await refused(create({ ...ok, runAt: 0 }), 400, 'ATS_ERR_VALIDATION', /unknown field 'runAt'/);
    await refused(create({ ...ok, idempotencyKey: 'k' }), 400, 'ATS_ERR_VALIDATION', /idempotencyKey/);
    await refused(create({ ...ok, nextRunAt: '2030-01-01T00:00:00Z' }), 400, 'ATS_ERR_VALIDATION', /nextRunAt/);
  });

  test('create: a type no handler serves is 422; a payload that misfits its schema 400', async () => {
    await refused(create({ name: 'nope', cron: '0 * * * *', type: 'demo.nope' }), 422, 'ATS_ERR_UNKNOWN_JOB_TYPE', /demo\.nope/);
    await refused(create({ name: 'mail', cron: '0 * * * *', type: 'email.send', payload: { to: 1 } }), 400, 'ATS_ERR_INVALID_PAYLOAD', /body\/payload\/to/);
    await refused(create({ name: 'mail', cron: '0 * * * *', type: 'email.send' }), 400, 'ATS_ERR_INVALID_PAYLOAD', /body\/payload must be object/);
    const r = await t.app.inject(create({ name: 'mail', cron: '0 * * * *', type: 'email.send', payload: { to: 'a@b' } }));
    assert.equal(r.statusCode, 201, r.body);
  });

  test('get: the next 5 runs are the expression\'s, in its time zone', async () => {
    const name = 'quarter-kathmandu'; // +05:45: local quarter hours are UTC quarter hours
    assert.equal((await t.app.inject(create({ name, cron: '*/15 * * * *', timezone: 'Asia/Kathmandu', ...job }))).statusCode, 201);
    const s = await get(name);
    const runs = (s.nextRuns as string[]).map(Date.parse);
    assert.equal(runs.length, 5);
    assert.equal(s.nextRuns[0], s.nextRunAt);
    assert.ok(runs[0]! > Date.now() - 1000 && runs[0]! <= Date.now() + 15 * MINUTE, s.nextRuns[0]);
    for (let i = 1; i < 5; i++) assert.equal(runs[i]! - runs[i - 1]!, 15 * MINUTE, s.nextRuns.join(' '));
    for (const ms of runs) assert.ok(['00', '15', '30', '45'].includes(local(ms, 'Asia/Kathmandu').minute), new Date(ms).toISOString());
    assert.deepEqual(s.ticks, []);

    const berlin = 'weekday-mornings';
    assert.equal((await t.app.inject(create({ name: berlin, cron: '30 9 * * 1-5', timezone: 'Europe/Berlin', ...job }))).statusCode, 201);
    const b = await get(berlin);
    const days = new Set<string>();
    for (const iso of b.nextRuns as string[]) {
      const l = local(Date.parse(iso), 'Europe/Berlin');
      assert.deepEqual([l.hour, l.minute, l.second], ['09', '30', '00'], iso);
      assert.ok(['Mon', 'Tue', 'Wed', 'Thu', 'Fri'].includes(l.weekday), `${iso} is a ${l.weekday}`);
      days.add(iso.slice(0, 10));
    }
    assert.equal(days.size, 5, 'five different days');
    const runsB = (b.nextRuns as string[]).map(Date.parse);
    for (let i = 1; i < 5; i++) assert.ok(runsB[i]! - runsB[i - 1]! >= 23 * 60 * MINUTE, b.nextRuns.join(' '));
  });

  test('get: an unknown name is 404; a bad name in the path 400 on every method', async () => {
    await refused({ url: '/v1/schedules/no-such' }, 404, 'ATS_ERR_SCHEDULE_NOT_FOUND', /no-such/);
    for (const bad of ['a%20b', 'a%2Fb', '%C3%BC', 'a%00', 'a%0Ab', 'x'.repeat(101)]) {
      await refused({ url: `/v1/schedules/${bad}` }, 400, 'ATS_ERR_VALIDATION');
      await refused(patch(bad, { paused: true }), 400, 'ATS_ERR_VALIDATION');
      await refused({ method: 'DELETE', url: `/v1/schedules/${bad}` }, 400, 'ATS_ERR_VALIDATION');
    }
  });

  test('names that are Object.prototype\'s are names like any other', async () => {
    await refused({ url: '/v1/schedules/__proto__' }, 404, 'ATS_ERR_SCHEDULE_NOT_FOUND');
    for (const name of ['__proto__', 'constructor', 'hasOwnProperty']) {
      const r = await t.app.inject(create({ name, cron: '0 * * * *', ...job, payload: { polluted: true } }));
      assert.equal(r.statusCode, 201, r.body);
      assert.equal((await get(name)).name, name);
      assert.equal((await t.app.inject(patch(name, { paused: true }))).json().paused, true);
      assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/schedules/${name}` })).statusCode, 204);
    }
    assert.ok(!('polluted' in {}), 'Object.prototype was polluted');
  });

  test('list: every schedule, by name', async () => {
    const names = (await list()).map((s) => s.name as string);
    assert.ok(names.length >= 5 && names.includes('every-15') && names.includes('taken'), names.join(', '));
    assert.deepEqual(names, [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    const one = (await list()).find((s) => s.name === 'every-15')!;
    assert.deepEqual(Object.keys(one).sort(), Object.keys(await t.app.inject(create({ name: 'shape', cron: '0 * * * *', ...job })).then((r) => r.json())).sort());
  });

  test('patch: pause clears the next run; resume computes it from now', async () => {
    const name = 'pausable';
    assert.equal((await t.app.inject(create({ name, cron: '*/5 * * * *', ...job }))).statusCode, 201);
    const paused = await t.app.inject(patch(name, { paused: true }));
    assert.equal(paused.statusCode, 200, paused.body);
    assert.equal(paused.json().paused, true);
    assert.equal(paused.json().nextRunAt, null);
    const detail = await get(name);
    assert.deepEqual(detail.nextRuns, []);
    assert.equal(detail.nextRunAt, null);
    assert.ok(Date.parse(detail.updatedAt) >= Date.parse(detail.createdAt));

    const resumed = await t.app.inject(patch(name, { paused: false }));
    assert.equal(resumed.statusCode, 200, resumed.body);
    const next = Date.parse(resumed.json().nextRunAt);
    assert.ok(next > Date.now() - 1000 && next <= Date.now() + 5 * MINUTE && next % (5 * MINUTE) === 0, resumed.json().nextRunAt);
    assert.equal((await get(name)).nextRuns.length, 5);
  });

  test('patch: a new expression or time zone moves the next run', async () => {
    const name = 'new-year';
    const r = await t.app.inject(create({ name, cron: '0 0 1 1 *', ...job, priority: 7 }));
    const was = Date.parse(r.json().nextRunAt);
    assert.ok(was > Date.now() + 0 && new Date(was).toISOString().endsWith('-01-01T00:00:00.000Z'), r.json().nextRunAt);
    const changed = await t.app.inject(patch(name, { cron: '*/10 * * * *' }));
    assert.equal(changed.statusCode, 200, changed.body);
    const now = Date.parse(changed.json().nextRunAt);
    assert.notEqual(now, was);
    assert.ok(now <= Date.now() + 10 * MINUTE && now % (10 * MINUTE) === 0, changed.json().nextRunAt);
    assert.equal(changed.json().cron, '*/10 * * * *');
    assert.equal(changed.json().job.priority, 7, 'the template is untouched');

    const daily = await t.app.inject(patch(name, { cron: '0 12 * * *', timezone: 'America/New_York' }));
    assert.equal(daily.statusCode, 200, daily.body);
    assert.equal(daily.json().timezone, 'America/New_York');
    assert.deepEqual(Object.values(local(Date.parse(daily.json().nextRunAt), 'America/New_York')).slice(1), ['12', '00', '00']);
    const tz = await t.app.inject(patch(name, { timezone: 'Asia/Tokyo' }));
    assert.deepEqual(Object.values(local(Date.parse(tz.json().nextRunAt), 'Asia/Tokyo')).slice(1), ['12', '00', '00']);
    assert.notEqual(tz.json().nextRunAt, daily.json().nextRunAt);
  });

  test('patch: job fields replace the template\'s, the rest of it stays', async () => {
    const name = 'mailer';
    const r = await t.app.inject(create({ name, cron: '0 * * * *', type: 'email.send', payload: { to: 'a@b' }, priority: 4, maxAttempts: 2 }));
    assert.equal(r.statusCode, 201, r.body);
    const changed = await t.app.inject(patch(name, { payload: { to: 'c@d' } }));
    assert.equal(changed.statusCode, 200, changed.body);
    assert.deepEqual(changed.json().job, { ...r.json().job, payload: { to: 'c@d' } });
    assert.equal(changed.json().nextRunAt, r.json().nextRunAt, 'a job change does not move the next run');

    const more = await t.app.inject(patch(name, { type: 'demo.echo', payload: null, queue: 'other', backoff: { kind: 'fixed', delayMs: 9 }, timeoutMs: 99, overlap: 'allow', catchUp: 'all' }));
    assert.equal(more.statusCode, 200, more.body);
    assert.deepEqual(more.json().job, { type: 'demo.echo', payload: null, queue: 'other', maxAttempts: 2, backoff: { kind: 'fixed', delayMs: 9 }, timeoutMs: 99, priority: 4 });
    assert.equal(more.json().overlap, 'allow');
    assert.equal(more.json().catchUp, 'all');
    assert.deepEqual(await get(name).then((s) => s.job), more.json().job);
  });

  test('patch: refused changes write nothing', async () => {
    const name = 'guarded';
    assert.equal((await t.app.inject(create({ name, cron: '0 * * * *', type: 'email.send', payload: { to: 'a@b' } }))).statusCode, 201);
    await refused(patch(name, {}), 400, 'ATS_ERR_VALIDATION', /fewer than 1/);
    await refused(patch(name, { cron: '61 * * * *' }), 400, 'ATS_ERR_INVALID_CRON');
    await refused(patch(name, { cron: 'x'.repeat(10 * 1024) }), 400, 'ATS_ERR_VALIDATION', /cron/);
    await refused(patch(name, { timezone: 'Nowhere/Land' }), 400, 'ATS_ERR_INVALID_TIMEZONE');
    await refused(patch(name, { paused: 'true' }), 400, 'ATS_ERR_VALIDATION', /paused/);
    await refused(patch(name, { name: 'renamed' }), 400, 'ATS_ERR_VALIDATION', /unknown field 'name'/);
    await refused(patch(name, { runAt: 0 }), 400, 'ATS_ERR_VALIDATION', /runAt/);
    await refused(patch(name, { priority: 5000 }), 400, 'ATS_ERR_VALIDATION', /priority/);
    await refused(patch(name, { type: 'demo.nope' }), 422, 'ATS_ERR_UNKNOWN_JOB_TYPE');
    await refused(patch(name, { payload: { to: 5 } }), 400, 'ATS_ERR_INVALID_PAYLOAD');
    // The merged template is checked: a new payload against the type kept.
    await refused(patch(name, { payload: 'text' }), 400, 'ATS_ERR_INVALID_PAYLOAD');
    await refused(patch(name, { backoff: { kind: 'exponential', baseMs: 100, maxMs: 10 } }), 400, 'ATS_ERR_VALIDATION', /maxMs/);
    await refused({ ...patch(name, 'paused'), headers: { 'content-type': 'text/plain' } }, 415, 'ATS_ERR_UNSUPPORTED_MEDIA_TYPE');
    await refused(patch('no-such', { paused: true }), 404, 'ATS_ERR_SCHEDULE_NOT_FOUND');
    await refused(patch('no-such', { payload: 1 }), 404, 'ATS_ERR_SCHEDULE_NOT_FOUND');
  });

  test('a template\'s payload is at most 64 KiB of JSON: one over is a 400 on create and on patch, writing nothing', async () => {
    // 1000 schedules of a tenant are listed in one answer: payloads of the body limit (1 MiB each) made
    // GET /v1/schedules a 500 (a string longer than V8 can make) from about 520 schedules on.
    const text = (bytes: number) => ({ d: 'é'.repeat(Math.floor((bytes - 8) / 2)) + 'x'.repeat((bytes - 8) % 2) }); // JSON: {"d":"…"}
    assert.equal(Buffer.byteLength(JSON.stringify(text(MAX_TEMPLATE_PAYLOAD_BYTES))), MAX_TEMPLATE_PAYLOAD_BYTES);
    await refused(create({ name: 'fat', cron: '0 * * * *', ...job, payload: text(MAX_TEMPLATE_PAYLOAD_BYTES + 1) }), 400, 'ATS_ERR_VALIDATION', /payload.*65536/);
    const r = await t.app.inject(create({ name: 'fat', cron: '0 * * * *', ...job, payload: text(MAX_TEMPLATE_PAYLOAD_BYTES) }));
    assert.equal(r.statusCode, 201, r.body.slice(0, 300));
    await refused(patch('fat', { payload: text(MAX_TEMPLATE_PAYLOAD_BYTES + 1) }), 400, 'ATS_ERR_VALIDATION', /payload.*65536/);
    assert.equal((await t.app.inject(patch('fat', { payload: { small: true } }))).statusCode, 200);
    assert.deepEqual((await get('fat')).job.payload, { small: true });
  });

  test('delete: 204, then 404; the jobs it submitted stay', async () => {
    const name = 'short-lived';
    assert.equal((await t.app.inject(create({ name, cron: '0 * * * *', ...job }))).statusCode, 201);
    const r = await t.app.inject({ method: 'DELETE', url: `/v1/schedules/${name}` });
    assert.equal(r.statusCode, 204, r.body);
    assert.equal(r.body, '');
    assert.ok(!(await list()).some((s) => s.name === name));
    await refused({ url: `/v1/schedules/${name}` }, 404, 'ATS_ERR_SCHEDULE_NOT_FOUND');
    await refused({ method: 'DELETE', url: `/v1/schedules/${name}` }, 404, 'ATS_ERR_SCHEDULE_NOT_FOUND');
    // The name is free again.
    assert.equal((await t.app.inject(create({ name, cron: '0 * * * *', ...job }))).statusCode, 201);
  });

  test('a fired tick shows in the schedule; its job carries the server\'s key, which a user cannot take', async () => {
    const name = 'every-second';
    const queue = 'ticks';
    const r = await t.app.inject(create({ name, cron: '* * * * * *', ...job, queue, payload: { from: 'cron' } }));
    assert.equal(r.statusCode, 201, r.body);
    const due = Date.parse(r.json().nextRunAt);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now()) + 20));
    const runner = new ScheduleRunner({ store: t.store, transitions: t.transitions, clock: t.clock, logger: silentLogger });
    assert.ok((await runner.runOnce()) >= 1);

    const s = await get(name);
    // A slow pass may have found a second tick due: its job skipped (the first job is still pending).
    assert.equal(s.submitted, 1);
    assert.equal(s.submitted + s.skipped, s.ticks.length);
    const tick = s.ticks.at(-1);
    assert.equal(tick.outcome, 'submitted');
    assert.equal(tick.tickAt, r.json().nextRunAt);
    assert.equal(tick.jobId, s.lastJobId);
    assert.equal(s.lastTickAt, s.ticks[0].tickAt);
    assert.ok(Date.parse(tick.at) >= Date.parse(tick.tickAt));
    assert.ok(Date.parse(s.nextRunAt) > Date.parse(tick.tickAt));

    const jobView = (await t.app.inject({ url: `/v1/jobs/${tick.jobId}` })).json();
    assert.equal(jobView.queue, queue);
    assert.deepEqual(jobView.payload, { from: 'cron' });
    const key = jobView.idempotencyKey as string;
    assert.equal(key, `ats:schedule:${name}:${Date.parse(r.json().createdAt)}:${due}`);

    // A user submit with the tick's key (or any ats: key) is refused and creates nothing.
    const count = async () => (await t.store.listJobs({ limit: 100, queue })).length;
    const jobs = await count();
    const user = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { ...job, queue, payload: { from: 'user' } }, headers: { 'idempotency-key': key } });
    assert.equal(user.statusCode, 400, user.body);
    assert.equal(user.json().code, 'ATS_ERR_VALIDATION');
    assert.match(user.json().message, /headers\/idempotency-key must not start with 'ats:'/);
    const batch = await t.app.inject({
      method: 'POST', url: '/v1/jobs/batch',
      payload: { jobs: [{ ...job, queue, payload: 1, idempotencyKey: 'ats:schedule:x:1:2' }, { ...job, queue, payload: 2, idempotencyKey: 'mine' }] },
    });
    assert.equal(batch.statusCode, 200, batch.body);
    const [bad, good] = batch.json().results;
    assert.deepEqual({ status: bad.status, code: bad.code }, { status: 400, code: 'ATS_ERR_VALIDATION' });
    assert.match(bad.message, /body\/jobs\/0\/idempotencyKey must not start with 'ats:'/);
    assert.equal(good.status, 201);
    assert.equal(await count(), jobs + 1);

    assert.equal((await t.app.inject(patch(name, { paused: true }))).statusCode, 200);
  });

  test('an app given no ScheduleService serves no schedule route and documents none', async () => {
    const app = await buildApp({ ...t.deps, schedules: undefined });
    try {
      const r = await app.inject({ url: '/v1/schedules' });
      assert.equal(r.statusCode, 404);
      assert.equal(r.json().code, 'ATS_ERR_ROUTE_NOT_FOUND');
      const doc = (await app.inject({ url: '/docs/json' })).json();
      assert.deepEqual(Object.keys(doc.paths).filter((p) => p.startsWith('/v1/schedules')), []);
      assert.deepEqual(Object.keys(doc.components.schemas).filter((n) => /Schedule/.test(n)), []);
    } finally {
      await app.close();
    }
  });
});

describe('/v1/schedules: each tenant has its own', () => {
  type Key = MadeKey;
  let t: TestApp;
  let acme: Key;
  let globex: Key;
  let other: Key;
  before(async () => {
    ({ t, acme, globex, other } = await startTenantApp());
  });
  after(() => t?.close());
  const as = (k: Key, req: InjectOptions) => injectAs(t, k, req);
  const names = async (k: Key) => {
    const r = await as(k, { url: '/v1/schedules' });
    assert.equal(r.statusCode, 200, r.body);
    return (r.json().schedules as Array<{ name: string; cron: string }>).map((s) => `${s.name} ${s.cron}`);
  };

  test('two tenants may each have a schedule named nightly; each lists and reads only its own', async () => {
    assert.equal((await as(acme, create({ name: 'nightly', cron: '0 3 * * *', ...job }))).statusCode, 201);
    const g = await as(globex, create({ name: 'nightly', cron: '0 4 * * *', ...job }));
    assert.equal(g.statusCode, 201, g.body);
    assert.equal(g.headers.location, 'schedules/nightly');
    const again = await as(acme, create({ name: 'nightly', cron: '0 5 * * *', ...job }));
    assert.equal(again.statusCode, 409, again.body);
    assert.equal(again.json().code, 'ATS_ERR_SCHEDULE_EXISTS');
    assert.deepEqual(await names(acme), ['nightly 0 3 * * *']);
    assert.deepEqual(await names(globex), ['nightly 0 4 * * *']);
    assert.deepEqual(await names(other), []);
    assert.equal((await as(globex, { url: '/v1/schedules/nightly' })).json().cron, '0 4 * * *');
  });

  test('another tenant\'s schedule is not there: GET, PATCH and DELETE are 404 (never 403), and it stays as it was', async () => {
    assert.equal((await as(acme, create({ name: 'acme-only', cron: '0 6 * * *', ...job }))).statusCode, 201);
    const before = (await as(acme, { url: '/v1/schedules/acme-only' })).json();
    for (const k of [globex, other]) {
      for (const req of [{ url: '/v1/schedules/acme-only' }, patch('acme-only', { paused: true }), { method: 'DELETE', url: '/v1/schedules/acme-only' }] as InjectOptions[]) {
        const r = await as(k, req);
        assert.equal(r.statusCode, 404, `${req.method ?? 'GET'} ${r.body}`);
        assert.equal(r.json().code, 'ATS_ERR_SCHEDULE_NOT_FOUND');
      }
    }
    assert.deepEqual((await as(acme, { url: '/v1/schedules/acme-only' })).json(), before);
    // A change of globex's `nightly` leaves acme's alone, and so does a delete.
    assert.equal((await as(globex, patch('nightly', { cron: '0 7 * * *' }))).statusCode, 200);
    assert.equal((await as(globex, { method: 'DELETE', url: '/v1/schedules/nightly' })).statusCode, 204);
    assert.deepEqual(await names(acme), ['acme-only 0 6 * * *', 'nightly 0 3 * * *']);
    assert.deepEqual(await names(globex), []);
  });

  test('a tick submits its job into the schedule\'s tenant: the job is that tenant\'s only', async () => {
    const r = await as(globex, create({ name: 'every-second', cron: '* * * * * *', ...job, queue: 'globex-ticks' }));
    assert.equal(r.statusCode, 201, r.body);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(r.json().nextRunAt) - Date.now()) + 20));
    const runner = new ScheduleRunner({ store: t.store, transitions: t.transitions, clock: t.clock, logger: silentLogger });
    assert.ok((await runner.runOnce()) >= 1);
    const s = (await as(globex, { url: '/v1/schedules/every-second' })).json();
    assert.equal(s.ticks.at(-1).outcome, 'submitted');
    const jobId = s.ticks.at(-1).jobId as string;
    assert.equal((await t.store.getJob(jobId))?.tenant, 'globex');
    assert.equal((await as(globex, { url: `/v1/jobs/${jobId}` })).statusCode, 200);
    assert.equal((await as(acme, { url: `/v1/jobs/${jobId}` })).statusCode, 404);
    assert.equal((await as(globex, patch('every-second', { paused: true }))).statusCode, 200);
  });
});

for (const [backend, start] of [['MariaDB', startTestApp], ['SQLite', startSqliteTestApp]] as const) {
  describe(`a schedule stored with its next tick after the year 9999 (before such dates were refused), on ${backend}`, () => {
    let t: TestApp;
    before(async () => {
      t = await start();
    });
    after(async () => {
      await t?.close();
    });

    test('reads, lists, changes and deletes without a 500: it fires no more (nextRunAt null, no next runs); a new expression sets it right', async () => {
      const FAR = '+200000-01-01T00:00:00Z';
      const made = await t.app.inject(create({ name: 'near', cron: '0 0 1 1 *', ...job }));
      assert.equal(made.statusCode, 201, made.body);
      const near = (await t.store.getSchedule('default', 'near'))!;
      // Written straight into the store, as the API stored such a one-off before.
      assert.ok(await t.store.createSchedule({ ...near, name: 'far', cron: FAR, nextAt: Date.parse(FAR) }));
      assert.ok(await t.store.createSchedule({ ...near, name: 'far-paused', cron: FAR, paused: true, nextAt: null }));

      const listed = await t.app.inject({ url: '/v1/schedules' });
      assert.equal(listed.statusCode, 200, listed.body);
      assert.deepEqual(listed.json().schedules.map((s: Record<string, unknown>) => [s.name, s.paused, s.nextRunAt]), [
        ['far', false, null], ['far-paused', true, null], ['near', false, made.json().nextRunAt],
      ]);
      const far = await t.app.inject({ url: '/v1/schedules/far' });
      assert.equal(far.statusCode, 200, far.body);
      assert.deepEqual([far.json().cron, far.json().nextRunAt, far.json().nextRuns], [FAR, null, []]);

      const changed = await t.app.inject(patch('far', { overlap: 'allow' }));
      assert.equal(changed.statusCode, 200, changed.body);
      assert.deepEqual([changed.json().overlap, changed.json().nextRunAt], ['allow', null]);
      const resumed = await t.app.inject(patch('far-paused', { paused: false }));
      assert.equal(resumed.statusCode, 200, resumed.body);
      assert.deepEqual([resumed.json().paused, resumed.json().nextRunAt], [false, null]);
      assert.equal((await t.store.getSchedule('default', 'far-paused'))!.nextAt, null, 'the resume stored no tick after the year 9999');
      assert.equal((await t.app.inject({ url: '/v1/schedules' })).statusCode, 200);

      const fixed = await t.app.inject(patch('far', { cron: '0 0 1 1 *' }));
      assert.equal(fixed.statusCode, 200, fixed.body);
      assert.equal(fixed.json().nextRunAt, made.json().nextRunAt);
      assert.equal((await t.app.inject({ method: 'DELETE', url: '/v1/schedules/far-paused' })).statusCode, 204);
    });
  });
}
