/**
 * The OpenAPI document at /docs/json as a contract: Redocly's `recommended`
 * ruleset (redocly.yaml) finds no error and no warning in it, the named
 * schemas are `components.schemas` that the routes `$ref` (a client generator
 * makes one Job type, not one per operation), and every operation, parameter
 * and field is described.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AUDIT_SCHEMAS, KEY_SCHEMAS } from './key-schemas.js';
import { LIMIT_SCHEMAS, PATH_NAME_PATTERN, SCHEDULE_SCHEMAS, SHARED_SCHEMAS, WORKER_SCHEMAS, WORKFLOW_SCHEMAS } from './schemas.js';
import { createMachine } from 'xstate';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { DEFAULT_BATCH_BODY_LIMIT_BYTES } from './deps.js';
import { startSqliteTestApp, type TestApp } from '../tests/helpers/app.js';
import { makeKey } from '../tests/helpers/keys.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const REDOCLY = join(root, 'node_modules/@redocly/cli/bin/cli.js');

type Schema = Record<string, unknown> & { $ref?: string; properties?: Record<string, Schema>; description?: string };
type Parameter = { name: string; in: string; description?: string };
type Header = { description?: string; required?: boolean; schema?: Schema; $ref?: string };
type Response = { description: string; content?: Record<string, { schema: Schema }>; headers?: Record<string, Header> };
type Operation = {
  operationId?: string; summary?: string; description?: string; tags?: string[]; security?: unknown[];
  parameters?: Parameter[]; requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, Response>;
};
type Document = { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, Schema> } };

/** The names a client sees: what the routes take and answer. */
const NAMED = [
  'Job', 'JobDetail', 'JobEvent', 'JobError', 'JobPage', 'JobProgress', 'JobState', 'BackoffPolicy', 'Error', 'Stats', 'Machine',
  'Health', 'Readiness', 'SubmitRequest', 'CancelRequest', 'RedriveRequest', 'Backoff', 'ExponentialBackoff', 'FixedBackoff',
  'BatchResult', 'BatchResponse', 'Schedule', 'ScheduleDetail', 'ScheduleTick', 'ScheduleList', 'CreateScheduleRequest',
  'UpdateScheduleRequest', 'Worker', 'WorkerList', 'Limit', 'LimitList', 'LimitRate', 'PutLimitRequest',
  'ApiKey', 'ApiKeyList', 'CreatedApiKey', 'CreateApiKeyRequest', 'AuditEntry', 'AuditLog',
  'Workflow', 'WorkflowPage', 'WorkflowEvent', 'WorkflowEventList', 'WorkflowVerification', 'WorkflowRefusal', 'WorkflowStatus',
  'StartWorkflowRequest', 'WorkflowSignal', 'WorkflowCancelRequest', 'WorkflowGraph',
];

const COMPONENT = '#/components/schemas/';
/** What the key, scope, Host, Origin and rate checks answer before any route runs. */
const GUARDS = ['401', '403', '421', '429'];
const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace']);
/** Methods whose body fastify parses, whether the route reads one or not. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** A body that stops arriving, over the body limit, not JSON. */
const BODY_ERRORS = ['408', '413', '415'];

function operations(doc: Document): Array<[string, Operation]> {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).filter(([m]) => HTTP_METHODS.has(m)).map(([m, op]) => [`${m.toUpperCase()} ${path}`, op] as [string, Operation]));
}

/** Every schema object in `node`, with its JSON pointer. */
function* schemasIn(node: unknown, at: string): Generator<[string, Schema]> {
  if (Array.isArray(node)) {
    for (const [i, n] of node.entries()) yield* schemasIn(n, `${at}/${i}`);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const o = node as Schema;
  if ('type' in o || 'properties' in o || '$ref' in o || 'anyOf' in o || 'oneOf' in o || 'allOf' in o) yield [at, o];
  for (const [k, v] of Object.entries(o)) yield* schemasIn(v, `${at}/${k}`);
}

/** `redocly lint` with the repository's redocly.yaml: exit code and the JSON report. */
async function lint(doc: unknown, dir: string): Promise<{ code: number; totals: { errors: number; warnings: number }; problems: unknown[] }> {
  const file = join(dir, `openapi-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(doc, null, 2));
  const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_NOTIFICATIONS: 'true' };
  const args = [REDOCLY, 'lint', '--config', join(root, 'redocly.yaml'), '--format=json', file];
  const run = await promisify(execFile)(process.execPath, args, { cwd: root, env, maxBuffer: 16 << 20 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );
  assert.ok(run.stdout.trim().startsWith('{'), `redocly printed no JSON report (exit ${run.code}): ${run.stderr.slice(0, 2000)}`);
  return { code: run.code, ...JSON.parse(run.stdout) };
}

describe('OpenAPI document', () => {
  let t: TestApp;
  let doc: Document;
  let dir: string;
  before(async () => {
    // With a workflow registered: the /v1/workflows routes are in the document too.
    const workflows = registerDemoHandlers(new HandlerRegistry()).workflow('noop', createMachine({ id: 'noop', initial: 'idle', states: { idle: {} } }));
    t = await startSqliteTestApp({}, { auth: 'auto', workflows });
    const r = await t.app.inject({ url: '/docs/json' });
    assert.equal(r.statusCode, 200);
    doc = r.json();
    dir = mkdtempSync(join(tmpdir(), 'ats-openapi-'));
  });
  after(async () => {
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('redocly lint (recommended, redocly.yaml) finds no error and no warning', async () => {
    const report = await lint(doc, dir);
    assert.deepEqual(report.problems, [], JSON.stringify(report.problems, null, 2).slice(0, 4000));
    assert.deepEqual(report.totals, { ...report.totals, errors: 0, warnings: 0 });
    assert.equal(report.code, 0);
  });

  test('the lint fails a document that breaks a rule', async () => {
    const broken = structuredClone(doc);
    delete broken.paths['/v1/jobs']!.post!.summary; // operation-summary is an error in recommended
    broken.components.schemas.Unused = { type: 'string' }; // no-unused-components is a warning
    const report = await lint(broken, dir);
    assert.notEqual(report.code, 0);
    assert.ok(report.totals.errors >= 1 && report.totals.warnings >= 1, JSON.stringify(report.totals));
  });

  test('components.schemas holds the named schemas, each described', () => {
    const names = Object.keys(doc.components.schemas);
    for (const name of NAMED) assert.ok(names.includes(name), `components.schemas has no ${name}: ${names.join(', ')}`);
    for (const s of [...SHARED_SCHEMAS, ...SCHEDULE_SCHEMAS, ...WORKER_SCHEMAS, ...LIMIT_SCHEMAS, ...KEY_SCHEMAS, ...AUDIT_SCHEMAS, ...WORKFLOW_SCHEMAS]) assert.ok(names.includes(s.$id!), `the shared schema ${s.$id} is not a component`);
    for (const name of names) assert.ok(doc.components.schemas[name]!.description, `${name} has no description`);
    assert.deepEqual(names.filter((n) => /^def-\d+$/.test(n)), [], 'every component has a name of its own');
  });

  test('every response of the job, schedule, limit and workflow routes is a $ref to a component, never the job inlined', () => {
    const jobRoutes = operations(doc).filter(([name]) => / \/v1\/(jobs|schedules|limits|workflows)/.test(name));
    assert.ok(jobRoutes.length >= 12, jobRoutes.map(([n]) => n).join(', '));
    for (const [name, op] of jobRoutes) {
      for (const [status, response] of Object.entries(op.responses)) {
        for (const [type, media] of Object.entries(response.content ?? {})) {
          const target = media.schema.$ref ?? '';
          assert.ok(target.startsWith(COMPONENT), `${name} ${status} ${type} is inline: ${JSON.stringify(media.schema).slice(0, 200)}`);
          assert.ok(doc.components.schemas[target.slice(COMPONENT.length)], `${name} ${status}: ${target} does not resolve`);
        }
      }
    }
    const refs = (name: string, status: string) => doc.paths[name.split(' ')[1]!]![name.split(' ')[0]!.toLowerCase()]!
      .responses[status]!.content!['application/json']!.schema.$ref;
    assert.equal(refs('POST /v1/jobs', '201'), `${COMPONENT}Job`);
    assert.equal(refs('GET /v1/jobs/{id}', '200'), `${COMPONENT}JobDetail`);
    assert.equal(refs('GET /v1/jobs', '200'), `${COMPONENT}JobPage`);
    assert.equal(refs('POST /v1/jobs/{id}/cancel', '404'), `${COMPONENT}Error`);
    assert.equal(refs('POST /v1/jobs/batch', '200'), `${COMPONENT}BatchResponse`);
    assert.equal(refs('POST /v1/schedules', '201'), `${COMPONENT}Schedule`);
    assert.equal(refs('GET /v1/schedules', '200'), `${COMPONENT}ScheduleList`);
    assert.equal(refs('GET /v1/schedules/{name}', '200'), `${COMPONENT}ScheduleDetail`);
    assert.equal(refs('PATCH /v1/schedules/{name}', '200'), `${COMPONENT}Schedule`);
    assert.equal(refs('DELETE /v1/schedules/{name}', '404'), `${COMPONENT}Error`);
    assert.equal(refs('POST /v1/schedules', '409'), `${COMPONENT}Error`);
  });

  test('the schedule routes: tagged schedules, bodies and the schedule object named once', () => {
    const routes = operations(doc).filter(([name]) => / \/v1\/schedules/.test(name));
    assert.deepEqual(routes.map(([n]) => n).sort(), [
      'DELETE /v1/schedules/{name}', 'GET /v1/schedules', 'GET /v1/schedules/{name}', 'PATCH /v1/schedules/{name}', 'POST /v1/schedules',
    ]);
    for (const [name, op] of routes) assert.deepEqual(op.tags, ['schedules'], name);
    const body = (path: string, method: string) => doc.paths[path]![method]!.requestBody!.content['application/json']!.schema.$ref;
    assert.equal(body('/v1/schedules', 'post'), `${COMPONENT}CreateScheduleRequest`);
    assert.equal(body('/v1/schedules/{name}', 'patch'), `${COMPONENT}UpdateScheduleRequest`);
    // The job fields are the submit's: same bounds, same backoff component.
    const create = doc.components.schemas.CreateScheduleRequest!.properties!;
    const submit = doc.components.schemas.SubmitRequest!.properties!;
    for (const f of ['type', 'queue', 'maxAttempts', 'backoff', 'timeoutMs', 'priority']) assert.deepEqual(create[f], submit[f], f);
    assert.equal(create.cron!.maxLength, 200);
    const isSchedule = (x: Schema) => Boolean(x.properties?.cron && x.properties?.nextRunAt && x.properties?.job);
    assert.deepEqual([...schemasIn(doc, '#')].filter(([, x]) => isSchedule(x)).map(([at]) => at), [`${COMPONENT}Schedule`]);
    const detail = doc.components.schemas.ScheduleDetail as { allOf?: Schema[] };
    assert.equal(detail.allOf?.[0]?.$ref, `${COMPONENT}Schedule`, 'ScheduleDetail extends Schedule');
  });

  test('the workers route: tagged workers, answering the WorkerList component; the stats document unserved', () => {
    const op = doc.paths['/v1/workers']?.get;
    assert.ok(op, 'GET /v1/workers is documented');
    assert.equal(op.operationId, 'listWorkers');
    assert.deepEqual(op.tags, ['workers']);
    assert.equal(op.responses['200']!.content!['application/json']!.schema.$ref, `${COMPONENT}WorkerList`);
    const list = doc.components.schemas.WorkerList!.properties!.workers as Schema & { items?: Schema };
    assert.equal(list.items?.$ref, `${COMPONENT}Worker`);
    const worker = doc.components.schemas.Worker!;
    assert.deepEqual(Object.keys(worker.properties!).sort(), ['concurrency', 'host', 'id', 'lastSeenAt', 'live', 'pid', 'queues', 'startedAt', 'types']);
    const stats = doc.components.schemas.Stats!;
    assert.ok(stats.properties!.unserved, 'Stats documents unserved');
    assert.ok(!(stats.required as string[] | undefined)?.includes('unserved'), 'unserved is optional');
  });

  test('the limit routes: tagged limits, the PutLimitRequest body, the Limit and LimitList answers; jobs carry concurrencyKey', () => {
    const routes = operations(doc).filter(([name]) => / \/v1\/limits/.test(name));
    assert.deepEqual(routes.map(([n]) => n).sort(), ['DELETE /v1/limits/{key}', 'GET /v1/limits', 'GET /v1/limits/{key}', 'PUT /v1/limits/{key}']);
    for (const [name, op] of routes) assert.deepEqual(op.tags, ['limits'], name);
    const put = doc.paths['/v1/limits/{key}']!.put!;
    assert.equal(put.operationId, 'putLimit');
    assert.equal(put.requestBody!.content['application/json']!.schema.$ref, `${COMPONENT}PutLimitRequest`);
    for (const status of ['200', '201']) assert.equal(put.responses[status]!.content!['application/json']!.schema.$ref, `${COMPONENT}Limit`);
    assert.equal(doc.paths['/v1/limits/{key}']!.get!.responses['404']!.content!['application/json']!.schema.$ref, `${COMPONENT}Error`);
    assert.equal(doc.paths['/v1/limits']!.get!.responses['200']!.content!['application/json']!.schema.$ref, `${COMPONENT}LimitList`);
    const key = put.parameters!.find((p) => p.name === 'key') as Parameter & { schema?: Schema };
    assert.equal(key.in, 'path');
    assert.equal(key.schema?.maxLength, 200);
    assert.equal(key.schema?.pattern, PATH_NAME_PATTERN, 'a key is a path segment: not . or ..');
    const limit = doc.components.schemas.Limit!;
    assert.deepEqual(Object.keys(limit.properties!).sort(), ['concurrency', 'createdAt', 'key', 'rate', 'running', 'updatedAt']);
    const body = doc.components.schemas.PutLimitRequest!;
    assert.deepEqual(Object.keys(body.properties!).sort(), ['concurrency', 'rate']);
    assert.equal(body.additionalProperties, false);
    const rate = doc.components.schemas.LimitRate!;
    assert.deepEqual(rate.required, ['max', 'intervalMs']);
    assert.deepEqual([rate.properties!.max!.maximum, rate.properties!.intervalMs!.maximum], [1_000_000, 86_400_000]);
    const codes = (doc.components.schemas.Error!.properties!.code as Schema & { enum: string[] }).enum;
    assert.ok(codes.includes('ATS_ERR_LIMIT_NOT_FOUND'));
    assert.ok(doc.components.schemas.SubmitRequest!.properties!.concurrencyKey, 'a submit takes concurrencyKey');
    assert.ok(doc.components.schemas.Job!.properties!.concurrencyKey, 'a job shows concurrencyKey');
  });

  test('the workflow routes: tagged workflows, their bodies and answers named; a refused signal or cancel answers WorkflowRefusal', () => {
    const routes = operations(doc).filter(([name]) => / \/v1\/workflows/.test(name));
    assert.deepEqual(routes.map(([n]) => n).sort(), [
      'DELETE /v1/workflows/{id}', 'GET /v1/workflows', 'GET /v1/workflows/{id}', 'GET /v1/workflows/{id}/events', 'GET /v1/workflows/{id}/graph', 'GET /v1/workflows/{id}/verify', 'GET /v1/workflows/{id}/wait',
      'POST /v1/workflows', 'POST /v1/workflows/{id}/cancel', 'POST /v1/workflows/{id}/events',
    ]);
    for (const [name, op] of routes) assert.deepEqual(op.tags, ['workflows'], name);
    const answer = (path: string, method: string, status: string) => doc.paths[path]![method]!.responses[status]!.content!['application/json']!.schema.$ref;
    const body = (path: string, method: string) => doc.paths[path]![method]!.requestBody!.content['application/json']!.schema.$ref;
    assert.equal(body('/v1/workflows', 'post'), `${COMPONENT}StartWorkflowRequest`);
    assert.equal(body('/v1/workflows/{id}/events', 'post'), `${COMPONENT}WorkflowSignal`);
    assert.equal(body('/v1/workflows/{id}/cancel', 'post'), `${COMPONENT}WorkflowCancelRequest`);
    assert.equal((doc.paths['/v1/workflows/{id}/cancel']!.post!.requestBody as { required?: boolean }).required, false);
    for (const status of ['200', '201']) assert.equal(answer('/v1/workflows', 'post', status), `${COMPONENT}Workflow`);
    assert.equal(answer('/v1/workflows', 'get', '200'), `${COMPONENT}WorkflowPage`);
    assert.equal(answer('/v1/workflows/{id}/events', 'get', '200'), `${COMPONENT}WorkflowEventList`);
    assert.equal(answer('/v1/workflows/{id}/verify', 'get', '200'), `${COMPONENT}WorkflowVerification`);
    assert.equal(answer('/v1/workflows/{id}/graph', 'get', '200'), `${COMPONENT}WorkflowGraph`);
    assert.equal(answer('/v1/workflows/{id}/graph', 'get', '503'), `${COMPONENT}Error`);
    for (const path of ['/v1/workflows/{id}/events', '/v1/workflows/{id}/cancel']) {
      assert.equal(answer(path, 'post', '409'), `${COMPONENT}WorkflowRefusal`);
      assert.equal(answer(path, 'post', '503'), `${COMPONENT}Error`);
    }
    assert.equal(answer('/v1/workflows', 'post', '422'), `${COMPONENT}Error`);
    // A delete: 204 without a body; an active instance's 409 and another tenant's 404 are plain Errors.
    const del = doc.paths['/v1/workflows/{id}']!.delete!;
    assert.equal(del.responses['204']!.content, undefined);
    for (const status of ['404', '409', '503']) assert.equal(answer('/v1/workflows/{id}', 'delete', status), `${COMPONENT}Error`, status);
    // A wait: the instance when met, an Error on its timeout (408) and when the instance ended without meeting it (412); a start may wait too.
    assert.equal(answer('/v1/workflows/{id}/wait', 'get', '200'), `${COMPONENT}Workflow`);
    for (const path of ['/v1/workflows/{id}/wait', '/v1/workflows']) {
      const method = path === '/v1/workflows' ? 'post' : 'get';
      for (const status of ['408', '412']) assert.equal(answer(path, method, status), `${COMPONENT}Error`, `${method} ${path} ${status}`);
    }
    const query = (path: string, method: string) => (doc.paths[path]![method]!.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name).sort();
    assert.deepEqual(query('/v1/workflows/{id}/wait', 'get'), ['timeoutMs', 'until']);
    assert.deepEqual(query('/v1/workflows', 'post'), ['timeoutMs', 'wait']);
    assert.equal(doc.components.schemas.WorkflowSignal!.additionalProperties, true, 'a signal carries any fields');
    const codes = (doc.components.schemas.Error!.properties!.code as Schema & { enum: string[] }).enum;
    for (const c of ['ATS_ERR_UNKNOWN_WORKFLOW', 'ATS_ERR_INVALID_WORKFLOW_INPUT', 'ATS_ERR_WORKFLOW_NOT_FOUND', 'ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED', 'ATS_ERR_WORKFLOW_ENDED', 'ATS_ERR_WORKFLOW_ACTIVE', 'ATS_ERR_WORKFLOW_DEFINITION_MISSING', 'ATS_ERR_WAIT_TIMEOUT', 'ATS_ERR_WAIT_UNMET']) {
      assert.ok(codes.includes(c), c);
    }
  });

  test('the job object is written once in the whole document: components.schemas.Job', () => {
    const isJob = (s: Schema) => Boolean(s.properties?.allowed && s.properties?.attempt && s.properties?.runAt);
    const found = [...schemasIn(doc, '#')].filter(([, s]) => isJob(s)).map(([at]) => at);
    assert.deepEqual(found, [`${COMPONENT}Job`]);
    const detail = doc.components.schemas.JobDetail as { allOf?: Schema[] };
    assert.equal(detail.allOf?.[0]?.$ref, `${COMPONENT}Job`, 'JobDetail extends Job');
  });

  test('every operation has an operationId, a summary, a description and a known tag', () => {
    const tags = new Set((doc as unknown as { tags: Array<{ name: string }> }).tags.map((x) => x.name));
    const ids = new Set<string>();
    for (const [name, op] of operations(doc)) {
      assert.match(op.operationId ?? '', /^[a-z][A-Za-z]+$/, `${name} operationId`);
      assert.ok(!ids.has(op.operationId!), `${name}: operationId ${op.operationId} is used twice`);
      ids.add(op.operationId!);
      assert.ok(op.summary, `${name} has no summary`);
      assert.ok(op.description && op.description.length > op.summary!.length, `${name} has no description beyond its summary`);
      assert.ok(op.tags?.length && op.tags.every((x) => tags.has(x)), `${name} tags ${op.tags}`);
    }
  });

  test('the document states the limits a body is held to: its size, encoding, forbidden keys and exact integers; the depth of every free JSON value', () => {
    const info = (doc as unknown as { info: { description: string } }).info.description;
    for (const says of [/Upgrade request on any route but .* 400 ATS_ERR_VALIDATION/, /408 ATS_ERR_REQUEST_TIMEOUT/, /1 MiB by default \(ATS_BODY_LIMIT_BYTES/, /16 MiB, ATS_BATCH_BODY_LIMIT_BYTES/, /UTF-8/, /Content-Encoding/, /__proto__/, /9007199254740991/]) assert.match(info, says);
    const schemas = doc.components.schemas as Record<string, Schema & { description?: string }>;
    const free = [
      schemas.SubmitRequest!.properties!.payload!, schemas.CreateScheduleRequest!.properties!.payload!, schemas.UpdateScheduleRequest!.properties!.payload!,
      schemas.StartWorkflowRequest!.properties!.input!, schemas.WorkflowSignal!,
    ];
    for (const s of free) assert.match(s.description ?? '', /32 levels deep.*numbers finite/, JSON.stringify(s).slice(0, 200));
  });

  test('every parameter and every field of every schema is described', () => {
    for (const [name, op] of operations(doc)) {
      for (const p of op.parameters ?? []) assert.ok(p.description, `${name}: ${p.in} parameter ${p.name} has no description`);
    }
    const missing: string[] = [];
    for (const [at, schema] of schemasIn(doc, '#')) {
      for (const [field, s] of Object.entries(schema.properties ?? {})) {
        // A $ref's description is the named schema's (checked above): OpenAPI tools drop a $ref's siblings.
        if (!s.description && !s.$ref) missing.push(`${at}/properties/${field}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  test('every operation that takes input documents its 400 (what operation-4xx-response would ask)', () => {
    for (const [name, op] of operations(doc)) {
      if (op.parameters?.length || op.requestBody) assert.ok(op.responses['400'], `${name} takes input but documents no 400`);
      else assert.deepEqual(Object.keys(op.responses).filter((s) => s.startsWith('4') && !GUARDS.includes(s)), [], `${name} takes no input`);
    }
  });

  test('every operation documents the answers of the guards before it (401, 403, 421, 429), but the public health ones, which need no key', () => {
    for (const [name, op] of operations(doc)) {
      const publicOp = Array.isArray(op.security) && op.security.length === 0;
      assert.equal(publicOp, name.endsWith('/healthz') || name.endsWith('/readyz'), `${name}: security ${JSON.stringify(op.security)}`);
      const guarded = GUARDS.filter((s) => op.responses[s]);
      assert.deepEqual(guarded, publicOp ? [] : GUARDS, name);
    }
    assert.deepEqual((doc as unknown as { security: unknown }).security, [{ apiKey: [] }]);
  });

  test('every operation documents 500 and 503: the shutdown gate answers 503 on every route, the key check reads the database', () => {
    const missing = operations(doc).filter(([, op]) => !op.responses['500'] || !op.responses['503']).map(([name]) => name);
    assert.deepEqual(missing, []);
  });

  test('every operation that takes a body documents 413 and 415, and what it answers to a body too large or not JSON is documented', async () => {
    const missing = operations(doc)
      .filter(([name, op]) => BODY_METHODS.has(name.split(' ')[0]!) && !BODY_ERRORS.every((s) => op.responses[s]))
      .map(([name]) => name);
    assert.deepEqual(missing, [], 'body-taking operations without 413 and 415');
    // What the app does: every route of those methods answers 413 and 415, before it runs (408: below). Over every route's limit, the batch's too.
    const tooLarge = JSON.stringify({ reason: 'x'.repeat(DEFAULT_BATCH_BODY_LIMIT_BYTES + 1) });
    const undocumented: string[] = [];
    for (const [name, op] of operations(doc)) {
      const [method, path] = name.split(' ') as [string, string];
      const url = path.replace(/\{[^}]+\}/g, '01J00000000000000000000000');
      for (const [why, headers, payload] of [['too large', 'application/json', tooLarge], ['not JSON', 'text/plain', 'x']] as const) {
        const r = await t.app.inject({ method: method as 'GET', url, headers: { 'content-type': headers }, payload });
        if (!op.responses[String(r.statusCode)]) undocumented.push(`${name} (${why}): ${r.statusCode}`);
        if (BODY_METHODS.has(method) && r.statusCode !== (why === 'too large' ? 413 : 415)) undocumented.push(`${name} (${why}): ${r.statusCode}, not refused`);
      }
    }
    assert.deepEqual(undocumented, []);
  });

  test('every write operation refuses a query parameter it does not declare, with its documented 400', async () => {
    const undocumented: string[] = [];
    for (const [name, op] of operations(doc)) {
      const [method, path] = name.split(' ') as [string, string];
      // One that declares a query string checks it with its schema (after the body: fastify's order).
      if (!BODY_METHODS.has(method) || op.parameters?.some((p) => p.in === 'query')) continue;
      const url = `${path.replace(/\{[^}]+\}/g, '01J00000000000000000000000')}?stray=1`;
      const r = await t.app.inject({ method: method as 'POST', url, payload: {} });
      if (r.statusCode !== 400 || !op.responses['400'] || !/stray/.test(r.json().message)) undocumented.push(`${name}: ${r.statusCode} ${r.body.slice(0, 100)}`);
    }
    assert.deepEqual(undocumented, []);
  });

  test('every write operation that reads no Idempotency-Key header refuses one, with its documented 400; those that read it declare it', async () => {
    const undocumented: string[] = [];
    const reading: string[] = [];
    for (const [name, op] of operations(doc)) {
      const [method, path] = name.split(' ') as [string, string];
      if (!BODY_METHODS.has(method)) continue;
      if (op.parameters?.some((p) => p.in === 'header' && p.name === 'idempotency-key')) {
        reading.push(name);
        continue;
      }
      const url = path.replace(/\{[^}]+\}/g, '01J00000000000000000000000');
      const r = await t.app.inject({ method: method as 'POST', url, headers: { 'idempotency-key': 'k-1' }, payload: {} });
      if (r.statusCode !== 400 || !op.responses['400'] || !/idempotency-key/.test(r.json().message)) undocumented.push(`${name}: ${r.statusCode} ${r.body.slice(0, 100)}`);
    }
    assert.deepEqual(undocumented, []);
    assert.deepEqual(reading.sort(), ['POST /v1/jobs', 'POST /v1/workflows/{id}/events']);
    const info = (doc as unknown as { info: { description: string } }).info.description;
    assert.match(info, /Idempotency-Key header.*400/);
  });

  test('the backoff discriminator maps each kind to its schema', () => {
    const backoff = doc.components.schemas.Backoff as { discriminator: { propertyName: string; mapping: Record<string, string> } };
    assert.deepEqual(backoff.discriminator, {
      propertyName: 'kind',
      mapping: { exponential: `${COMPONENT}ExponentialBackoff`, fixed: `${COMPONENT}FixedBackoff` },
    });
  });
});

/** What the server sent on a raw connection until it closed it (or `ms` passed). */
function rawExchange(port: number, request: string, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for ${ms} ms; it sent: ${JSON.stringify(text)}`));
    }, ms);
    socket.on('data', (d) => (text += d));
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(text);
    });
  });
}

describe('OpenAPI document: a body that stops arriving', () => {
  test('every operation that takes a body answers 408 ATS_ERR_REQUEST_TIMEOUT to a body that goes silent, and documents it', async () => {
    const workflows = registerDemoHandlers(new HandlerRegistry()).workflow('noop', createMachine({ id: 'noop', initial: 'idle', states: { idle: {} } }));
    const t = await startSqliteTestApp({ limits: { bodyLimitBytes: 1024 * 1024, bodyTimeoutMs: 300 } }, { auth: 'auto', workflows });
    try {
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = t.app.server.address() as { port: number };
      const doc = (await t.app.inject({ url: '/docs/json' })).json() as Document;
      const bodyOps = operations(doc).filter(([name]) => BODY_METHODS.has(name.split(' ')[0]!));
      assert.ok(bodyOps.length >= 15, `${bodyOps.length} operations take a body`);
      const answers = await Promise.all(bodyOps.map(async ([name, op]) => {
        const [method, path] = name.split(' ') as [string, string];
        const url = path.replace(/\{[^}]+\}/g, '01J00000000000000000000000');
        // A body of 1000 bytes declared, 9 sent, then silence.
        const text = await rawExchange(port, `${method} ${url} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"type":1`, 20_000);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
        const body = text.slice(text.indexOf('\r\n\r\n') + 4);
        return { name, status, body, documented: Boolean(op.responses[String(status)]?.content?.['application/json']) };
      }));
      const wrong = answers.filter((a) => a.status !== 408 || !a.body.includes('"ATS_ERR_REQUEST_TIMEOUT"') || !a.documented);
      assert.deepEqual(wrong.map((a) => `${a.name}: ${a.status}${a.documented ? '' : ' (not documented)'} ${a.body.slice(0, 120)}`), []);
    } finally {
      await t.close();
    }
  });
});

/** The response headers the document gives, and what the app answers with them. */
const DOCUMENTED_HEADERS = ['Location', 'Retry-After', 'WWW-Authenticate'];

describe('OpenAPI document: response headers', () => {
  test('the document gives Location on a create, Retry-After on 429 and 503, WWW-Authenticate on 401; real answers carry what it gives, and no such header it does not', async () => {
    const workflows = registerDemoHandlers(new HandlerRegistry()).workflow('noop', createMachine({ id: 'noop', initial: 'idle', states: { idle: {} } }));
    const t = await startSqliteTestApp(
      // A database check that fails: /readyz answers 503. A rate limit low enough to reach.
      { checks: { database: async () => { throw new Error('down'); } }, security: { rateLimitPerMinute: 12 } },
      { auth: 'auto', workflows },
    );
    try {
      const doc = (await t.app.inject({ url: '/docs/json' })).json() as Document & { components: { headers?: Record<string, Header> } };
      const headerOf = (h: Header): Header => (h.$ref ? doc.components.headers![h.$ref.split('/').pop()!]! : h);
      const documented = (method: string, path: string, status: number): Map<string, Header> => {
        const r = doc.paths[path]![method.toLowerCase()]!.responses[String(status)];
        assert.ok(r, `${method} ${path} does not document ${status}`);
        return new Map(Object.entries(r.headers ?? {}).map(([name, h]) => [name.toLowerCase(), headerOf(h)]));
      };
      // In the document: on every operation, those of the guards and of 503.
      for (const [name, op] of operations(doc)) {
        const has = (status: string, header: string) => Boolean(op.responses[status]?.headers?.[header]);
        if (op.responses['401']) assert.ok(has('401', 'WWW-Authenticate'), `${name} 401`);
        if (op.responses['429']) assert.ok(has('429', 'Retry-After'), `${name} 429`);
        assert.ok(has('503', 'Retry-After'), `${name} 503`);
      }
      const key = await makeKey(t.store, 'default');
      const auth = key.headers;
      const answers: Array<{ method: string; path: string; url: string; status: number; headers: Record<string, unknown> }> = [];
      const call = async (method: string, path: string, url: string, payload?: object, headers: Record<string, string> = auth) => {
        const r = await t.app.inject({ method: method as 'GET', url, headers, ...(payload ? { payload } : {}) });
        answers.push({ method, path, url, status: r.statusCode, headers: r.headers });
        return r;
      };
      const job = { type: 'demo.echo', payload: { n: 1 } };
      const submitted = await call('POST', '/v1/jobs', '/v1/jobs', job, { ...auth, 'idempotency-key': 'k-1' });
      await call('POST', '/v1/jobs', '/v1/jobs', job, { ...auth, 'idempotency-key': 'k-1' });
      await call('GET', '/v1/jobs/{id}', `/v1/jobs/${submitted.json().id}`);
      await call('POST', '/v1/schedules', '/v1/schedules', { name: 'nightly', cron: '0 3 * * *', ...job });
      await call('PUT', '/v1/limits/{key}', '/v1/limits/email', { concurrency: 2 });
      await call('PUT', '/v1/limits/{key}', '/v1/limits/email', { concurrency: 3 });
      await call('POST', '/v1/workflows', '/v1/workflows', { name: 'noop' });
      await call('POST', '/v1/keys', '/v1/keys', { name: 'k', scopes: ['read'] });
      await call('GET', '/v1/jobs', '/v1/jobs', undefined, {});
      await call('GET', '/readyz', '/readyz', undefined, {});
      // Over the rate limit (12 a minute for the key).
      for (let i = 0; i < 12 && answers.at(-1)!.status !== 429; i++) await call('GET', '/v1/stats', '/v1/stats');
      const statuses = answers.map((a) => a.status);
      for (const s of [200, 201, 401, 429, 503]) assert.ok(statuses.includes(s), `no ${s} among ${statuses.join(', ')}`);
      const problems: string[] = [];
      for (const a of answers) {
        const headers = documented(a.method, a.path, a.status);
        const at = `${a.method} ${a.url} ${a.status}`;
        for (const name of DOCUMENTED_HEADERS.map((h) => h.toLowerCase())) {
          const value = a.headers[name];
          const h = headers.get(name);
          if (value !== undefined && !h) problems.push(`${at}: answers ${name}: ${String(value)}, which the document does not give`);
          if (h?.required && value === undefined) problems.push(`${at}: the document requires ${name}, not answered`);
          if (h && value !== undefined && h.schema?.pattern && !new RegExp(h.schema.pattern as string).test(String(value))) {
            problems.push(`${at}: ${name}: ${String(value)} does not match ${String(h.schema.pattern)}`);
          }
          if (h && value !== undefined && h.schema?.type === 'integer' && !/^[0-9]+$/.test(String(value))) problems.push(`${at}: ${name}: ${String(value)} is no integer`);
        }
        const location = a.headers.location;
        if (typeof location === 'string') {
          // A relative reference: resolved against the request's URL, as a client does.
          const url = new URL(location, `http://ats.invalid${a.url}`);
          const r = await t.app.inject({ url: `${url.pathname}${url.search}`, headers: auth.authorization ? { authorization: auth.authorization } : {} });
          if (r.statusCode !== 200 && r.statusCode !== 429) problems.push(`${at}: GET its Location ${location} answers ${r.statusCode}`);
        }
      }
      assert.deepEqual(problems, []);
    } finally {
      await t.close();
    }
  });
});
