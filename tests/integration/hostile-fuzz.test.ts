/**
 * Hostile HTTP traffic against the whole api role, on the real MariaDB and
 * Kafka, with API keys required (two tenants, keys of various scopes, one
 * revoked), over real sockets: requests generated from the server's own
 * OpenAPI document (tests/helpers/fuzz-requests.ts), then hand-written
 * nasties in the HTTP framing itself. Requests go one at a time, and for each:
 *
 * - no response is a 5xx (a response nobody asked for included);
 * - the server answers, or closes the connection, within the request timeout
 *   plus slack (the timeouts are small here: headers 1 s, body 0.5 s, request 2 s);
 * - a request answered with no 2xx writes nothing: the jobs, job_events,
 *   outbox, schedules, limits, api_keys, audit_log, workflows and workflow_events tables keep their row
 *   counts and change markers (versions, newest ids, revocations); but a
 *   workflow start that waited and answers 408 or 412 with its instance's
 *   Location has started it, as it says;
 * - no 2xx under /v1 without a working key, none on a read with a key that
 *   cannot read, none on a write with a read-only key, and none that names a
 *   job, key, schedule or workflow of the other tenant;
 * - the server keeps answering a plain request (checked every 500 requests
 *   and after each hand-written case);
 * and afterwards the heap (after a forced GC) is back within 50 MiB of its
 * baseline, and the system stops within 10 s (no connection left holds it).
 *
 * Only the api role runs: no worker, relay or timers write in the
 * background (checked before the run), so every change of the tables is a
 * request's.
 *
 * Environment: ATS_FUZZ_REQUESTS (generated requests; default 10,000, a
 * nightly run e.g. 200,000 with TEST_TIMEOUT_MS=9000000: the runner's bound
 * on the file must exceed this test's own, TEST_TIMEOUT_MS below, or the file
 * is cancelled before fast-check's report), ATS_FUZZ_SEED and
 * ATS_FUZZ_PATH to replay a failing run exactly (a failure prints both and
 * the command). fast-check shrinks a failing request before reporting it;
 * the report prints it in full (long bodies cut in the middle).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { monotonicFactory } from 'ulid';
import { setup } from 'xstate';
import type { MysqlStore } from '../../adapters/mysql/index.js';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { newApiKey, SCOPES, type Scope } from '../../engine/auth.js';
import { HandlerRegistry, registerDemoHandlers } from '../../engine/handlers.js';
import { job } from '../../machines/workflow.js';
import { silentLogger } from '../../engine/logger.js';
import type { Logger } from '../../engine/ports.js';
import {
  describeRequest, fuzzRequestArb, positiveInt, printable, rawCases, WireClient, type FuzzKey, type FuzzRequest, type FuzzWorld, type Tenant, type WireResponse,
  type WireResult,
} from '../helpers/fuzz-requests.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../helpers/kafka.js';
import { createTestDatabase, type TestDatabase } from '../helpers/mysql.js';
import { FAST } from '../helpers/system.js';

// ---------------------------------------------------------------- settings

const REQUESTS = positiveInt('ATS_FUZZ_REQUESTS', 10_000);
const SEED = process.env.ATS_FUZZ_SEED ? Number(process.env.ATS_FUZZ_SEED) : randomBytes(4).readInt32LE();
const PATH = process.env.ATS_FUZZ_PATH || undefined;
if (!Number.isInteger(SEED)) throw new Error(`ATS_FUZZ_SEED must be an integer, got ${process.env.ATS_FUZZ_SEED}`);

const TIMEOUTS = { httpHeadersTimeoutMs: 1000, httpBodyTimeoutMs: 500, httpRequestTimeoutMs: 2000 };
/** A request without an answer or a close by then hangs: the request timeout plus slack for a loaded machine. */
const HANG_MS = TIMEOUTS.httpRequestTimeoutMs + 5000;
const LIVENESS_EVERY = 500;

/**
 * Where the fuzz connects from. The server refuses an address for a minute
 * after 60 failed keys (server/auth.ts): the generated requests move to the
 * next loopback address (of 4,096) every `REQUESTS_PER_ADDRESS`, which stays
 * under that limit, so that they go on reaching the routes. The seeding and
 * the liveness checks come from 127.0.0.1, which never sends a bad key.
 */
const REQUESTS_PER_ADDRESS = 200;
const fuzzAddress = (n: number): string => {
  const i = Math.floor(n / REQUESTS_PER_ADDRESS) % 4096;
  return `127.1.${i >> 6}.${(i & 63) + 1}`;
};
const HEAP_SLACK_BYTES = 50 * 1024 * 1024;
/** A graceful stop cuts every connection left after its drain (server/connections.ts): it never waits for a client. */
const STOP_MS = 10_000;
/** The whole generated run; past it fast-check stops, and the run fails (too few requests, or a shrink cut short). */
const TEST_TIMEOUT_MS = Math.max(600_000, REQUESTS * 40);

// ---------------------------------------------------------------- the system under test

const ulid = monotonicFactory();
let system: System;
let db: TestDatabase;
let prefix: string;
let client: WireClient;
let world: FuzzWorld;
let doc: unknown;
let acmeRead: string;
let baselineHeap = 0;

/** The server's warnings and errors (a 5xx is logged with its request id). */
const serverLog: string[] = [];
const record = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
  serverLog.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  if (serverLog.length > 200) serverLog.shift();
};
const logger: Logger = { ...silentLogger, warn: record('warn'), error: record('error') };

/**
 * Errors thrown with nobody to catch them. The test awaits all its own work,
 * so these are the server's: in `ats start` each one would end the process.
 */
const uncaught: Array<{ at: number; text: string }> = [];
let uncaughtSeen = 0;
const onUncaught = (err: unknown) => uncaught.push({ at: Date.now(), text: err instanceof Error ? err.stack ?? err.message : String(err) });
process.on('uncaughtException', onUncaught);
process.on('unhandledRejection', onUncaught);

/** The requests sent lately, for a report of an uncaught error (thrown by a timer, after its request was answered). */
const recent: Array<{ at: number; text: string; body: boolean }> = [];
function remember(text: string, wire: string): void {
  const head = wire.slice(0, Math.max(0, wire.indexOf('\r\n\r\n')));
  recent.push({ at: Date.now(), text, body: /\r\n(content-length: *[1-9]|transfer-encoding:)/i.test(head) });
  if (recent.length > 500) recent.shift();
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(50);
  }
  return process.memoryUsage().heapUsed;
}

const pool = () => (system.store as MysqlStore).pool;

/**
 * What a write would change: row counts, and markers that move on an update
 * (job and schedule versions, limits' contents, revocations, newest ids).
 */
async function fingerprint(): Promise<string> {
  const [rows] = await pool().query(`SELECT
    (SELECT COUNT(*) FROM jobs) AS jobs, (SELECT COALESCE(SUM(version), 0) FROM jobs) AS jobVersions,
    (SELECT COUNT(*) FROM job_events) AS events, (SELECT COALESCE(MAX(id), 0) FROM job_events) AS lastEvent,
    (SELECT COUNT(*) FROM outbox) AS outbox, (SELECT COALESCE(MAX(id), 0) FROM outbox) AS lastOutbox,
    (SELECT COUNT(*) FROM schedules) AS schedules, (SELECT COALESCE(SUM(version), 0) FROM schedules) AS scheduleVersions,
    (SELECT COUNT(*) FROM limits) AS limits,
    (SELECT COALESCE(SUM(CRC32(CONCAT_WS(',', limit_key, concurrency, rate_max, rate_interval_ms, updated_at))), 0) FROM limits) AS limitSum,
    (SELECT COUNT(*) FROM api_keys) AS apiKeys, (SELECT COUNT(revoked_at) FROM api_keys) AS revoked,
    (SELECT COUNT(*) FROM audit_log) AS audit, (SELECT COALESCE(MAX(id), 0) FROM audit_log) AS lastAudit,
    (SELECT COUNT(*) FROM workflows) AS workflows, (SELECT COALESCE(SUM(version), 0) FROM workflows) AS workflowVersions,
    (SELECT COUNT(*) FROM workflow_events) AS workflowEvents`);
  return JSON.stringify((rows as Array<Record<string, unknown>>)[0], (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
}

async function makeKey(tenant: Tenant, scopes: readonly Scope[], name: string, revoked = false): Promise<{ id: string; key: string }> {
  const id = ulid();
  const { key, hash } = newApiKey(id, randomBytes(32));
  await system.store.createKey({ id, tenant, name, scopes: [...scopes], createdAt: Date.now(), revokedAt: revoked ? Date.now() : null, createdBy: null, hash });
  return { id, key };
}

/** A well-formed request over the client; the parsed JSON answer. */
async function call(method: string, path: string, key: string | null, body?: unknown): Promise<{ status: number; json: unknown }> {
  const text = body === undefined ? null : JSON.stringify(body);
  const head = [
    `${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${world?.port ?? port()}`, ...(key ? [`Authorization: Bearer ${key}`] : []),
    ...(text === null ? [] : ['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(text)}`]),
  ].join('\r\n');
  const res = await client.send(Buffer.from(`${head}\r\n\r\n${text ?? ''}`, 'utf8'), { clean: true });
  const first = res.responses[0];
  assert.ok(first, `${method} ${path}: no answer (${res.end})`);
  let json: unknown = null;
  try {
    json = JSON.parse(first.body.toString('utf8'));
  } catch {
    json = first.body.toString('utf8');
  }
  return { status: first.status, json };
}

const port = (): number => (system.app!.server.address() as { port: number }).port;

before(async () => {
  await requireKafka();
  db = await createTestDatabase();
  prefix = randomTopicPrefix();
  const config = compileConfig({
    ...FAST, ...TIMEOUTS, mysqlUrl: db.url, kafkaBrokers: kafkaBrokers().join(','), topicPrefix: prefix, roles: 'api', auth: 'on',
    host: '127.0.0.1', port: 0,
  }, { hostname: 'fuzz', pid: process.pid });
  // A workflow to start and signal: it runs demo.echo (no worker runs here: it stays in `echoing`), which takes GO.
  const registry = registerDemoHandlers(new HandlerRegistry()).workflow('fuzz.flow', setup({ actors: { echo: job('demo.echo') } }).createMachine({
    id: 'fuzz-flow', initial: 'echoing',
    states: { echoing: { invoke: { id: 'echo', src: 'echo', input: { n: 1 } }, on: { GO: 'going' } }, going: { on: { GO: 'echoing' } } },
  }));
  system = await compose(config, { logger, registry });
  system.app!.server.on('connection', (s: Socket) => {
    accepted.add(s);
    s.once('close', () => accepted.delete(s));
  });
  await system.start();
  client = new WireClient(port(), HANG_MS);

  // The keys the fuzz presents; the victims are keys it may revoke (never one it presents).
  const made = new Map<string, { id: string; key: string }>();
  const specs: Array<[label: string, tenant: Tenant, scopes: readonly Scope[]]> = [
    ['acme-all', 'acme', SCOPES], ['acme-submit', 'acme', ['submit']], ['acme-read', 'acme', ['read']], ['acme-operate', 'acme', ['operate']],
    ['acme-admin', 'acme', ['admin']], ['globex-all', 'globex', SCOPES], ['globex-read-submit', 'globex', ['submit', 'read']],
  ];
  for (const [label, tenant, scopes] of specs) made.set(label, await makeKey(tenant, scopes, label));
  const revoked = await makeKey('acme', SCOPES, 'revoked', true);
  const victims = { acme: [await makeKey('acme', ['read'], 'victim-1'), await makeKey('acme', SCOPES, 'victim-2')], globex: [await makeKey('globex', ['read'], 'victim-3')] };
  const keys: FuzzKey[] = [
    ...specs.map(([label, tenant, scopes]) => ({ label, tenant, scopes, working: true, header: `Bearer ${made.get(label)!.key}` })),
    { label: 'revoked', tenant: 'acme', scopes: SCOPES, working: false, header: `Bearer ${revoked.key}` },
  ];
  acmeRead = made.get('acme-read')!.key;

  // A few objects of each tenant, made through the API.
  const jobs: Record<Tenant, string[]> = { acme: [], globex: [] };
  const workflows: Record<Tenant, string[]> = { acme: [], globex: [] };
  for (const tenant of ['acme', 'globex'] as const) {
    const key = made.get(`${tenant}-all`)!.key;
    for (let i = 0; i < 3; i++) {
      const r = await call('POST', '/v1/jobs', key, { type: 'demo.echo', payload: { seed: i }, runAt: '2099-01-01T00:00:00Z' });
      assert.equal(r.status, 201, JSON.stringify(r.json));
      jobs[tenant].push((r.json as { id: string }).id);
    }
    assert.equal((await call('POST', `/v1/jobs/${jobs[tenant][0]}/cancel`, key, { reason: 'seed' })).status, 200);
    const s = await call('POST', '/v1/schedules', key, { name: `${tenant}-only.nightly`, cron: '0 3 * * *', type: 'demo.echo' });
    assert.equal(s.status, 201, JSON.stringify(s.json));
    const l = await call('PUT', `/v1/limits/${tenant}-only.mail`, key, { concurrency: 2 });
    assert.ok(l.status === 200 || l.status === 201, JSON.stringify(l.json));
    for (let i = 0; i < 2; i++) {
      const w = await call('POST', '/v1/workflows', key, { name: 'fuzz.flow', input: { seed: i } });
      assert.equal(w.status, 201, JSON.stringify(w.json));
      workflows[tenant].push((w.json as { id: string }).id);
    }
  }
  const d = await call('GET', '/docs/json', null);
  assert.equal(d.status, 200);
  doc = d.json;
  world = {
    port: port(), keys, jobs,
    keyIds: { acme: [...victims.acme.map((v) => v.id), revoked.id], globex: victims.globex.map((v) => v.id) },
    schedules: { acme: ['acme-only.nightly'], globex: ['globex-only.nightly'] }, limits: { acme: ['acme-only.mail'], globex: ['globex-only.mail'] }, workflows,
    sampleKey: acmeRead,
  };

  // Nothing but requests writes: the api role alone changes nothing while idle.
  const idle = await fingerprint();
  await sleep(1500);
  assert.equal(await fingerprint(), idle, 'the tables changed with no request: something besides the API writes');
  baselineHeap = await heapAfterGc();
});

let stopped = false;
/** Every connection the server accepted, upgraded ones too: cut after a stop that does not end, so that this file ends. */
const accepted = new Set<Socket>();

after(async () => {
  client?.close();
  const stopping = stopped ? null : system?.stop().catch(() => undefined);
  if (stopping && !(await Promise.race([stopping.then(() => true), sleep(STOP_MS).then(() => false)]))) {
    for (const s of accepted) s.destroy();
    await stopping;
  }
  await db?.drop().catch(() => undefined);
  if (prefix) await deleteTopicsWithPrefix(prefix).catch(() => undefined);
});

// ---------------------------------------------------------------- what must hold

const histogram = new Map<string, number>();
const acceptedByRoute = new Map<string, number>();
const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

function tally(res: WireResult): void {
  for (const r of res.responses) bump(histogram, String(r.status));
  if (res.responses.length === 0) bump(histogram, res.end === 'hang' ? 'hang' : res.end === 'reset' ? 'reset' : 'closed');
}

function summary(title: string, ms: number): string {
  const entries = [...histogram].sort(([a], [b]) => a.localeCompare(b));
  const fives = entries.filter(([s]) => /^5\d\d$/.test(s)).reduce((n, [, c]) => n + c, 0);
  const parts = entries.map(([s, c]) => `${s} x${c.toLocaleString('en-US')}`);
  return `fuzz: ${title}: ${parts.join(', ')}, 5xx x${fives} (${(ms / 1000).toFixed(1)} s, seed ${SEED})`;
}

const is2xx = (r: WireResponse) => r.status >= 200 && r.status < 300;

/** The path of a request target, as a router would compare it: no scheme or authority, no query, single slashes, lower case. */
function pathOf(target: string): string {
  return target.replace(/^[a-z]+:\/\/[^/]*/i, '').split(/[?#]/)[0]!.replace(/\/+/g, '/').toLowerCase();
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const has = (k: FuzzKey, s: string) => k.scopes.includes(s);

/** Why these responses to this request break a rule of access; null when none. */
function accessViolation(req: FuzzRequest, responses: readonly WireResponse[]): string | null {
  if (!responses.some(is2xx)) return null;
  const path = pathOf(req.target);
  if (!(path === '/v1' || path.startsWith('/v1/'))) return null;
  const k = req.key;
  if (!k.working) return `a 2xx under /v1 with no working key (${k.label})`;
  if ((req.method === 'GET' || req.method === 'HEAD') && !has(k, 'read') && !has(k, 'admin')) return `a 2xx on a read with a key that cannot read (${k.label})`;
  if (WRITES.has(req.method) && k.scopes.length === 1 && has(k, 'read')) return `a 2xx on a write with a read-only key (${k.label})`;
  const crossTenant = req.pathOwners.length > 0 && !req.pathOwners.includes(k.tenant as Tenant);
  if (crossTenant && /^\S+ \/v1\/(jobs|keys|schedules|workflows)\/\{/.test(req.op)) return `a 2xx naming an object of ${req.pathOwners.join(', ')} with a key of ${k.tenant}`;
  return null;
}

function diff(a: string, b: string): string {
  const x = JSON.parse(a) as Record<string, unknown>;
  const y = JSON.parse(b) as Record<string, unknown>;
  return Object.keys(x).filter((k) => x[k] !== y[k]).map((k) => `${k} ${x[k]} -> ${y[k]}`).join(', ');
}

function responsesText(res: WireResult): string {
  const lines = res.responses.map((r) => `  ${r.status} ${JSON.stringify(Object.fromEntries(r.headers))} ${printable(r.body.subarray(0, 600))}`);
  return `${res.end} after ${res.ms} ms, ${res.responses.length} response(s)${lines.length ? `:\n${lines.join('\n')}` : ''}`;
}

/** The server's log lines about these responses' request ids (a 5xx is logged with its id). */
function logOf(responses: readonly WireResponse[]): string {
  const ids = responses.map((r) => r.headers.get('x-request-id')).filter((id): id is string => !!id);
  const lines = serverLog.filter((l) => ids.some((id) => l.includes(`"reqId":"${id}"`)));
  return lines.length ? `\nserver log:\n  ${lines.join('\n  ')}` : '';
}

/**
 * Whether the request was a start that waited and did not see its condition
 * met (408 ATS_ERR_WAIT_TIMEOUT, 412 ATS_ERR_WAIT_UNMET, with the Location of
 * the instance): that answer is no 2xx, yet the start was made, as it says.
 */
function startedThenWaited(req: FuzzRequest, responses: readonly WireResponse[]): boolean {
  if (req.op !== 'POST /v1/workflows') return false;
  return responses.some((r) => {
    if ((r.status !== 408 && r.status !== 412) || !/^workflows\/[0-9A-Z]{26}$/.test(r.headers.get('location') ?? '')) return false;
    try {
      return ['ATS_ERR_WAIT_TIMEOUT', 'ATS_ERR_WAIT_UNMET'].includes((JSON.parse(r.body.toString('utf8')) as { code?: string }).code ?? '');
    } catch {
      return false;
    }
  });
}

/** Throws when the exchange breaks a rule; `before`/`after` are the fingerprints around it. */
function check(what: string, res: WireResult, before: string, after: string, opts: { mayWrite?: boolean; access?: string | null } = {}): void {
  const problems: string[] = [];
  if (res.end === 'hang') {
    // On a kept-alive connection the request before may have left it stuck: name it too.
    const previous = recent.length > 1 ? recent[recent.length - 2]!.text : '(none)';
    problems.push(`no answer and no close within ${HANG_MS} ms\nthe request before it: ${previous}`);
  }
  const fives = res.responses.filter((r) => r.status >= 500);
  if (fives.length) problems.push(`${fives.length} response(s) with status >= 500`);
  if (!res.responses.some(is2xx) && !opts.mayWrite && before !== after) problems.push(`rows written though no response was a 2xx (a rejected request wrote, or a request ran and its answer was dropped): ${diff(before, after)}`);
  if (opts.access) problems.push(opts.access);
  if (uncaught.length > uncaughtSeen) {
    const first = uncaught[uncaughtSeen]!;
    uncaughtSeen = uncaught.length;
    // A timer's error comes after its request was answered. The timers are the body's: name the requests with a
    // body sent between a body timeout (and some slack) and the request timeout before the error.
    const from = first.at - TIMEOUTS.httpRequestTimeoutMs - 1000;
    const to = first.at - TIMEOUTS.httpBodyTimeoutMs + 100;
    const suspects = recent.filter((r) => r.body && r.at >= from && r.at <= to).map((r) => `  ${first.at - r.at} ms before: ${r.text}`);
    problems.push(`the process threw an uncaught error (in \`ats start\` it would have exited): ${first.text}\n` +
      `the requests with a body sent 0.4 to ${(first.at - from) / 1000} s before it:\n${suspects.join('\n') || '  (none)'}`);
  }
  if (problems.length) throw new Error(`${problems.join('; ')}\nrequest: ${what}\nanswer: ${responsesText(res)}${logOf(res.responses)}`);
}

/** A plain request still gets a plain answer. */
async function liveness(after: string): Promise<void> {
  const r = await call('GET', '/v1/jobs?limit=1', acmeRead);
  assert.equal(r.status, 200, `the server stopped answering a plain GET /v1/jobs after ${after}: ${r.status} ${JSON.stringify(r.json)}`);
}

function strayCheck(): void {
  const bad = client.strays.filter((r) => r.status >= 500 || r.status === 0);
  assert.equal(bad.length, 0, `responses nobody asked for: ${bad.map((r) => `${r.status} ${printable(r.body.subarray(0, 300))}`).join('; ')}`);
}

// ---------------------------------------------------------------- the runs

test(`${REQUESTS.toLocaleString('en-US')} requests generated from the OpenAPI document: no 5xx, no hang, no write when rejected`, { timeout: TEST_TIMEOUT_MS }, async () => {
  const arb = fuzzRequestArb(doc, world);
  const started = Date.now();
  let sent = 0;
  let before: string | null = null;
  const property = fc.asyncProperty(arb, async (req) => {
    before ??= await fingerprint();
    const prev = before;
    before = null; // read again if this run throws
    remember(describeRequest(req), req.wire.toString('latin1'));
    const res = await client.send(req.wire, { clean: req.clean, head: req.method === 'HEAD', from: fuzzAddress(sent) });
    tally(res);
    for (const r of res.responses) if (is2xx(r)) bump(acceptedByRoute, req.op);
    const now = await fingerprint();
    check(describeRequest(req), res, prev, now, { access: accessViolation(req, res.responses), mayWrite: startedThenWaited(req, res.responses) });
    before = now;
    if (++sent % LIVENESS_EVERY === 0) {
      await liveness(describeRequest(req));
      strayCheck();
    }
  });
  const details = await fc.check(property, {
    numRuns: REQUESTS, seed: SEED, ...(PATH ? { path: PATH } : {}),
    interruptAfterTimeLimit: TEST_TIMEOUT_MS - 60_000, markInterruptAsFailure: true,
  });
  const ms = Date.now() - started;
  if (!details.failed) {
    // The last requests' timers have had their time.
    await sleep(TIMEOUTS.httpRequestTimeoutMs);
    check('(the timers of the last requests)', { responses: [], end: 'closed', ms: 0 }, '', '');
  }
  console.log(summary(`${sent.toLocaleString('en-US')} requests`, ms));
  console.log(`fuzz: 2xx by route: ${[...acceptedByRoute].sort(([a], [b]) => a.localeCompare(b)).map(([op, n]) => `${op} x${n}`).join(', ')}`);
  if (details.failed) {
    const failing = details.counterexample?.[0];
    const replay = `ATS_FUZZ_SEED=${details.seed} ATS_FUZZ_PATH=${details.counterexamplePath ?? ''} bash scripts/test.sh tests/integration/hostile-fuzz.test.ts`;
    const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    assert.fail([
      `The hostile fuzz failed after ${details.numRuns} requests (${details.numShrinks} shrinks). Replay it with:`, `  ${replay}`, '',
      failing ? `The smallest failing request: ${describeRequest(failing)}` : 'Interrupted: the run took longer than its time limit.', '', error,
    ].join('\n'));
  }
  strayCheck();
});

test('hand-written nasties in the HTTP framing: no 5xx, no hang, no write when rejected', { timeout: 300_000 }, async () => {
  histogram.clear();
  const started = Date.now();
  const all = world.keys.find((k) => k.label === 'acme-all')!.header!;
  const submit = world.keys.find((k) => k.label === 'acme-submit')!.header!;
  const cases = rawCases(world.port, all, submit);
  for (const c of cases) {
    const before = await fingerprint();
    const steps = c.steps.map((s) => ('write' in s ? printable(Buffer.from(s.write, 'latin1')) : JSON.stringify(s))).join(' then ');
    remember(`${c.name}: ${steps}`, c.steps.map((x) => ('write' in x ? x.write : '')).join(''));
    const res = await client.run(c.steps, `127.2.0.${1 + (cases.indexOf(c) % 250)}`);
    tally(res);
    const now = await fingerprint();
    check(`${c.name}: ${steps}`, res, before, now, { mayWrite: c.mayWrite });
    await liveness(c.name);
  }
  // The last case's timers have had their time: the body timeout is shorter than this wait.
  await sleep(TIMEOUTS.httpRequestTimeoutMs);
  check('(the timers of the last cases)', { responses: [], end: 'closed', ms: 0 }, '', '');
  console.log(summary(`${cases.length} hand-written cases`, Date.now() - started));
  strayCheck();
});

test('the heap is back near its baseline after the fuzz', async () => {
  client.close();
  await sleep(500);
  const heap = await heapAfterGc();
  const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  console.log(`fuzz: heap after GC: ${mib(baselineHeap)} before, ${mib(heap)} after`);
  assert.ok(heap <= baselineHeap + HEAP_SLACK_BYTES, `the heap grew from ${mib(baselineHeap)} to ${mib(heap)} (more than ${mib(HEAP_SLACK_BYTES)})`);
});

test('after the fuzz the server still stops: no connection it was left holding keeps it open', async () => {
  const started = Date.now();
  const stopping = system.stop();
  stopped = true;
  const done = await Promise.race([stopping.then(() => true), sleep(STOP_MS).then(() => false)]);
  if (!done) {
    // Cut what holds it, so that the stop ends and this file with it; the test fails all the same.
    for (const s of accepted) s.destroy();
    await stopping;
  }
  assert.ok(done, `the system did not stop within ${STOP_MS} ms (a connection the fuzz left, such as an upgraded socket, holds the HTTP server open)`);
  console.log(`fuzz: stopped in ${Date.now() - started} ms`);
});
