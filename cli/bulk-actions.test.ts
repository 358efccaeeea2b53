/**
 * `ats cancel` and `ats redrive` on many jobs, against a real scheduler
 * (composed in this process, SQLite) and the CLI as child processes, as
 * `ats delete` is tested: many ids with a mix of outcomes (a line each, in
 * order, the others still tried, exit 1 unless all went through), one id
 * printing what it always did, the filter form (`--state` with `--type` and
 * `--queue`) acting on exactly the jobs it lists, a job changed between its
 * page and its turn counted as skipped, a walk that neither repeats a job
 * that re-enters the filter nor follows jobs submitted during it,
 * `--dry-run` sending nothing but reads, and the usage errors (nothing sent).
 * A proxy in front of the scheduler sees every request the CLI sends, and
 * changes jobs (through the scheduler itself) after a page of the list was
 * read and before the CLI gets it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createClient, type AtsClient } from '../client/index.js';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { runAts, startCliServer, type CliRun } from '../tests/helpers/cli.js';
import { closeLocal, listenLocal } from '../tests/helpers/local-server.js';

let server: Awaited<ReturnType<typeof startCliServer>> | undefined;
let url = '';
let client: AtsClient;

const ats = (args: string[], extraEnv: Record<string, string> = {}): Promise<CliRun> => runAts(url, args, extraEnv);

before(async () => {
  server = await startCliServer(registerDemoHandlers(new HandlerRegistry()));
  ({ url, client } = server);
});

after(() => server?.stop());

const later = () => new Date(Date.now() + 86_400_000).toISOString();
/** A job that waits a day: live (pending), of `type` in `queue`. */
const liveJob = async (queue = 'default', type = 'demo.echo') => (await client.submit({ type, queue, payload: null, runAt: later() })).id;
/** A job that has ended (cancelled). */
const endedJob = async (queue = 'default', type = 'demo.echo') => {
  const id = await liveJob(queue, type);
  await client.cancel(id);
  return id;
};
/** Resolves once every one of `ids` is in `state`. */
async function until(ids: readonly string[], state: string): Promise<void> {
  const end = Date.now() + 60_000;
  for (;;) {
    const states = await Promise.all(ids.map(async (id) => (await client.get(id)).state));
    if (states.every((s) => s === state)) return;
    assert.ok(Date.now() < end, `not all ${state}: ${states.join(' ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
/** A job that has failed its one attempt: dead (it fails again each time it is redriven). */
const deadJobs = async (queue: string, n: number) => {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await client.submit({ type: 'demo.fail', queue, payload: { always: true }, maxAttempts: 1 })).id);
  await until(ids, 'dead');
  return ids;
};
const stateOf = async (id: string) => (await client.get(id)).state;
const lines = (text: string) => text.trimEnd().split('\n').filter((l) => l !== '');
/** ids newest first, as the list gives them (ULIDs sort by time; one process draws them in order). */
const newestFirst = (ids: readonly string[]) => [...ids].sort().reverse();
const UNKNOWN = '01J00000000000000000000000';

interface HookProxy {
  url: string;
  /** Every request that came, in order, as `METHOD /path?query`. */
  seen: string[];
  close(): Promise<void>;
}

/** An answer a proxy gives itself. */
interface ProxyAnswer { status: number; headers?: Record<string, string>; body: string }
/** A request as a proxy hook sees it: `n` counts the requests from 0. */
interface ProxiedRequest { method: string; url: string; n: number }

/**
 * A proxy in front of the scheduler: sends each request on (method, path, body, its content type and key), and
 * answers what the scheduler answered. `before` may answer a request itself, without sending it on; `after`,
 * given the scheduler's answer (held until it settles), may answer something else.
 */
async function startProxy(hooks: {
  before?: (req: ProxiedRequest) => ProxyAnswer | null;
  after?: (req: ProxiedRequest, answer: { status: number; body: string }) => Promise<ProxyAnswer | null> | ProxyAnswer | null;
}): Promise<HookProxy> {
  const seen: string[] = [];
  const proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void (async () => {
      const seenAs: ProxiedRequest = { method: req.method!, url: req.url!, n: seen.length };
      seen.push(`${req.method} ${req.url}`);
      const early = hooks.before?.(seenAs);
      if (early) {
        res.writeHead(early.status, { 'content-type': 'application/json', ...early.headers }).end(early.body);
        return;
      }
      const headers: Record<string, string> = {};
      for (const h of ['content-type', 'authorization']) {
        const v = req.headers[h];
        if (typeof v === 'string') headers[h] = v;
      }
      const answer = await fetch(url + req.url, { method: req.method, headers, ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}) });
      const body = await answer.text();
      const changed = await hooks.after?.(seenAs, { status: answer.status, body });
      if (changed) res.writeHead(changed.status, { 'content-type': 'application/json', ...changed.headers }).end(changed.body);
      else res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' }).end(body);
    })().catch((e: unknown) => res.writeHead(502, { 'content-type': 'text/plain' }).end(String(e))));
  });
  const at = await listenLocal(proxy);
  return { url: at, seen, close: () => closeLocal(proxy) };
}

/**
 * `startProxy` whose answer to `GET /v1/jobs?...` is held until `onList` (given the jobs listed and the page's
 * number, from 0) has run.
 */
async function startHookProxy(onList: (jobs: Array<{ id: string }>, page: number) => Promise<void> = async () => {}): Promise<HookProxy> {
  let pages = 0;
  return startProxy({
    after: async ({ method, url: path }, { status, body }) => {
      if (method === 'GET' && path.startsWith('/v1/jobs?') && status === 200) await onList((JSON.parse(body) as { jobs: Array<{ id: string }> }).jobs, pages++);
      return null;
    },
  });
}

describe('ats cancel and ats redrive with many ids', { timeout: 360_000 }, () => {
  test('cancel: each tried in turn, a line each in order, an id given twice once, a count on stderr, exit 1 unless all were cancelled', async () => {
    const [a, ended, b] = [await liveJob(), await endedJob(), await liveJob()];
    const r = await ats(['cancel', a, UNKNOWN, ended, b, a, '--reason', 'bulk']);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(lines(r.stdout), [`${a} cancelled`, `${UNKNOWN} not found`, `${ended} ended (refused)`, `${b} cancelled`]);
    const errors = lines(r.stderr);
    assert.deepEqual(errors.map((l) => l.split(':')[0]), ['ATS_ERR_JOB_NOT_FOUND', 'ATS_ERR_TRANSITION_NOT_ALLOWED', 'ats'], r.stderr);
    assert.match(errors[1]!, /^ATS_ERR_TRANSITION_NOT_ALLOWED: CANCEL is not allowed in state cancelled/);
    assert.equal(errors.at(-1), 'ats: 2 of 4 jobs cancelled, 2 not');
    for (const id of [a, b]) assert.equal((await client.get(id)).cancelReason, 'bulk');
    // All cancelled: exit 0, nothing on stderr.
    const [c, d] = [await liveJob(), await liveJob()];
    const all = await ats(['cancel', c, d]);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(lines(all.stdout), [`${c} cancelled`, `${d} cancelled`]);
    assert.equal(all.stderr, '');
  });

  test('redrive --json: one object per id, in order: the job when redriven, else {id, redriven: false, status, code, message}', async () => {
    const [a, live, b] = [await endedJob(), await liveJob(), await endedJob()];
    const r = await ats(['redrive', a, live, UNKNOWN, b, '--json']);
    assert.equal(r.code, 1, r.stderr);
    const objects = lines(r.stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(objects.length, 4);
    assert.deepEqual([objects[0]!.id, objects[0]!.type, objects[0]!.queue], [a, 'demo.echo', 'default'], 'the job as the API answers it');
    assert.notEqual(objects[0]!.state, 'cancelled');
    assert.deepEqual({ ...objects[1], message: undefined }, { id: live, redriven: false, status: 409, code: 'ATS_ERR_TRANSITION_NOT_ALLOWED', message: undefined });
    assert.match(String(objects[1]!.message), /^REDRIVE is not allowed in state pending/);
    assert.deepEqual(objects[2], { id: UNKNOWN, redriven: false, status: 404, code: 'ATS_ERR_JOB_NOT_FOUND', message: `No job has id ${UNKNOWN}` });
    assert.equal(objects[3]!.id, b);
    assert.equal(lines(r.stderr).at(-1), 'ats: 2 of 4 jobs redriven, 2 not');
    assert.notEqual(await stateOf(a), 'cancelled');
    assert.equal(await stateOf(live), 'pending');
    // The lines without --json.
    const c = await endedJob();
    const text = await ats(['redrive', c, live]);
    assert.equal(text.code, 1, text.stderr);
    assert.deepEqual(lines(text.stdout), [`${c} pending`, `${live} not dead or cancelled (refused)`]);
  });

  test('one id prints what it always did: "ID STATE" (or the job\'s JSON), a refusal only on stderr', async () => {
    const id = await liveJob();
    const cancelled = await ats(['cancel', id, id]);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal(cancelled.stdout, `${id} cancelled\n`);
    assert.equal(cancelled.stderr, '');
    const again = await ats(['cancel', id]);
    assert.equal(again.code, 1);
    assert.equal(again.stdout, '');
    assert.match(again.stderr, /^ATS_ERR_TRANSITION_NOT_ALLOWED: CANCEL is not allowed in state cancelled[^\n]*\n$/);
    const json = await ats(['redrive', id, '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(lines(json.stdout).length, 1);
    const job = JSON.parse(json.stdout) as { id: string; state: string; type: string };
    assert.deepEqual([job.id, job.type], [id, 'demo.echo']);
    assert.notEqual(job.state, 'cancelled');
  });

  test('an id that is no job id, among good ones: exit 2 with the usage, nothing sent', async () => {
    const id = await liveJob();
    for (const args of [['cancel', id, 'abc'], ['redrive', id, id.toLowerCase()], ['cancel', `${id}\u001b[2J`]]) {
      const r = await ats(args);
      assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, new RegExp(`is not a job id[^]*^usage: ats ${args[0]} ID \\[ID\\.\\.\\.\\]`, 'm'));
      assert.doesNotMatch(r.stderr, /\u001b/, 'a control character is escaped');
    }
    assert.equal(await stateOf(id), 'pending', 'not cancelled');
  });
});

describe('ats cancel and ats redrive --state (the filter form)', { timeout: 360_000 }, () => {
  test('acts on exactly the jobs listed with --state, --type and --queue, newest first, a line each and a count; --reason on each', async () => {
    // 36 live jobs of two types in two queues, and a few ended ones beside them.
    const jobs = new Map<string, { type: string; queue: string }>();
    for (const queue of ['ba-f1', 'ba-f2']) {
      for (const type of ['demo.echo', 'demo.sleep']) {
        for (let i = 0; i < 9; i++) jobs.set(await liveJob(queue, type), { type, queue });
      }
    }
    const ended = [await endedJob('ba-f1', 'demo.echo'), await endedJob('ba-f1', 'demo.echo'), await endedJob('ba-f2', 'demo.sleep')];
    const pick = (type: string | undefined, queue: string) => newestFirst([...jobs].filter(([, j]) => (type === undefined || j.type === type) && j.queue === queue).map(([id]) => id));

    const r = await ats(['cancel', '--state', 'pending', '--type', 'demo.echo', '--queue', 'ba-f1', '--page-size', '4', '--reason', 'sweep']);
    assert.equal(r.code, 0, r.stderr);
    const echoF1 = pick('demo.echo', 'ba-f1');
    assert.deepEqual(lines(r.stdout), echoF1.map((id) => `${id} cancelled`));
    assert.equal(r.stderr, 'ats: 9 jobs cancelled, 0 skipped\n');
    for (const [id] of jobs) assert.equal(await stateOf(id), echoF1.includes(id) ? 'cancelled' : 'pending', id);
    assert.equal((await client.get(echoF1[0]!)).cancelReason, 'sweep');

    // A queue, either type.
    const f2 = await ats(['cancel', '--state', 'pending', '--queue', 'ba-f2']);
    assert.equal(f2.code, 0, f2.stderr);
    assert.deepEqual(lines(f2.stdout), pick(undefined, 'ba-f2').map((id) => `${id} cancelled`));
    assert.equal(f2.stderr, 'ats: 18 jobs cancelled, 0 skipped\n');
    for (const id of pick('demo.sleep', 'ba-f1')) assert.equal(await stateOf(id), 'pending');

    // Redriven: the cancelled jobs of a type and queue, those cancelled before among them, --json one job a line.
    const redriven = await ats(['redrive', '--state', 'cancelled', '--type', 'demo.echo', '--queue', 'ba-f1', '--json', '--page-size', '5']);
    assert.equal(redriven.code, 0, redriven.stderr);
    const objects = lines(redriven.stdout).map((l) => JSON.parse(l) as { id: string; state: string });
    assert.deepEqual(objects.map((o) => o.id), newestFirst([...echoF1, ended[0]!, ended[1]!]));
    for (const o of objects) assert.notEqual(o.state, 'cancelled');
    assert.equal(redriven.stderr, 'ats: 11 jobs redriven, 0 skipped\n');
    assert.equal(await stateOf(ended[2]!), 'cancelled', 'another queue');
    for (const id of pick('demo.sleep', 'ba-f2')) assert.equal(await stateOf(id), 'cancelled', 'another type and queue');

    // Nothing listed: a count of none, exit 0.
    const none = await ats(['redrive', '--state', 'dead', '--queue', 'ba-f1']);
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stdout, '');
    assert.equal(none.stderr, 'ats: 0 jobs redriven, 0 skipped\n');
  });

  test('redrive --state dead: a job redriven that is dead again before the walk ends is not listed again; the walk ends', async () => {
    const dead = await deadJobs('ba-dead', 8);
    const cancelled = await endedJob('ba-dead', 'demo.fail');
    const redrives = (proxy: HookProxy) => proxy.seen.filter((s) => s.startsWith('POST ')).map((s) => s.split('/')[3]!);
    // Before each page after the first: every job redriven so far has failed again (dead, the filter's state).
    let proxy: HookProxy | undefined;
    proxy = await startHookProxy(async (_, page) => {
      if (page > 0) await until(redrives(proxy!), 'dead');
    });
    try {
      const r = await ats(['redrive', '--state', 'dead', '--queue', 'ba-dead', '--page-size', '3', '--url', proxy.url]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(r.stdout).map((l) => l.split(' ')[0]), newestFirst(dead), 'each once, newest first');
      assert.equal(lines(r.stderr).at(-1), 'ats: 8 jobs redriven, 0 skipped');
      assert.deepEqual(redrives(proxy), newestFirst(dead));
      assert.ok(proxy.seen.filter((s) => s.startsWith('GET /v1/jobs?')).length >= 3, proxy.seen.join('\n'));
    } finally {
      await proxy.close();
    }
    assert.equal(await stateOf(cancelled), 'cancelled');
  });

  test('a job changed between its page and its turn (ended, redriven or deleted) is "ID skipped (...)", counted, and the exit stays 0', async () => {
    const ids = newestFirst(await Promise.all(Array.from({ length: 10 }, () => liveJob('ba-skip'))));
    // After the first page was read: one job cancelled by another, one cancelled and deleted.
    const proxy = await startHookProxy(async (jobs, page) => {
      if (page !== 0) return;
      assert.deepEqual(jobs.map((j) => j.id), ids);
      await client.cancel(ids[2]!);
      await client.cancel(ids[5]!);
      await client.delete(ids[5]!);
    });
    try {
      const r = await ats(['cancel', '--state', 'pending', '--queue', 'ba-skip', '--url', proxy.url]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(r.stdout), ids.map((id, i) => `${id} ${i === 2 ? 'skipped (moved on)' : i === 5 ? 'skipped (not found)' : 'cancelled'}`));
      assert.deepEqual(lines(r.stderr).map((l) => l.split(':')[0]), ['ATS_ERR_TRANSITION_NOT_ALLOWED', 'ATS_ERR_JOB_NOT_FOUND', 'ats'], r.stderr);
      assert.equal(lines(r.stderr).at(-1), 'ats: 8 jobs cancelled, 2 skipped');
    } finally {
      await proxy.close();
    }
    const toRedrive = newestFirst(await Promise.all(Array.from({ length: 4 }, () => endedJob('ba-skip2'))));
    const other = await startHookProxy(async (_, page) => {
      if (page === 0) await client.redrive(toRedrive[1]!);
    });
    try {
      const r = await ats(['redrive', '--state', 'cancelled', '--queue', 'ba-skip2', '--json', '--url', other.url]);
      assert.equal(r.code, 0, r.stderr);
      const objects = lines(r.stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual(objects.map((o) => o.id), toRedrive);
      assert.deepEqual({ ...objects[1], message: undefined }, {
        id: toRedrive[1], redriven: false, skipped: true, status: 409, code: 'ATS_ERR_TRANSITION_NOT_ALLOWED', message: undefined,
      });
      assert.equal(lines(r.stderr).at(-1), 'ats: 3 jobs redriven, 1 skipped');
    } finally {
      await other.close();
    }
  });

  test('jobs submitted during the walk, matching the filter, are not acted on, and the walk ends', async () => {
    const ids = newestFirst(await Promise.all(Array.from({ length: 12 }, () => liveJob('ba-new'))));
    const arrived: string[] = [];
    // Each page read, two more pending jobs of the queue arrive before the CLI gets it.
    const proxy = await startHookProxy(async () => {
      arrived.push(await liveJob('ba-new'), await liveJob('ba-new'));
    });
    try {
      const r = await ats(['cancel', '--state', 'pending', '--queue', 'ba-new', '--page-size', '4', '--url', proxy.url]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(r.stdout), ids.map((id) => `${id} cancelled`));
      assert.equal(r.stderr, 'ats: 12 jobs cancelled, 0 skipped\n');
    } finally {
      await proxy.close();
    }
    assert.ok(arrived.length >= 6, `${arrived.length} arrived`);
    for (const id of arrived) assert.equal(await stateOf(id), 'pending', id);
  });

  test('--dry-run lists the ids it would act on, newest first, with a count, and sends no action', async () => {
    const ids = newestFirst(await Promise.all(Array.from({ length: 5 }, () => liveJob('ba-dry'))));
    const ended = newestFirst([await endedJob('ba-dry'), await endedJob('ba-dry')]);
    const proxy = await startHookProxy();
    try {
      const r = await ats(['cancel', '--state', 'pending', '--queue', 'ba-dry', '--dry-run', '--page-size', '2', '--url', proxy.url]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(r.stdout), ids);
      assert.equal(r.stderr, 'ats: 5 jobs would be cancelled (--dry-run: nothing sent)\n');
      const json = await ats(['redrive', '--state', 'cancelled', '--queue', 'ba-dry', '--dry-run', '--json', '--url', proxy.url]);
      assert.equal(json.code, 0, json.stderr);
      assert.deepEqual(lines(json.stdout).map((l) => (JSON.parse(l) as { id: string; state: string })).map((j) => [j.id, j.state]), ended.map((id) => [id, 'cancelled']));
      assert.deepEqual(proxy.seen.filter((s) => !s.startsWith('GET /v1/jobs?')), [], 'only the list was read');
    } finally {
      await proxy.close();
    }
    for (const id of ids) assert.equal(await stateOf(id), 'pending');
    for (const id of ended) assert.equal(await stateOf(id), 'cancelled');
  });

  test('wrong command lines: ids and a filter together, a filter without --state, a state the action is never taken in, none at all: exit 2, nothing sent', async () => {
    const id = await liveJob('ba-usage');
    const proxy = await startHookProxy();
    try {
      for (const [args, why] of [
        [['redrive'], /^ats: missing argument: job ids, or --state dead\|cancelled$/m],
        [['cancel'], /^ats: missing argument: job ids, or --state pending\|published\|running\|retrying$/m],
        [['redrive', '--type', 'demo.echo'], /^ats: --type needs --state \(dead, cancelled\)/m],
        [['cancel', '--queue', 'ba-usage', '--dry-run'], /^ats: --queue needs --state/m],
        [['redrive', '--state', 'pending', '--queue', 'ba-usage'], /^ats: --state: unknown value "pending" \(one of: dead, cancelled\)/m],
        [['cancel', '--state', 'dead', '--queue', 'ba-usage'], /^ats: --state: unknown value "dead"/m],
        [['cancel', '--state', 'pending,running', '--queue', 'ba-usage'], /^ats: --state needs one of/m],
        [['cancel', id, '--state', 'pending'], /^ats: job ids and --state together/m],
        [['redrive', id, '--dry-run'], /^ats: job ids and --dry-run together/m],
        [['cancel', '--state', 'pending', '--queue', 'ba-usage', '--page-size', '0'], /^ats: --page-size must be an integer from 1 to 500/m],
        [['cancel', '--state', 'pending', '--type', 'no type!'], /^ats: --type must be 1 to/m],
      ] as const) {
        const r = await ats([...args, '--url', proxy.url]);
        assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
        assert.equal(r.stdout, '', args.join(' '));
        assert.match(r.stderr, why, args.join(' '));
        assert.match(r.stderr, new RegExp(`^usage: ats ${args[0]} ID \\[ID\\.\\.\\.\\]`, 'm'), args.join(' '));
      }
      assert.deepEqual(proxy.seen, [], 'nothing sent');
    } finally {
      await proxy.close();
    }
    assert.equal(await stateOf(id), 'pending');
  });

  test('--help names both forms', async () => {
    for (const command of ['cancel', 'redrive']) {
      const r = await ats([command, '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^usage: ats ${command} ID \\[ID\\.\\.\\.\\]`, 'm'));
      assert.match(r.stdout, new RegExp(`^ {7}ats ${command} --state `, 'm'));
      assert.match(r.stdout, /--dry-run/);
    }
  });
});

describe('ats cancel with API keys', { timeout: 360_000 }, () => {
  test('a key without the operate scope: ATS_ERR_FORBIDDEN, stopped at the first job, the rest named (ids) or counted (a filter), nothing cancelled', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ats-cli-bulk-'));
    const keyed = await startCliServer(registerDemoHandlers(new HandlerRegistry()), { ATS_DATA_DIR: dataDir, ATS_AUTH: 'on' });
    try {
      const key = async (scopes: string) => {
        const made = await runAts(keyed.url, ['keys', 'create', '--scopes', scopes, '--name', scopes.replace(/,/g, '-')], { ATS_DATA_DIR: dataDir });
        assert.equal(made.code, 0, made.stderr);
        return { ATS_API_KEY: made.stdout.trim() };
      };
      const reader = await key('read');
      const operating = createClient({ url: keyed.url, apiKey: (await key('submit,operate')).ATS_API_KEY });
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await operating.submit({ type: 'demo.echo', payload: null, runAt: later() })).id);
      const byId = await runAts(keyed.url, ['cancel', ...ids], reader);
      assert.equal(byId.code, 1);
      assert.equal(byId.stdout, '');
      assert.deepEqual(lines(byId.stderr), [
        'ATS_ERR_FORBIDDEN: This route needs the operate scope; the key has read',
        `ats: stopped at ${ids[0]}; not tried: ${ids[1]} ${ids[2]}`,
      ]);
      const byFilter = await runAts(keyed.url, ['cancel', '--state', 'pending'], reader);
      assert.equal(byFilter.code, 1);
      assert.equal(byFilter.stdout, '');
      assert.deepEqual(lines(byFilter.stderr), [
        'ATS_ERR_FORBIDDEN: This route needs the operate scope; the key has read',
        `ats: stopped at ${newestFirst(ids)[0]}; 0 jobs cancelled, 0 skipped by then, the rest not tried`,
      ]);
      const reading = createClient({ url: keyed.url, apiKey: reader.ATS_API_KEY });
      for (const id of ids) assert.equal((await reading.get(id)).state, 'pending', 'not cancelled');
    } finally {
      await keyed.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the filter form and the server it talks to', { timeout: 360_000 }, () => {
  const limited = { status: 429, headers: { 'retry-after': '1' }, body: JSON.stringify({ code: 'ATS_ERR_RATE_LIMITED', message: 'Too many requests' }) };

  test('a 429 of a list read or of an action (refused before anything was done) is waited out, its Retry-After, and the same request sent again: every job acted on once, exit 0', async () => {
    const ids = newestFirst(await Promise.all(Array.from({ length: 5 }, () => endedJob('ba-429'))));
    let firstAction = -1;
    const proxy = await startProxy({
      before: ({ method, url: path, n }) => {
        if (method === 'POST' && firstAction < 0) firstAction = n;
        // The first redrive, and the second page's read, are refused once each.
        if (method === 'POST' && n === firstAction) return limited;
        if (method === 'GET' && path.includes('cursor=') && !proxy.seen.slice(0, n).some((l) => l.startsWith('GET') && l.includes('cursor='))) return limited;
        return null;
      },
    });
    try {
      const r = await ats(['redrive', '--state', 'cancelled', '--queue', 'ba-429', '--page-size', '2', '--url', proxy.url]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(r.stdout), ids.map((id) => `${id} pending`));
      const waits = lines(r.stderr).filter((l) => l.startsWith('ats: ATS_ERR_RATE_LIMITED'));
      assert.equal(waits.length, 2, r.stderr);
      for (const w of waits) assert.match(w, /waiting 1 s$/);
      const redrives = proxy.seen.filter((l) => l.startsWith('POST'));
      assert.equal(redrives.length, ids.length + 1, 'each job once, the refused one twice');
      for (const id of ids) assert.equal((await client.get(id)).events.filter((e) => e.type === 'REDRIVE').length, 1, 'redriven once');
    } finally {
      await proxy.close();
    }
  });

  test('a list whose job id is no ULID (terminal sequences in it) is no answer of the API\'s: stopped before that job, the id not printed raw', async () => {
    const ids = newestFirst(await Promise.all(Array.from({ length: 2 }, () => liveJob('ba-bad-id'))));
    const bad = 'ZZZ\u001b]0;pwned\u0007\u001b[2J';
    const proxy = await startProxy({
      after: ({ method }, { body }) => {
        if (method !== 'GET') return null;
        const page = JSON.parse(body) as { jobs: Array<{ id: string }> };
        if (page.jobs.length > 1) page.jobs[1]!.id = bad;
        return { status: 200, body: JSON.stringify(page) };
      },
    });
    try {
      for (const dry of [true, false]) {
        const r = await ats(['cancel', '--state', 'pending', '--queue', 'ba-bad-id', ...(dry ? ['--dry-run'] : []), '--url', proxy.url]);
        assert.equal(r.code, 1, r.stderr);
        assert.equal(lines(r.stdout)[0], dry ? ids[0] : `${ids[0]} cancelled`);
        assert.equal(lines(r.stdout).length, 1);
        assert.ok(!(r.stdout + r.stderr).includes('\u001b'), 'no terminal sequence printed');
        assert.match(r.stderr, /not a ULID \(not an ats server\?\)/);
      }
      assert.equal((await client.get(ids[1]!)).state, 'pending', 'the job after it is not touched');
    } finally {
      await proxy.close();
    }
  });
});
