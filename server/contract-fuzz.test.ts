/**
 * The API held to its own OpenAPI document. For every operation of
 * `/docs/json` (read from the app), fast-check generates requests from the
 * operation's own schemas: path parameters (ids and names that exist, of the
 * caller's tenant and of another, unknown ones, broken ones), query strings
 * and JSON bodies valid per the schema and at its bounds, and then broken:
 * a wrong type, a required field left out, an extra field, a number at and
 * past its bounds, huge, empty, unicode and prototype-named strings, a body
 * that is no JSON or not of the documented media type. Each goes with
 * `app.inject` to a SQLite test app with API keys (auto mode: keys required),
 * with a key of the scope the operation needs (or of every scope, or of
 * another tenant), a key without it, a key that is no key, or none. For each
 * answer:
 *
 * 1. its status is one the operation documents (`responses`), and no 5xx
 *    (the database is up: no 500, no 503);
 * 2. its body validates against the schema documented for that status
 *    (Ajv, `$ref`s resolved to components.schemas); a status documented
 *    without content answers no body;
 * 3. an error's body is `{code, message}` with a code of the one registry
 *    (engine/errors.ts) whose status is the answer's;
 * 4. what the document's security says: no working key is a 401, a key
 *    without the route's scope a 403;
 * 5. a request the document calls invalid (a body, path parameter or query
 *    value that does not validate against its schema) is not answered 2xx;
 * 6. a request answered with no 2xx (or a batch whose every item was
 *    refused) committed no row to any table: temporary triggers on every
 *    table log each row written (but a workflow start that waited and
 *    answers 408 or 412 has started its instance, as it says).
 *
 * The operations run one after the other on one app and database, seeded
 * once with jobs, schedules, limits, workflow instances and keys of two
 * tenants, and topped up before each operation (`topUp`: what the earlier
 * operations' requests cancelled, deleted or ended); a request that needs an
 * object in a given state has it made just before (`makeFresh`).
 * Streaming routes are not in the document; waits (`GET
 * /v1/workflows/{id}/wait`, a start with `wait`) always send a `timeoutMs` of
 * at most WAIT_MAX_MS.
 *
 * Environment: ATS_CONTRACT_FUZZ_RUNS (generated requests per operation;
 * default 250, about 20 s for the whole file; e.g. 5000 nightly with
 * TEST_TIMEOUT_MS=3600000). A failure prints the seed, the path and the
 * command that replays it: ATS_CONTRACT_FUZZ_SEED, ATS_CONTRACT_FUZZ_PATH
 * and ATS_CONTRACT_FUZZ_OP (the operation, `POST /v1/jobs`: only its test
 * runs). The replayed request meets a freshly seeded database, not the one
 * the earlier runs of the property wrote to; the report prints the request
 * and the answer in full.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { Ajv, type ValidateFunction } from 'ajv';
import formats from 'ajv-formats';
import fc from 'fast-check';
import { assign, setup } from 'xstate';
import type { SqliteStore } from '../adapters/sqlite/index.js';
import { SCOPES, type Scope } from '../engine/auth.js';
import { ERRORS } from '../engine/errors.js';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { job } from '../machines/workflow.js';
import { ROUTE_SCOPES, PUBLIC } from './auth.js';
import { MAX_NAME_CHARS } from './schemas.js';
import { startSqliteTestApp, type TestApp } from '../tests/helpers/app.js';
import { operationsOf as documentOperations, positiveInt, type Operation as DocumentOperation, type Parameter } from '../tests/helpers/fuzz-requests.js';
import { makeKey, type MadeKey } from '../tests/helpers/keys.js';
import { gate, instant } from '../tests/helpers/workflow-machines.js';

// ---------------------------------------------------------------- settings

const RUNS = positiveInt('ATS_CONTRACT_FUZZ_RUNS', 250);
const SEED = process.env.ATS_CONTRACT_FUZZ_SEED ? Number(process.env.ATS_CONTRACT_FUZZ_SEED) : randomBytes(4).readInt32LE();
if (!Number.isInteger(SEED)) throw new Error(`ATS_CONTRACT_FUZZ_SEED must be an integer, got ${process.env.ATS_CONTRACT_FUZZ_SEED}`);
const PATH = process.env.ATS_CONTRACT_FUZZ_PATH || undefined;
const ONLY_OP = process.env.ATS_CONTRACT_FUZZ_OP || undefined;
const FILE = 'server/contract-fuzz.test.ts';

/** The longest wait a generated request asks for (`timeoutMs` of a wait). */
const WAIT_MAX_MS = 30;

// ---------------------------------------------------------------- the app

const HOUR = 3_600_000;

/** Echoes its amount (a job), then waits for APPROVE. */
const approval = setup({
  types: { context: {} as { amount: number }, input: {} as { amount?: unknown } | null },
  actors: { echo: job<unknown, { amount: number }>('demo.echo') },
}).createMachine({
  id: 'approval',
  context: ({ input }) => {
    if (typeof input?.amount !== 'number') throw new Error('amount must be a number');
    return { amount: input.amount };
  },
  initial: 'echoing',
  states: {
    echoing: { invoke: { id: 'echo', src: 'echo', input: ({ context }) => ({ amount: context.amount }), onDone: 'waiting' }, on: { SKIP: 'waiting' } },
    waiting: { tags: ['approval'], on: { APPROVE: 'approved' }, after: { [HOUR]: 'expired' } },
    approved: { type: 'final' },
    expired: { type: 'final' },
  },
});
/** Counts each ADD, for ever. */
const counter = setup({ types: { context: {} as { count: number } } }).createMachine({
  id: 'counter', context: { count: 0 }, initial: 'counting',
  states: { counting: { on: { ADD: { actions: assign({ count: ({ context }) => context.count + 1 }) } } } },
});

const JOB_TYPES = ['demo.echo', 'demo.sleep', 'demo.fail'];
const WORKFLOW_NAMES = ['approval', 'gate', 'instant', 'counter'];
const SIGNALS = ['ASK', 'APPROVE', 'FINISH', 'ADD', 'SKIP'];

const startApp = (): Promise<TestApp> => {
  const workflows = registerDemoHandlers(new HandlerRegistry())
    .workflow('approval', approval).workflow('gate', gate).workflow('instant', instant).workflow('counter', counter);
  return startSqliteTestApp(
    // No request rate limit: every request reaches its route (a 429 is documented, and tells nothing here).
    { knownTypes: () => JOB_TYPES, security: { rateLimitPerMinute: 0 } },
    { auth: 'auto', workflows },
  );
};

// ---------------------------------------------------------------- the document

type Schema = Record<string, unknown>;
interface Document {
  components: { schemas: Record<string, Schema> };
}

interface Operation extends DocumentOperation {
  /** `POST /v1/jobs/{id}/cancel` */
  name: string;
  /** The scope a key needs; null: public. */
  scope: Scope | null;
}

const COMPONENT = '#/components/schemas/';

const probe = await startApp();
const doc = (await probe.app.inject({ url: '/docs/json' })).json() as Document;
await probe.close();

/** The document's operations (tests/helpers/fuzz-requests.ts), each with its name and the scope ROUTE_SCOPES gives it. */
const OPERATIONS: Operation[] = documentOperations(doc).map((op) => {
  const route = `${op.method} ${op.path.replace(/\{([^}]+)\}/g, ':$1')}`;
  const access = ROUTE_SCOPES.get(route);
  if (op.security.length > 0 && (access === undefined || access === PUBLIC)) throw new Error(`${route} is secured in the document, but ROUTE_SCOPES says ${access}`);
  return { ...op, name: `${op.method} ${op.path}`, scope: op.security.length === 0 ? null : (access as Scope) };
});
const components = doc.components.schemas;

const resolve = (schema: Schema): Schema => {
  let s = schema;
  for (let i = 0; i < 10 && typeof s.$ref === 'string'; i++) s = components[(s.$ref as string).slice(COMPONENT.length)] ?? {};
  return s;
};

// ---------------------------------------------------------------- Ajv: answers and requests against the document

const DOC_ID = 'ats-openapi';
/**
 * A schema for this file's Ajv: `$ref`s to components point into the document
 * (added under DOC_ID), and `discriminator` goes (Ajv's takes no `mapping`;
 * the `oneOf` beside it says the same).
 */
const rebase = <T>(schema: T): T => JSON.parse(
  JSON.stringify(schema).replaceAll(`"${COMPONENT}`, `"${DOC_ID}${COMPONENT}`),
  (k, v: unknown) => (k === 'discriminator' ? undefined : v),
) as T;

function ajvOf(): Ajv {
  const ajv = new Ajv({ strict: false, allErrors: true, schemas: [{ $id: DOC_ID, components: rebase(doc.components) }] });
  formats.default(ajv);
  return ajv;
}
const ajv = ajvOf();
const compiled = new Map<string, ValidateFunction>();
const validatorOf = (schema: Schema): ValidateFunction => {
  const key = JSON.stringify(schema);
  let v = compiled.get(key);
  if (!v) {
    v = ajv.compile(rebase(schema));
    compiled.set(key, v);
  }
  return v;
};
const errorsOf = (v: ValidateFunction): string => ajv.errorsText(v.errors, { separator: '; ' }).slice(0, 800);

/** A query, path or header value as the server's text Ajv coerces it (a digit string to a number, `true` to a boolean). */
function coerced(text: string, schema: Schema): unknown {
  const s = resolve(schema);
  const types = new Set<string>();
  const collect = (x: Schema) => {
    const r = resolve(x);
    if (typeof r.type === 'string') types.add(r.type);
    for (const alt of ((r.anyOf ?? r.oneOf ?? []) as Schema[])) collect(alt);
  };
  collect(s);
  if (types.has('string')) return text;
  if ((types.has('integer') || types.has('number')) && text !== '' && Number(text) == (text as unknown as number)) return Number(text);
  if (types.has('boolean') && (text === 'true' || text === 'false')) return text === 'true';
  return text;
}

/** Whether the value the server would validate passes the documented schema. */
const documentedValid = (schema: Schema, value: unknown): boolean => {
  const v = validatorOf(schema);
  const ok = v(value) as boolean;
  // A number coerced from text that is not finite is refused (server/validation.ts finiteNumbers).
  return ok && !(typeof value === 'number' && !Number.isFinite(value));
};

// ---------------------------------------------------------------- the world a run aims at

interface Pools {
  jobs: string[];
  schedules: string[];
  limits: string[];
  workflows: string[];
  keys: string[];
  cursors: string[];
  workflowCursors: string[];
}

interface World {
  t: TestApp;
  /** Keys by label: `all` (every scope), one per scope, `lacking:<scope>` (every scope but it), `globex` (another tenant, every scope). */
  keys: Map<string, MadeKey>;
  pools: Pools;
  /** Rows committed to the tables: `since(mark())` after a request names what it wrote (empty: nothing). */
  writes: { mark(): number; since(mark: number): string };
  close(): Promise<void>;
}

async function seedWorld(): Promise<World> {
  const t = await startApp();
  const keys = new Map<string, MadeKey>();
  keys.set('all', await makeKey(t.store, 'default', SCOPES, 'all'));
  for (const s of SCOPES) {
    keys.set(s, await makeKey(t.store, 'default', [s], s));
    keys.set(`lacking:${s}`, await makeKey(t.store, 'default', SCOPES.filter((x) => x !== s), `lacking-${s}`));
  }
  keys.set('globex', await makeKey(t.store, 'globex', SCOPES, 'globex'));
  const pools: Pools = { jobs: [], schedules: [], limits: [], workflows: [], keys: [], cursors: [], workflowCursors: [] };
  const db = (t.store as unknown as SqliteStore).db;
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name);
  // Every row an INSERT, UPDATE or DELETE commits on a table is logged by a
  // temporary trigger (on this connection: the app's), in a temporary table
  // that a rollback empties with the rest: what a request committed, cheaply.
  db.exec('CREATE TEMP TABLE contract_fuzz_writes (tbl TEXT NOT NULL, op TEXT NOT NULL)');
  for (const name of tables.filter((n) => !n.startsWith('sqlite_'))) {
    for (const op of ['INSERT', 'UPDATE', 'DELETE']) {
      db.exec(`CREATE TEMP TRIGGER "contract_fuzz_${name}_${op}" AFTER ${op} ON main."${name}" BEGIN INSERT INTO contract_fuzz_writes VALUES ('${name}', '${op}'); END`);
    }
  }
  const last = db.prepare('SELECT coalesce(max(rowid), 0) FROM contract_fuzz_writes').pluck();
  const since = db.prepare('SELECT tbl, op, count(*) AS n FROM contract_fuzz_writes WHERE rowid > ? GROUP BY tbl, op ORDER BY tbl, op');
  const writes = {
    mark: () => last.get() as number,
    since: (mark: number) => (since.all(mark) as Array<{ tbl: string; op: string; n: number }>).map((r) => `${r.tbl} ${r.op} x${r.n}`).join(', '),
  };
  const world: World = { t, keys, pools, writes, close: () => t.close() };
  for (const prefix of ['/v1/jobs', '/v1/schedules', '/v1/limits', '/v1/workflows', '/v1/keys']) await topUp(world, prefix);
  const page = (await seedCall(world, 'all', 'GET', '/v1/jobs?limit=1')).json() as { nextCursor: string | null };
  if (page.nextCursor) pools.cursors.push(page.nextCursor);
  const wfPage = (await seedCall(world, 'all', 'GET', '/v1/workflows?limit=1')).json() as { nextCursor: string | null };
  if (wfPage.nextCursor) pools.workflowCursors.push(wfPage.nextCursor);
  return world;
}

async function seedCall(world: World, key: string, method: InjectOptions['method'], url: string, payload?: unknown): Promise<LightMyRequestResponse> {
  const r = await world.t.app.inject({ method, url, headers: world.keys.get(key)!.headers, ...(payload === undefined ? {} : { payload: payload as object }) });
  assert.ok(r.statusCode < 300, `seeding: ${method} ${url}: ${r.statusCode} ${r.body}`);
  return r;
}

/**
 * Objects for the operations under `prefix` to aim at, of both tenants (the
 * earlier operations' requests deleted, cancelled or ended some): pending and
 * cancelled jobs, schedules, limits, workflow instances active and ended, and
 * keys to revoke (never the keys the requests present).
 */
async function topUp(world: World, prefix: string): Promise<void> {
  const { pools } = world;
  const call = (key: string, method: InjectOptions['method'], url: string, payload?: unknown) => seedCall(world, key, method, url, payload);
  for (const key of ['all', 'globex']) {
    const tenant = key === 'all' ? '' : 'globex-';
    if (prefix === '/v1/jobs') {
      const made: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await call(key, 'POST', '/v1/jobs', { type: JOB_TYPES[i % 3], payload: { i }, runAt: '2099-01-01T00:00:00Z', queue: i === 2 ? 'q2' : 'default' });
        made.push(r.json().id);
      }
      // Cancelled: what a redrive and a delete take.
      for (const id of made.slice(1)) await call(key, 'POST', `/v1/jobs/${id}/cancel`, { reason: 'seed' });
      // Running, done (with an odd result) and dead (with an odd error), as a worker would leave them.
      const ends = [
        null,
        { type: 'SUCCEEDED', attempt: 1, result: { '😀': ['\u202e', null, 1e308], '': { '__proto__': 1 } } },
        { type: 'FAILED', attempt: 1, rand: 0.5, error: { message: `nope ${'é'.repeat(300)}`, name: 'Ërror\u0000', retryable: false } },
      ] as const;
      for (const end of ends) {
        const r = await call(key, 'POST', '/v1/jobs', { type: 'demo.echo', payload: 'x', priority: 1000, timeoutMs: 86_400_000, maxAttempts: 1 });
        const id = r.json().id as string;
        assert.ok((await world.t.transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + HOUR, workerId: 'w😀' })).ok);
        if (end) assert.ok((await world.t.transitions.apply(id, end as never)).ok, JSON.stringify(end));
        made.push(id);
      }
      pools.jobs.push(...made);
    }
    if (prefix === '/v1/schedules') {
      for (const [name, body] of [
        [`${tenant}nightly`, { cron: '0 3 * * *', type: 'demo.echo', payload: { s: 1 } }],
        [`${tenant}hourly`, { cron: '0 * * * *', type: 'demo.sleep', timezone: 'Europe/Berlin', paused: true, overlap: 'allow', catchUp: 'all' }],
      ] as const) {
        if (!pools.schedules.includes(name)) pools.schedules.push(name);
        const k = world.keys.get(key)!;
        if ((await world.t.app.inject({ url: `/v1/schedules/${name}`, headers: k.headers })).statusCode === 404) await call(key, 'POST', '/v1/schedules', { name, ...body });
      }
    }
    if (prefix === '/v1/limits') {
      for (const [name, body] of [[`${tenant}email`, { concurrency: 2, rate: { max: 10, intervalMs: 1000 } }], [`${tenant}sms`, { concurrency: 1, rate: null }]] as const) {
        if (!pools.limits.includes(name)) pools.limits.push(name);
        await call(key, 'PUT', `/v1/limits/${name}`, body);
      }
    }
    if (prefix === '/v1/workflows') {
      for (const [wf, input] of [['counter', undefined], ['gate', undefined], ['instant', undefined], ['approval', { amount: 5 }]] as const) {
        const r = await call(key, 'POST', '/v1/workflows', { name: wf, ...(input ? { input } : {}) });
        pools.workflows.push(r.json().id);
      }
    }
    if (prefix === '/v1/keys') {
      const k = await call(key, 'POST', '/v1/keys', { name: 'spare', scopes: ['read'] });
      pools.keys.push(k.json().id);
    }
  }
}

// ---------------------------------------------------------------- values from a schema

const PROTO_NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'];
const UNICODE = ['é', '漢字', '😀', '\u202e', '\u200b', '\ufeff', 'İ', 'e\u0301', '\ud800', 'Ａ', '\u0000', '\n'];
const ODD_STRINGS = [
  '', ' ', ' a', 'a ', 'a b', '../etc/passwd', '..', '.', '...', 'a/b', 'a%2Fb', "' OR '1'='1", '<script>', '${7*7}', 'null', 'NaN', '-1', '1e309', 'true',
  ...PROTO_NAMES, ...UNICODE, ...UNICODE.map((u) => `a${u}b`),
];

/** Where a schema alone rarely makes a value the server takes. */
function hint(property: string | undefined, op: Operation, world: World): fc.Arbitrary<unknown> | null {
  switch (property) {
    case 'type':
      if (op.path === '/v1/workflows/{id}/events') return fc.constantFrom(...SIGNALS, 'NOPE');
      return fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...JOB_TYPES) }, { weight: 1, arbitrary: fc.constantFrom('demo.unknown', '__proto__') });
    case 'name':
      if (op.path === '/v1/workflows') return fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...WORKFLOW_NAMES) }, { weight: 1, arbitrary: fc.constantFrom('nope', '__proto__') });
      return null;
    case 'cron':
      return fc.oneof(
        { weight: 5, arbitrary: fc.constantFrom('* * * * *', '0 3 * * *', '*/5 * * * *', '0 0 1 1 *', '0 0 * * * *', '0 0 12 * * ? 2030', '0 0 29 2 *') },
        { weight: 1, arbitrary: fc.constantFrom('61 * * * *', '*/0 * * * *', 'bad', '0 0 30 2 *', '0 0 31 4 *', '* * * * * * *', '0 0 0 1 1 ? 1999', '9'.repeat(200)) },
      );
    case 'timezone':
      return fc.oneof(
        { weight: 5, arbitrary: fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Pacific/Chatham', 'Etc/GMT+12') },
        { weight: 1, arbitrary: fc.constantFrom('Mars/Olympus_Mons', '../../etc/localtime', 'UTC\u0000', 'utc', '+01:00', 'GMT+1') },
      );
    case 'cursor':
      return world.pools.cursors.length + world.pools.workflowCursors.length > 0
        ? fc.constantFrom(...(op.path === '/v1/workflows' ? world.pools.workflowCursors : world.pools.cursors), 'AAAA')
        : null;
    case 'until':
    case 'wait':
      return fc.constantFrom('done', 'tag:approval', 'tag:paid', 'tag:nope');
    case 'input':
      return fc.oneof(fc.constant({ amount: 5 }), fc.constant({ amount: 'x' }), fc.jsonValue({ maxDepth: 2 }));
    default:
      return null;
  }
}

const DATE_EDGES = [
  '1970-01-01T00:00:00Z', '1970-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59Z', '2000-02-29T12:00:00+14:00', '2030-01-01T00:00:00-12:00',
  '0000-01-01T00:00:00Z', '1969-12-31T23:59:59.999Z', '2016-12-31T23:59:60Z', '9999-12-31T23:59:59.999-23:59', '0001-01-01T00:00:00+23:59', '2030-01-01t00:00:00z',
  '2030-01-01T00:00:00.123456789Z', '2030-01-01 00:00:00Z',
];
const BAD_DATES = ['tomorrow', '2030-01-01', '2030-01-01T00:00:00', '2030-02-30T00:00:00Z', '2030-13-01T00:00:00Z', '2030-01-01T24:00:00Z', '+275760-09-13T00:00:00Z', '-000001-01-01T00:00:00Z', ''];

/** A JSON value valid per `schema` (the subset the document uses), its bounds often. */
function validValue(schema: Schema, op: Operation, world: World, property?: string, depth = 0): fc.Arbitrary<unknown> {
  const s = resolve(schema);
  const h = hint(property, op, world);
  if (h && !s.anyOf && !s.oneOf && (s.type === 'string' || s.type === undefined)) return h;
  const alts = (s.anyOf ?? s.oneOf) as Schema[] | undefined;
  if (alts) return fc.oneof(...alts.map((a) => validValue(a, op, world, property, depth)));
  if (Array.isArray(s.enum)) return fc.constantFrom(...(s.enum as unknown[]));
  switch (s.type) {
    case 'object': {
      const props = (s.properties ?? {}) as Record<string, Schema>;
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [name, p] of Object.entries(props)) model[name] = validValue(p, op, world, name, depth + 1);
      const min = (s.minProperties as number | undefined) ?? 0;
      const record = fc.record(model, { requiredKeys: (s.required ?? []) as string[] });
      return (min > 0 ? record.filter((o) => Object.keys(o).length >= min) : record) as fc.Arbitrary<unknown>;
    }
    case 'array': {
      const minLength = (s.minItems as number | undefined) ?? 0;
      const maxLength = Math.max(minLength, Math.min((s.maxItems as number | undefined) ?? 4, 4));
      return fc.array(validValue((s.items ?? {}) as Schema, op, world, undefined, depth + 1), { minLength, maxLength });
    }
    case 'string': {
      const min = (s.minLength as number | undefined) ?? 0;
      const max = (s.maxLength as number | undefined) ?? 64;
      if (s.format === 'date-time') {
        return fc.oneof(
          fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }).map((d) => d.toISOString()),
          fc.constantFrom(...DATE_EDGES),
        );
      }
      if (typeof s.pattern === 'string') {
        const re = new RegExp(s.pattern);
        const fits = (x: string) => x.length >= min && x.length <= max && re.test(x);
        const edges = [...PROTO_NAMES, 'a'.repeat(min), 'a'.repeat(max), 'Z'.repeat(max), '...', '-', '_', ':', '~', 'a.b', 'A-Z_0:9'].filter(fits);
        const generated = fc.stringMatching(re, { maxLength: Math.min(max, 40) }).filter(fits);
        return edges.length ? fc.oneof({ weight: 3, arbitrary: generated }, { weight: 1, arbitrary: fc.constantFrom(...edges) }) : generated;
      }
      return fc.oneof(
        { weight: 4, arbitrary: fc.string({ minLength: min, maxLength: Math.max(min, Math.min(max, 40)), unit: 'grapheme' }).filter((x) => x.length <= max) },
        { weight: 1, arbitrary: fc.constantFrom('x'.repeat(Math.max(min, max)), '😀'.repeat(Math.max(1, Math.floor(max / 2))), ...PROTO_NAMES.filter((x) => x.length >= min && x.length <= max)) },
      );
    }
    case 'integer': {
      const min = (s.minimum as number | undefined) ?? -(2 ** 31);
      const max = (s.maximum as number | undefined) ?? 2 ** 31;
      const edges = [min, max, min + 1, max - 1, 0, 1].filter((n) => n >= min && n <= max);
      return fc.oneof(fc.constantFrom(...edges), fc.integer({ min: Math.max(min, Number.MIN_SAFE_INTEGER), max: Math.min(max, Number.MAX_SAFE_INTEGER) }));
    }
    case 'number':
      return fc.double({ noNaN: true, noDefaultInfinity: true, min: (s.minimum as number | undefined) ?? -1e9, max: (s.maximum as number | undefined) ?? 1e9 });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    default:
      // No type: any JSON (a job's payload), now and then deep, wide or with odd keys.
      return depth > 2 ? fc.jsonValue({ maxDepth: 1 }) : fc.oneof(
        { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
        { weight: 1, arbitrary: fc.constantFrom<unknown>({ '': 1, '\u0000': 2, 'é': [null] }, JSON.parse('{"__proto__":{"polluted":1}}'), { constructor: { prototype: {} } }, 'x'.repeat(70_000), 1e308, -0, [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]) },
      );
  }
}

/** Values `schema` should refuse (some may pass: each request is checked against the document, not against what was meant). */
function invalidValue(schema: Schema): fc.Arbitrary<unknown> {
  const s = resolve(schema);
  const wrongTypes: unknown[] = [null, true, 0, -1, 1.5, 'x', '', [], {}, [1], { a: 1 }];
  const own: unknown[] = [];
  if (Array.isArray(s.enum)) own.push(...(s.enum as unknown[]).map((e) => (typeof e === 'string' ? e.toUpperCase() : e)), 'nope', '', ...PROTO_NAMES);
  switch (s.type) {
    case 'string': {
      const min = (s.minLength as number | undefined) ?? 0;
      const max = (s.maxLength as number | undefined) ?? 64;
      own.push(...ODD_STRINGS, 'a'.repeat(max + 1), 'é'.repeat(max + 1), '😀'.repeat(max), 'x'.repeat(10_000), 42, ['a']);
      if (min > 0) own.push('');
      if (s.format === 'date-time') own.push(...BAD_DATES, ...DATE_EDGES, Date.now());
      break;
    }
    case 'integer':
    case 'number': {
      const min = s.minimum as number | undefined;
      const max = s.maximum as number | undefined;
      own.push('5', '1e3', 0.5, -0, 1e308, -1e308, 2 ** 53, 2 ** 53 + 2, -(2 ** 63), 2 ** 64);
      if (min !== undefined) own.push(min - 1, min - 0.5, min - 1e-9);
      if (max !== undefined) own.push(max + 1, max + 0.5, max * 10 + 1);
      break;
    }
    case 'object':
      own.push([], 'x', 1, null, { [PROTO_NAMES[1]!]: 1 });
      break;
    case 'array':
      own.push({}, 'a', [], Array.from({ length: ((s.maxItems as number | undefined) ?? 4) + 1 }, () => null), [null], [[]]);
      break;
    default:
  }
  if (s.anyOf || s.oneOf) own.push('tomorrow', -1, 1e16, 1.5, 'x', {}, [], true);
  return fc.constantFrom(...own, ...wrongTypes);
}

// ---------------------------------------------------------------- bodies

/** Every way to break `value` (valid per `schema`) at one place, as whole new roots. */
function breakings(schema: Schema, value: unknown, put: (v: unknown) => unknown, depth = 0): Array<fc.Arbitrary<unknown>> {
  const s = resolve(schema);
  const out: Array<fc.Arbitrary<unknown>> = [invalidValue(s).map(put)];
  if (depth > 4) return out;
  if (s.type === 'object' && value && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const [k, v] of Object.entries(obj)) {
      if (props[k]) out.push(...breakings(props[k], v, (nv) => put({ ...obj, [k]: nv }), depth + 1));
    }
    for (const k of (s.required ?? []) as string[]) {
      if (k in obj) out.push(fc.constant(put(Object.fromEntries(Object.entries(obj).filter(([x]) => x !== k)))));
    }
    for (const k of Object.keys(props)) if (!(k in obj)) out.push(invalidValue(props[k]!).map((bad) => put({ ...obj, [k]: bad })));
    // An extra field: unknown, prototype-named, or one of another schema's.
    out.push(fc.tuple(fc.constantFrom('extra', 'tenant', 'id', 'state', 'kind', ...PROTO_NAMES, 'a'.repeat(300), '😀'), fc.jsonValue({ maxDepth: 1 }))
      .map(([k, v]) => put({ ...obj, [k]: v })));
  }
  if (s.type === 'array' && Array.isArray(value) && value.length > 0) {
    out.push(...breakings((s.items ?? {}) as Schema, value[0], (nv) => put([nv, ...value.slice(1)]), depth + 1));
  }
  const alts = (s.anyOf ?? s.oneOf) as Schema[] | undefined;
  if (alts) {
    for (const alt of alts) if (documentedValid(alt, value)) out.push(...breakings(alt, value, put, depth + 1).slice(1));
  }
  return out;
}

interface Body {
  kind: string;
  /** The payload as sent (a string: the bytes of the JSON, or of whatever else); undefined: none. */
  text: string | undefined;
  contentType: string | undefined;
  /** The JSON value sent, when the body is JSON. */
  value?: unknown;
}

const jsonBody = (kind: string, value: unknown): Body => ({ kind, text: JSON.stringify(value), contentType: 'application/json', value });

function bodyArb(op: Operation, world: World): fc.Arbitrary<Body> {
  if (op.body === null) {
    // A route without a body (a DELETE): most go without, some send one anyway.
    return fc.oneof(
      { weight: 10, arbitrary: fc.constant<Body>({ kind: 'none', text: undefined, contentType: undefined }) },
      { weight: 1, arbitrary: fc.constantFrom<Body>(jsonBody('unexpected', {}), jsonBody('unexpected', { reason: 'x' }), { kind: 'unexpected-text', text: 'x', contentType: 'text/plain' }) },
    );
  }
  const schema = op.body;
  const valid = validValue(schema, op, world);
  return fc.oneof(
    { weight: 8, arbitrary: valid.map((v) => jsonBody('valid', v)) },
    { weight: 8, arbitrary: valid.chain((v) => fc.oneof(...breakings(schema, v, (x) => x)).map((b) => jsonBody('broken', b))) },
    {
      weight: 2,
      arbitrary: fc.constantFrom<Body>(
        { kind: 'malformed', text: '{"type":', contentType: 'application/json' },
        { kind: 'malformed', text: '{"a":1}x', contentType: 'application/json' },
        { kind: 'malformed', text: '', contentType: 'application/json' },
        { kind: 'malformed', text: '{"a":1e400}', contentType: 'application/json' },
        // A byte order mark JSON parsers may ignore (RFC 8259, 8.1): the server does.
        { kind: 'bom', text: '\ufeff{}', contentType: 'application/json', value: {} },
        { kind: 'malformed', text: '{"a":"\\ud800"}', contentType: 'application/json' },
        { kind: 'malformed', text: `${'['.repeat(5000)}${']'.repeat(5000)}`, contentType: 'application/json' },
        { kind: 'media', text: '{}', contentType: 'text/plain' },
        { kind: 'media', text: 'a=1', contentType: 'application/x-www-form-urlencoded' },
        // JSON with a parameter is still JSON (fastify takes it; `{}` reads the same in any charset).
        { kind: 'charset', text: '{}', contentType: 'application/json; charset=latin1', value: {} },
        jsonBody('root', null), jsonBody('root', []), jsonBody('root', 'x'), jsonBody('root', 1),
      ),
    },
    { weight: 1, arbitrary: fc.constant<Body>({ kind: 'none', text: undefined, contentType: undefined }) },
    // Over the body limit (1 MiB in the test app).
    { weight: 1, arbitrary: valid.map((v) => ({ kind: 'over-limit', text: JSON.stringify({ pad: 'x'.repeat(1024 * 1024), v }), contentType: 'application/json' })) },
  );
}

// ---------------------------------------------------------------- path, query, headers, key

interface PathValue {
  text: string;
  raw: boolean;
  /**
   * Made just before the request (`fresh` of server state `variant`): earlier
   * requests cancel, delete and end what the pools hold, and a route that
   * changes state needs something in the state it takes.
   */
  fresh?: number;
}

/**
 * Makes a new object for an operation under `prefix` and returns its id or
 * name: a job pending, cancelled or done; a workflow instance of each
 * definition; a schedule, a limit, a key (`variant` picks which).
 */
async function makeFresh(world: World, prefix: string, variant: number): Promise<string> {
  const n = ++freshCount;
  const call = (method: InjectOptions['method'], url: string, payload?: unknown) => seedCall(world, 'all', method, url, payload);
  switch (prefix) {
    case '/v1/jobs': {
      const id = (await call('POST', '/v1/jobs', { type: 'demo.echo', payload: { n }, ...(variant % 3 === 2 ? {} : { runAt: '2099-01-01T00:00:00Z' }) })).json().id as string;
      if (variant % 3 === 1) await call('POST', `/v1/jobs/${id}/cancel`, {});
      if (variant % 3 === 2) {
        assert.ok((await world.t.transitions.apply(id, { type: 'STARTED', attempt: 1, leaseUntil: Date.now() + HOUR, workerId: 'w' })).ok);
        assert.ok((await world.t.transitions.apply(id, { type: 'SUCCEEDED', attempt: 1, result: { n } })).ok);
      }
      return id;
    }
    case '/v1/workflows': {
      const name = WORKFLOW_NAMES[variant % WORKFLOW_NAMES.length]!;
      return (await call('POST', '/v1/workflows', { name, ...(name === 'approval' ? { input: { amount: n } } : {}) })).json().id as string;
    }
    case '/v1/schedules':
      await call('POST', '/v1/schedules', { name: `fresh-${n}`, cron: '*/5 * * * *', type: 'demo.echo', paused: variant % 2 === 0 });
      return `fresh-${n}`;
    case '/v1/limits':
      await call('PUT', `/v1/limits/fresh-${n}`, variant % 2 === 0 ? { concurrency: 3 } : { rate: { max: 1, intervalMs: 1000 } });
      return `fresh-${n}`;
    case '/v1/keys':
      return (await call('POST', '/v1/keys', { name: `fresh-${n}`, scopes: ['read'] })).json().id as string;
    default:
      throw new Error(`nothing to make under ${prefix}`);
  }
}
let freshCount = 0;

const FRESH_PREFIXES = ['/v1/jobs', '/v1/workflows', '/v1/schedules', '/v1/limits', '/v1/keys'];
const prefixOf = (op: Operation): string => /^\/v1\/[a-z]+/.exec(op.path)?.[0] ?? '';

/** The request with its fresh path values made (as sent, and as the report shows it). */
async function materialize(world: World, req: Request): Promise<Request> {
  if (!req.path.some((v) => v.fresh !== undefined)) return req;
  const path: PathValue[] = [];
  for (const v of req.path) path.push(v.fresh === undefined ? v : { ...v, text: await makeFresh(world, prefixOf(req.op), v.fresh) });
  return { ...req, path };
}

function poolOf(op: Operation, world: World): string[] {
  const p = op.path;
  if (p.startsWith('/v1/jobs')) return world.pools.jobs;
  if (p.startsWith('/v1/keys')) return world.pools.keys;
  if (p.startsWith('/v1/schedules')) return world.pools.schedules;
  if (p.startsWith('/v1/limits')) return world.pools.limits;
  if (p.startsWith('/v1/workflows')) return world.pools.workflows;
  return [];
}

/**
 * A path parameter's value. Never `.` or `..` (nor `%2e%2e`): inject's URL
 * parsing resolves them, and the request goes to another path.
 */
function pathValueArb(param: Parameter, op: Operation, world: World): fc.Arbitrary<PathValue> {
  return anyPathValueArb(param, op, world).filter((v) => !['.', '..'].includes(decodedPath(v) ?? ''));
}

function anyPathValueArb(param: Parameter, op: Operation, world: World): fc.Arbitrary<PathValue> {
  const pool = poolOf(op, world);
  const plain = (a: fc.Arbitrary<unknown>) => a.map((v) => ({ text: wellFormed(String(v)), raw: false }));
  const ulid = (param.schema.pattern as string | undefined)?.startsWith('^[0-7]');
  return fc.oneof(
    ...(pool.length ? [{ weight: 6, arbitrary: plain(fc.constantFrom(...pool)) }] : []),
    ...(FRESH_PREFIXES.includes(prefixOf(op)) ? [{ weight: 4, arbitrary: fc.nat(11).map((fresh): PathValue => ({ text: 'fresh', raw: false, fresh })) }] : []),
    { weight: 3, arbitrary: plain(ulid ? fc.ulid() : validValue(param.schema, op, world)) },
    { weight: 2, arbitrary: plain(invalidValue(param.schema).filter((v) => typeof v === 'string' && v !== '')) },
    {
      weight: 2,
      arbitrary: fc.constantFrom<PathValue>(
        ...['%2F', 'a%2Fb', '%2e%2e%2f', '%00', '%', '%zz', '%E0%A4%A', '%C0%AF', '%FF', '%ED%A0%80', '%20', '+', 'a;b', '01arz3ndektsv4rrffq69g5fav',
          '81ARZ3NDEKTSV4RRFFQ69G5FAV', '01ARZ3NDEKTSV4RRFFQ69G5FA', '01ARZ3NDEKTSV4RRFFQ69G5FAVX', 'ZZZZZZZZZZZZZZZZZZZZZZZZZZ', '%F0%9F%98%80', 'a'.repeat(101), 'a'.repeat(201),
          'A'.repeat(10_000)].map((text) => ({ text, raw: true })),
      ),
    },
  );
}

/** The value the route sees for a path value as sent; undefined: not decodable (the server refuses it). */
function decodedPath(v: PathValue): string | undefined {
  if (!v.raw) return v.text;
  try {
    return decodeURIComponent(v.text);
  } catch {
    return undefined;
  }
}

interface QueryPair { name: string; text: string }

/** A wait's `timeoutMs`: short, or refused. */
const waitTimeoutArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: WAIT_MAX_MS }).map(String) },
  { weight: 1, arbitrary: fc.constantFrom('-1', '120001', 'abc', '1.5', '', '9'.repeat(30), '1e400', '0x10', '[]') },
);

function queryValueArb(param: Parameter, op: Operation, world: World): fc.Arbitrary<string> {
  const value: fc.Arbitrary<string> = fc.oneof(
    { weight: 5, arbitrary: validValue(param.schema, op, world, param.name).map((v) => String(v)) },
    { weight: 2, arbitrary: invalidValue(param.schema).map((v) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v))) },
    { weight: 1, arbitrary: fc.constantFrom('', ' 5', '1e3', '0x10', '-0', '+1', '9'.repeat(400), 'true', '%', '\u0000', '😀', 'x'.repeat(5000)) },
  );
  return value.map(wellFormed);
}

function queryArb(op: Operation, world: World): fc.Arbitrary<QueryPair[]> {
  const timeout = op.queryParams.find((p) => p.name === 'timeoutMs');
  const others = op.queryParams.filter((p) => p !== timeout);
  const timeoutPair = waitTimeoutArb.map((text) => [{ name: 'timeoutMs', text }]);
  return fc.tuple(
    fc.subarray(others).chain((picked) => {
      const pairs = picked.length
        ? fc.tuple(...picked.map((p) => queryValueArb(p, op, world).map((text) => ({ name: p.name, text }))))
        : fc.constant([] as QueryPair[]);
      if (!timeout) return pairs;
      // A wait (`until`, or `wait` given) always sends a short timeoutMs: its default (30 s) would hold the run.
      const waits = op.queryParams.some((p) => p.name === 'until') || picked.some((p) => p.name === 'wait');
      return fc.tuple(pairs, waits ? timeoutPair : fc.oneof({ weight: 4, arbitrary: fc.constant([] as QueryPair[]) }, { weight: 1, arbitrary: timeoutPair }))
        .map(([a, b]) => [...a, ...b]);
    }),
    fc.oneof(
      { weight: 10, arbitrary: fc.constant([] as QueryPair[]) },
      { weight: 1, arbitrary: fc.constantFrom('extra', '__proto__', 'tenant', 'constructor').map((name) => [{ name, text: '1' }]) },
      // A parameter twice (a list where the schema says one value).
      ...(others.length ? [{ weight: 1, arbitrary: fc.constantFrom(...others).chain((p) => queryValueArb(p, op, world).map((text) => [{ name: p.name, text }, { name: p.name, text }])) }] : []),
    ),
  ).map(([a, c]) => [...a, ...c]);
}

function headerArb(op: Operation): fc.Arbitrary<Record<string, string>> {
  if (!op.headerParams.some((p) => p.name === 'idempotency-key')) return fc.constant({});
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant({}) },
    { weight: 3, arbitrary: fc.constantFrom('k1', 'k2', '__proto__', 'ats-contract').map((k) => ({ 'idempotency-key': k })) },
    { weight: 1, arbitrary: fc.stringMatching(/^[\x21-\x7e]{1,255}$/).map((k) => ({ 'idempotency-key': k })) },
    { weight: 1, arbitrary: fc.constantFrom('a'.repeat(256), ' lead', 'trail ', 'a\tb', 'ats:schedule:x', '\x7f').map((k) => ({ 'idempotency-key': k })) },
  );
}

/** Which key a request presents. */
type KeyChoice = 'scoped' | 'all' | 'globex' | 'lacking' | 'none' | 'bad';

const keyArb = (op: Operation): fc.Arbitrary<KeyChoice> => op.scope === null
  ? fc.constantFrom<KeyChoice>('none', 'all')
  : fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom<KeyChoice>('scoped', 'all') },
    { weight: 1, arbitrary: fc.constantFrom<KeyChoice>('globex', 'lacking', 'none', 'bad') },
  );

const BAD_KEYS = ['Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', `Bearer ats_01ARZ3NDEKTSV4RRFFQ69G5FAV_${'A'.repeat(43)}`, 'Bearer __proto__', `Bearer ${'A'.repeat(8000)}`];

// ---------------------------------------------------------------- the request

interface Request {
  op: Operation;
  key: KeyChoice;
  badKey: number;
  path: PathValue[];
  query: QueryPair[];
  headers: Record<string, string>;
  body: Body;
}

const requestArb = (op: Operation, world: World): fc.Arbitrary<Request> => fc.record({
  key: keyArb(op),
  badKey: fc.nat(BAD_KEYS.length - 1),
  path: op.pathParams.length ? fc.tuple(...op.pathParams.map((p) => pathValueArb(p, op, world))) : fc.constant([] as PathValue[]),
  query: queryArb(op, world),
  headers: headerArb(op),
  body: bodyArb(op, world),
}).map((r) => ({ op, ...r }));

const encodeQuery = (pairs: QueryPair[]): string => pairs.map((p) => `${encodeURIComponent(p.name)}=${encodeURIComponent(p.text)}`).join('&');

/** Text that has a UTF-8 form (a lone surrogate becomes U+FFFD, as on the wire): what a URL can carry. */
const wellFormed = (text: string): string => Buffer.from(text, 'utf8').toString('utf8');

function urlOf(req: Request): string {
  let i = 0;
  const path = req.op.path.replace(/\{[^}]+\}/g, () => {
    const v = req.path[i++]!;
    return v.raw ? v.text : encodeURIComponent(v.text);
  });
  const q = encodeQuery(req.query);
  return q ? `${path}?${q}` : path;
}

let addressCounter = 0;

function injectOptions(req: Request, world: World): InjectOptions {
  const headers: Record<string, string> = { ...req.headers };
  const scopedLabel = req.op.scope ?? 'all';
  switch (req.key) {
    case 'scoped': headers.authorization = world.keys.get(scopedLabel)!.headers.authorization; break;
    case 'all': headers.authorization = world.keys.get('all')!.headers.authorization; break;
    case 'globex': headers.authorization = world.keys.get('globex')!.headers.authorization; break;
    case 'lacking': headers.authorization = world.keys.get(`lacking:${scopedLabel}`)!.headers.authorization; break;
    case 'bad': headers.authorization = BAD_KEYS[req.badKey]!; break;
    default:
  }
  if (req.body.contentType !== undefined) headers['content-type'] = req.body.contentType;
  return {
    method: req.op.method as InjectOptions['method'],
    url: urlOf(req),
    headers,
    ...(req.body.text === undefined ? {} : { payload: req.body.text }),
    // A key that is no key counts against its address (60 a minute, then 429): each such request comes from an address of its own.
    ...(req.key === 'bad' ? { remoteAddress: `10.${(addressCounter >> 16) & 255}.${(addressCounter >> 8) & 255}.${addressCounter++ & 255}` } : {}),
  };
}

const cut = (s: string, n = 600): string => (s.length > n ? `${s.slice(0, n / 2)}…(${s.length} chars)…${s.slice(-n / 4)}` : s);

function describeRequest(req: Request): string {
  const fresh = req.path.filter((v) => v.fresh !== undefined).map((v) => `${v.text} made just before (variant ${v.fresh} of makeFresh)`);
  const auth = req.key === 'bad' ? `bad key ${JSON.stringify(cut(BAD_KEYS[req.badKey]!, 80))}` : `key ${req.key}${req.op.scope ? ` (route needs ${req.op.scope})` : ''}`;
  const headers = Object.keys(req.headers).length ? ` headers ${JSON.stringify(req.headers)}` : '';
  const body = req.body.text === undefined ? 'no body' : `${req.body.contentType} body (${req.body.kind}) ${JSON.stringify(cut(req.body.text))}`;
  return `${req.op.method} ${cut(urlOf(req), 300)} with ${auth}${headers}, ${body}${fresh.length ? `; ${fresh.join(', ')}` : ''}`;
}

// ---------------------------------------------------------------- the checks

/** Why the request is invalid per the document; null when it is valid as far as the document says. */
function documentedInvalid(req: Request): string | null {
  const { op } = req;
  for (const [i, p] of op.pathParams.entries()) {
    const text = decodedPath(req.path[i]!);
    if (text === undefined) return `path ${p.name} is not decodable`;
    const value = coerced(text, p.schema);
    if (!documentedValid(p.schema, value)) return `path ${p.name}: ${errorsOf(validatorOf(p.schema))}`;
  }
  const seen = new Map<string, number>();
  for (const q of req.query) seen.set(q.name, (seen.get(q.name) ?? 0) + 1);
  for (const q of req.query) {
    const p = op.queryParams.find((x) => x.name === q.name);
    if (!p) continue; // not declared: the document does not say (the server refuses it)
    if (seen.get(q.name)! > 1) return `query ${q.name} given twice`;
    if (!documentedValid(p.schema, coerced(q.text, p.schema))) return `query ${q.name}=${cut(q.text, 60)}: ${errorsOf(validatorOf(p.schema))}`;
  }
  for (const p of op.headerParams) {
    const v = req.headers[p.name];
    if (v !== undefined && !documentedValid(p.schema, v)) return `header ${p.name}: ${errorsOf(validatorOf(p.schema))}`;
  }
  if (op.body !== null) {
    const b = req.body;
    if (b.text === undefined) return op.bodyRequired ? 'no body, and the document requires one' : null;
    if (!b.contentType?.startsWith('application/json') || !('value' in b)) return `body ${b.kind}`;
    const schema = op.name === BATCH ? batchEnvelope(op.body) : op.body;
    if (!documentedValid(schema, b.value)) return `body: ${errorsOf(validatorOf(schema))}`;
  }
  return null;
}

/**
 * The batch route answers each item on its own: a bad item is a 4xx among
 * the results of a 200, not a 4xx of the whole (docs: BatchResult). Its
 * envelope is the body schema with any item; each item is held to the
 * item schema by `batchViolations`.
 */
const BATCH = 'POST /v1/jobs/batch';
const batchItems = (body: Schema): Schema => (resolve(body).properties as Record<string, Schema>).jobs!.items as Schema;
const batchEnvelope = (body: Schema): Schema => {
  const s = structuredClone(resolve(body));
  (s.properties as Record<string, Schema>).jobs!.items = {};
  return s;
};

/** A 200 of the batch route: one result per item, a refused item for each item the document calls invalid, codes of the registry. */
function batchViolations(req: Request, answer: unknown): string[] {
  const out: string[] = [];
  const jobs = (req.body.value as { jobs: unknown[] }).jobs;
  const results = (answer as { results?: Array<{ status: number; code?: string }> }).results ?? [];
  if (results.length !== jobs.length) out.push(`${jobs.length} items, ${results.length} results`);
  const item = batchItems(req.op.body!);
  for (const [i, r] of results.entries()) {
    if (r.status >= 500) out.push(`results[${i}] is a ${r.status}`);
    if (r.status < 300 && i < jobs.length && !documentedValid(item, jobs[i])) out.push(`results[${i}] is a ${r.status} for an item the document calls invalid (${errorsOf(validatorOf(item))})`);
    if (r.status >= 400) {
      const def = r.code === undefined ? undefined : new Map(Object.entries(ERRORS)).get(r.code);
      if (!def || def.status !== r.status) out.push(`results[${i}]: ${r.status} with code ${JSON.stringify(r.code)} (registry: ${def?.status})`);
    }
  }
  return out;
}

/** Whether a 2xx answer wrote nothing by what it says: a batch whose every item was refused. */
function refusedWhole(req: Request, res: LightMyRequestResponse): boolean {
  if (!is2xx(res.statusCode)) return true;
  if (req.op.name !== BATCH) return false;
  const results = (JSON.parse(res.body) as { results?: Array<{ status: number }> }).results ?? [];
  return results.length > 0 && results.every((r) => r.status >= 400);
}

/**
 * A path fastify cannot route (bad percent-encoding, a parameter longer than
 * MAX_NAME_CHARS) is refused before any hook: a 400 ahead of the key check,
 * which says nothing of any data.
 */
const unroutable = (req: Request, status: number): boolean => status === 400
  && req.path.some((v) => decodedPath(v) === undefined || (v.raw ? v.text.length : encodeURIComponent(v.text).length) > MAX_NAME_CHARS);

const is2xx = (status: number) => status >= 200 && status < 300;

/** What is wrong with this answer to this request; empty when nothing. */
function violations(req: Request, res: LightMyRequestResponse): string[] {
  const out: string[] = [];
  const { op } = req;
  const status = res.statusCode;
  const documented = op.responses[String(status)];
  if (status >= 500) out.push(`a ${status}: the database is up, and nothing here may be the server's fault`);
  if (!documented) out.push(`status ${status} is not documented (documented: ${Object.keys(op.responses).join(', ')})`);
  const schema = documented?.content?.['application/json']?.schema;
  let body: unknown;
  if (schema) {
    const type = String(res.headers['content-type'] ?? '');
    if (!type.startsWith('application/json')) out.push(`content-type ${JSON.stringify(type)}, documented application/json`);
    try {
      body = JSON.parse(res.body);
    } catch {
      out.push('the body is not JSON');
    }
    if (body !== undefined) {
      const v = validatorOf(schema);
      if (!v(body)) out.push(`the body does not match ${(schema.$ref as string | undefined) ?? 'its schema'}: ${errorsOf(v)}`);
    }
  } else if (documented && res.body !== '') {
    out.push(`status ${status} is documented without content, but the body is ${JSON.stringify(cut(res.body, 200))}`);
  } else if (!documented) {
    try {
      body = JSON.parse(res.body);
    } catch {
      // said above: the status is not documented
    }
  }
  if (status >= 400) {
    const code = (body as { code?: unknown } | undefined)?.code;
    const def = typeof code === 'string' ? new Map(Object.entries(ERRORS)).get(code) : undefined;
    if (!def) out.push(`error code ${JSON.stringify(code)} is not in the registry`);
    else if (def.status !== status) out.push(`error code ${def.code} is a ${def.status} in the registry, answered ${status}`);
  }
  if (op.scope !== null && !unroutable(req, status)) {
    if ((req.key === 'none' || req.key === 'bad') && status !== 401) out.push(`no working key, answered ${status}: the document says 401`);
    if (req.key === 'lacking' && status !== 403) out.push(`a key without the ${op.scope} scope, answered ${status}: the document says 403`);
  }
  if (is2xx(status)) {
    const invalid = documentedInvalid(req);
    if (invalid) out.push(`answered ${status} to a request the document calls invalid (${invalid})`);
    else if (op.name === BATCH && body !== undefined) out.push(...batchViolations(req, body));
  }
  return out;
}

/** A workflow start that waited and answers 408 or 412 has started its instance (its Location says which). */
const startedThenWaited = (req: Request, res: LightMyRequestResponse): boolean =>
  req.op.name === 'POST /v1/workflows' && (res.statusCode === 408 || res.statusCode === 412) && typeof res.headers.location === 'string';

// ---------------------------------------------------------------- the run

interface Tally { statuses: Map<number, number>; requests: number }

/** What a request created joins its pool: the later operations aim at it (a job with the odd runAt a submit took). */
function remember(world: World, req: Request, res: LightMyRequestResponse): void {
  if (!is2xx(res.statusCode) || !res.body) return;
  const body = JSON.parse(res.body) as { id?: unknown; name?: unknown; key?: unknown; results?: Array<{ id?: unknown }> };
  const add = (pool: string[], v: unknown) => {
    if (typeof v === 'string' && pool.length < 300 && !pool.includes(v)) pool.push(v);
  };
  const { pools } = world;
  switch (req.op.name) {
    case 'POST /v1/jobs': add(pools.jobs, body.id); break;
    case BATCH: for (const r of body.results ?? []) add(pools.jobs, r.id); break;
    case 'POST /v1/workflows': add(pools.workflows, body.id); break;
    case 'POST /v1/schedules': add(pools.schedules, body.name); break;
    case 'PUT /v1/limits/{key}': add(pools.limits, body.key); break;
    case 'POST /v1/keys': add(pools.keys, body.id); break;
    default:
  }
}

async function checkOne(world: World, generated: Request, tally: Tally): Promise<void> {
  const req = await materialize(world, generated);
  const before = world.writes.mark();
  const res = await world.t.app.inject(injectOptions(req, world));
  tally.requests++;
  tally.statuses.set(res.statusCode, (tally.statuses.get(res.statusCode) ?? 0) + 1);
  const problems = violations(req, res);
  if (problems.length === 0 && refusedWhole(req, res) && !startedThenWaited(req, res)) {
    const wrote = world.writes.since(before);
    if (wrote) problems.push(`answered ${res.statusCode}${is2xx(res.statusCode) ? ' refusing every item' : ''}, yet it wrote: ${wrote}`);
  }
  if (problems.length === 0) remember(world, req, res);
  if (problems.length) {
    throw new Error([
      ...problems.map((p) => `- ${p}`),
      `request: ${describeRequest(req)}`,
      `answer: ${res.statusCode} ${cut(res.body, 1200)}`,
    ].join('\n'));
  }
}

/** The seed of an operation's property: the run's, mixed with the operation's name (each operation draws its own requests). */
function seedOf(op: Operation): number {
  return createHash('sha1').update(`${SEED} ${op.name}`).digest().readInt32LE(0);
}

const summary: string[] = [];
const started = Date.now();

describe('the API holds to its OpenAPI document', () => {
  let world: World | undefined;
  after(async () => {
    await world?.close();
    const ms = Date.now() - started;
    console.log(`contract fuzz: ${summary.length} operations, ${RUNS} requests each, seed ${SEED}, ${(ms / 1000).toFixed(1)} s\n  ${summary.join('\n  ')}`);
  });

  test('the document lists the operations the fuzz aims at', () => {
    assert.ok(OPERATIONS.length >= 35, OPERATIONS.map((o) => o.name).join(', '));
    if (ONLY_OP) assert.ok(OPERATIONS.some((o) => o.name === ONLY_OP), `ATS_CONTRACT_FUZZ_OP=${ONLY_OP} is no operation of the document`);
  });

  for (const op of OPERATIONS.filter((o) => !ONLY_OP || o.name === ONLY_OP)) {
    test(op.name, async () => {
      world ??= await seedWorld();
      await topUp(world, prefixOf(op));
      const tally: Tally = { statuses: new Map(), requests: 0 };
      const details = await fc.check(fc.asyncProperty(requestArb(op, world), (req) => checkOne(world!, req, tally)), {
        numRuns: RUNS, seed: seedOf(op), ...(PATH ? { path: PATH } : {}),
      });
      const statuses = [...tally.statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s} x${n}`).join(', ');
      summary.push(`${op.name}: ${statuses}`);
      if (details.failed) {
        const replay = `ATS_CONTRACT_FUZZ_SEED=${SEED} ATS_CONTRACT_FUZZ_PATH=${details.counterexamplePath ?? ''} ATS_CONTRACT_FUZZ_OP='${op.name}' `
          + `node --conditions=ats-source --import tsx --test ${FILE}`;
        const err = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
        assert.fail(`${op.name} broke its contract after ${details.numRuns} run(s), shrunk ${details.numShrinks} time(s). Replay with:\n  ${replay}\n${err}`);
      }
    });
  }
});
