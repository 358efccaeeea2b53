/**
 * Checks the deployment files without a Docker engine (none runs on the
 * development and CI machines, and the client has no compose plugin):
 * docker-compose.yml is parsed with `yaml` (merge keys on, `${VAR}` filled in
 * from .env.example the way compose fills them from .env), the Dockerfile with
 * a small instruction reader, and tests/jobs.http with a request-line reader.
 * What they must agree with is read from the code: the settings of
 * cli/config.ts and the REST contract (v1) that README.md and
 * docs/architecture.md describe (the routes of server/routes/).
 * tests/jobs-http.test.ts runs jobs.http against a real server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { NODE_FLAGS } from '../cli/node-flags.js';
import { serveMetrics } from '../adapters/metrics/http.js';
import { compileConfig, rawFromEnv, ROLES, SETTINGS } from '../cli/config.js';

const root = new URL('../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8');

const SCHEDULER_SERVICES = ['api', 'relay', 'worker', 'timers'] as const;
const SETTING_ENVS = new Set<string>(Object.values(SETTINGS).map((s) => s.env));

/**
 * Variables a scheduler service may set that are not scheduler settings, each
 * with why. Anything else is a typo or a setting the code does not read.
 */
const PASS_THROUGH: Record<string, string> = {
  NODE_ENV: 'read by node libraries (fastify, kafkajs), not by the scheduler',
  NODE_OPTIONS: 'flags of the node runtime itself (e.g. --max-old-space-size)',
  TZ: 'time zone of log timestamps; the scheduler itself works in epoch ms',
};

/** The REST contract (v1), as README.md and docs/architecture.md describe it: method and path pattern. */
const CONTRACT: ReadonlyArray<readonly [string, string]> = [
  ['POST', '/v1/jobs'],
  ['POST', '/v1/jobs/batch'],
  ['GET', '/v1/jobs/:id'],
  ['GET', '/v1/jobs'],
  ['POST', '/v1/jobs/:id/cancel'],
  ['POST', '/v1/jobs/:id/redrive'],
  ['DELETE', '/v1/jobs/:id'],
  ['GET', '/v1/machine'],
  ['GET', '/v1/stats'],
  ['GET', '/healthz'],
  ['GET', '/readyz'],
];
const LIST_QUERY = new Set(['state', 'type', 'queue', 'limit', 'cursor']);
const SUBMIT_FIELDS = new Set(['type', 'payload', 'queue', 'runAt', 'maxAttempts', 'backoff', 'timeoutMs', 'priority']);

// ---------------------------------------------------------------- .env and ${VAR}

/** `KEY=value` lines of a dotenv file; comments and blank lines skipped. */
function parseDotEnv(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) vars[m[1]!] = m[2]!.replace(/^(['"])(.*)\1$/, '$2');
  }
  return vars;
}

const VAR_REF = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

/** Compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`. */
function interpolate(text: string, vars: Record<string, string>): string {
  return text.replace(VAR_REF, (whole, braced?: string, op?: string, arg?: string, bare?: string) => {
    if (whole === '$$') return '$';
    const name = (braced ?? bare)!;
    const value = vars[name];
    const missing = op?.startsWith(':') ? !value : value === undefined;
    if (!missing) return value!;
    if (op?.endsWith('-')) return arg ?? '';
    if (op?.endsWith('?')) throw new Error(`required variable ${name} is missing: ${arg}`);
    throw new Error(`variable ${name} is not set (compose would use an empty string)`);
  });
}

function interpolateDeep(node: unknown, vars: Record<string, string>): unknown {
  if (typeof node === 'string') return interpolate(node, vars);
  if (Array.isArray(node)) return node.map((n) => interpolateDeep(n, vars));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateDeep(v, vars)]));
  }
  return node;
}

// ---------------------------------------------------------------- compose

type Service = {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  container_name?: string;
  ports?: Array<string | number | { published?: string | number }>;
  environment?: Record<string, unknown> | string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  restart?: string;
  volumes?: unknown[];
};
type Compose = { services: Record<string, Service>; volumes?: Record<string, unknown> };

const envExample = parseDotEnv(read('.env.example'));
const composeText = read('docker-compose.yml');
let parsed: Compose | undefined;
/** Parsed on first use, so a missing variable fails the tests that need it, with its name, not the whole file. */
function loadCompose(): Compose {
  return (parsed ??= interpolateDeep(parse(composeText, { merge: true }), envExample) as Compose);
}
function service(name: string): Service {
  const s = loadCompose().services[name];
  assert.ok(s, `service ${name} is missing`);
  return s;
}

/** A service's environment as strings, from the map or the `KEY=value` list form. */
function envOf(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((e) => [e.split('=')[0]!, e.slice(e.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/** The host side of a port mapping, or null when docker picks one (what lets a service scale). */
function fixedHostPort(port: string | number | { published?: string | number }): string | null {
  if (typeof port === 'object') return port.published === undefined ? null : String(port.published);
  const parts = String(port).split(':');
  return parts.length >= 2 ? parts[parts.length - 2]! : null;
}

function healthTest(service: Service): string {
  const t = service.healthcheck?.test;
  return Array.isArray(t) ? t.join(' ') : (t ?? '');
}

test('compose defines mysql, kafka and the four scheduler roles', () => {
  for (const name of ['mysql', 'kafka', ...SCHEDULER_SERVICES]) service(name);
  assert.equal(service('mysql').image, 'mysql:8.0');
  assert.equal(service('kafka').image, 'apache/kafka:4.1.1');
  assert.deepEqual([...SCHEDULER_SERVICES].sort(), [...ROLES].sort(), 'one service per role');
});

test('every variable compose needs without a default is in .env.example', () => {
  const needed = [...composeText.matchAll(VAR_REF)]
    .filter((m) => m[0] !== '$$' && !m[2]?.endsWith('-'))
    .map((m) => (m[1] ?? m[4])!);
  assert.ok(needed.includes('MYSQL_USER') && needed.includes('MYSQL_PASSWORD'), 'the MySQL account comes from .env');
  for (const name of new Set(needed)) assert.ok(envExample[name], `.env.example has no value for ${name}`);
});

test('scheduler services set only settings of cli/config.ts or documented pass-throughs', () => {
  for (const name of SCHEDULER_SERVICES) {
    for (const key of Object.keys(envOf(service(name)))) {
      assert.ok(SETTING_ENVS.has(key) || key in PASS_THROUGH, `${name} sets ${key}, which is neither a SETTINGS env nor a pass-through`);
    }
  }
});

test('each scheduler service compiles to a valid config running its own role on MySQL and Kafka', () => {
  for (const name of SCHEDULER_SERVICES) {
    const env = envOf(service(name));
    const config = compileConfig(rawFromEnv(env));
    assert.deepEqual(config.roles, [name], `${name} runs ATS_ROLES=${env.ATS_ROLES}`);
    assert.ok(config.mysqlUrl, `${name} has a MYSQL_URL`);
    assert.deepEqual(config.kafkaBrokers, ['kafka:9092'], `${name} reaches the kafka service`);
    assert.equal(config.host, '0.0.0.0', `${name} listens on every interface`);
  }
});

test('MYSQL_URL names the mysql service, its database and its account', () => {
  const db = envOf(service('mysql'));
  for (const name of SCHEDULER_SERVICES) {
    const url = new URL(envOf(service(name)).MYSQL_URL!);
    assert.equal(url.hostname, 'mysql');
    assert.equal(url.pathname, `/${db.MYSQL_DATABASE}`);
    assert.equal(decodeURIComponent(url.username), db.MYSQL_USER);
    assert.equal(decodeURIComponent(url.password), db.MYSQL_PASSWORD);
  }
  assert.equal(db.MYSQL_DATABASE, 'ats');
  assert.ok(db.MYSQL_ROOT_PASSWORD, 'mysql has a root password');
});

test('kafka runs as a single KRaft node advertised as kafka:9092', () => {
  const env = envOf(service('kafka'));
  assert.equal(env.KAFKA_PROCESS_ROLES, 'broker,controller');
  assert.equal(env.KAFKA_ADVERTISED_LISTENERS, 'PLAINTEXT://kafka:9092');
  assert.equal(env.KAFKA_CONTROLLER_QUORUM_VOTERS, `${env.KAFKA_NODE_ID}@kafka:9093`);
  assert.match(env.KAFKA_LISTENERS!, /CONTROLLER:\/\/:9093/);
  assert.ok(env.CLUSTER_ID, 'the image formats KRaft storage with CLUSTER_ID and fails without it');
  for (const [k, v] of Object.entries(env)) if (k.endsWith('REPLICATION_FACTOR')) assert.equal(v, '1', `${k} on one broker`);
});

test('the api is published on the host\'s loopback only, and only there runs without keys', () => {
  const ports = service('api').ports ?? [];
  assert.ok(ports.length > 0, 'the api publishes its port');
  for (const p of ports) assert.match(String(p), /^127\.0\.0\.1:/, `api publishes ${JSON.stringify(p)}`);
  assert.equal(envOf(service('api')).ATS_AUTH, 'off');
});

test('every port a service publishes, the monitoring profile\'s too, is on the host\'s loopback', () => {
  // Prometheus answers any query of every role's metrics, and Grafana has an anonymous viewer and
  // the admin password `admin` by default: on the network they would show what the api keeps on loopback.
  const published = Object.entries(loadCompose().services).flatMap(([name, s]) => (s.ports ?? []).map((p) => [name, p] as const));
  assert.ok(published.some(([name]) => name === 'grafana'), 'grafana publishes its port');
  for (const [name, p] of published) assert.match(String(p), /^127\.0\.0\.1:/, `${name} publishes ${JSON.stringify(p)}`);
});

test('the worker can scale: no container_name, no fixed host port', () => {
  const worker = service('worker');
  assert.equal(worker.container_name, undefined);
  for (const p of worker.ports ?? []) assert.equal(fixedHostPort(p), null, `worker publishes fixed host port ${JSON.stringify(p)}`);
  assert.deepEqual(service('api').ports?.map(fixedHostPort), ['3000'], 'the api is on localhost:3000');
});

test('relay, worker and timers keep the image\'s healthcheck, on the metrics port they set', () => {
  for (const name of ['relay', 'worker', 'timers']) {
    assert.equal(service(name).healthcheck?.disable, undefined, `${name}'s healthcheck is disabled`);
    assert.ok(envOf(service(name)).ATS_METRICS_PORT, `${name} sets ATS_METRICS_PORT, where the image's healthcheck asks /healthz`);
  }
});

test('mysql, kafka and api have healthchecks; the api one asks /readyz', () => {
  for (const name of ['mysql', 'kafka', 'api']) {
    assert.ok(healthTest(service(name)), `${name} has a healthcheck test`);
    assert.notEqual(service(name).healthcheck?.disable, true, `${name}'s healthcheck is disabled`);
  }
  assert.match(healthTest(service('mysql')), /mysqladmin ping/);
  assert.match(healthTest(service('kafka')), /kafka-broker-api-versions\.sh --bootstrap-server localhost:9092/);
  assert.match(healthTest(service('api')), /\/readyz/);
});

test('scheduler services are built from the Dockerfile, wait for healthy mysql and kafka, restart unless stopped', () => {
  for (const name of SCHEDULER_SERVICES) {
    const s = service(name);
    const build = typeof s.build === 'string' ? { context: s.build } : s.build;
    assert.equal(build?.context, '.', `${name} builds from the repository root`);
    assert.equal(build?.dockerfile ?? 'Dockerfile', 'Dockerfile');
    const deps = s.depends_on as Record<string, { condition?: string }>;
    for (const dep of ['mysql', 'kafka']) assert.equal(deps?.[dep]?.condition, 'service_healthy', `${name} waits for ${dep}`);
    assert.equal(s.restart, 'unless-stopped');
  }
});

test('named volumes used by services are declared', () => {
  for (const [name, s] of Object.entries(loadCompose().services)) {
    for (const v of s.volumes ?? []) {
      const source = String(v).split(':')[0]!;
      const declared = loadCompose().volumes ?? {};
      if (!source.startsWith('.') && !source.startsWith('/')) assert.ok(source in declared, `${name}: volume ${source} is not declared`);
    }
  }
});

// ---------------------------------------------------------------- Dockerfile

type Instruction = { op: string; args: string };

/** Instructions of a Dockerfile: comments dropped, `\` continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.trimEnd();
    if (line.endsWith('\\')) current += line.slice(0, -1) + ' ';
    else if ((current += line).trim()) logical.push(current.trim()), (current = '');
    else current = '';
  }
  return logical.map((l) => {
    const [op, ...rest] = l.split(/\s+/);
    return { op: op!.toUpperCase(), args: rest.join(' ') };
  });
}

function stages(instructions: Instruction[]): Instruction[][] {
  const out: Instruction[][] = [];
  for (const i of instructions) {
    if (i.op === 'FROM') out.push([]);
    out[out.length - 1]?.push(i);
  }
  return out;
}

const execForm = (args: string): string[] => {
  assert.ok(args.startsWith('['), `exec form expected (so signals reach node), got: ${args}`);
  return JSON.parse(args) as string[];
};

const dockerfile = stages(parseDockerfile(read('Dockerfile')));
const build = dockerfile[0]!;
const runtime = dockerfile[dockerfile.length - 1]!;
const last = (op: string) => [...runtime].reverse().find((i) => i.op === op);
/** Sources a stage COPYs from the context (not from another stage). */
const copiedBy = (stage: Instruction[]) => stage.filter((i) => i.op === 'COPY' && !i.args.includes('--from')).flatMap((i) => i.args.split(/\s+/).slice(0, -1));
/** Packages only the build needs: the image runs built JavaScript and a prebuilt UI bundle. */
const BUILD_ONLY = ['tsx', 'esbuild', '@dagrejs/dagre', 'typescript'];

test('Dockerfile is multi-stage on node:20-bookworm-slim: it builds, then keeps production deps only', () => {
  assert.ok(dockerfile.length >= 2, 'a build stage and a runtime stage');
  for (const s of dockerfile) assert.match(s[0]!.args, /^node:20-bookworm-slim\b/);
  const runs = build.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
  assert.match(runs, /npm ci\b/);
  assert.match(runs, /npm run build\b/);
  assert.match(runs, /npm prune --omit=dev\b/);
  const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
  for (const name of BUILD_ONLY) {
    assert.equal(pkg.dependencies[name], undefined, `${name} is needed only to build: a devDependency`);
    assert.ok(pkg.devDependencies[name], `${name} is a devDependency`);
  }
});

test('the runtime stage runs as a non-root user and starts dist/cli/main.js start with the scheduler\'s node flags, no loader', () => {
  const user = last('USER')?.args.split(':')[0];
  assert.ok(user && user !== 'root' && user !== '0', `runtime USER is ${user ?? 'unset (root)'}`);
  const argv = [...execForm(last('ENTRYPOINT')!.args), ...execForm(last('CMD')!.args)];
  assert.deepEqual(argv, ['node', ...NODE_FLAGS, 'dist/cli/main.js', 'start']);
  const env = runtime.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
  assert.match(env, /HOST=0\.0\.0\.0/);
  assert.match(env, /NODE_ENV=production/);
  assert.ok(last('EXPOSE')?.args.split(/\s+/).includes(SETTINGS.port.default), 'EXPOSE the default PORT');
  assert.match(last('HEALTHCHECK')?.args ?? '', /fetch\(.*\/healthz/);
});

test('the image\'s healthcheck asks /healthz on the API port with the api role, else on ATS_METRICS_PORT, and passes with neither', async () => {
  const args = last('HEALTHCHECK')!.args;
  const argv = execForm(args.slice(args.indexOf('CMD ') + 4));
  assert.deepEqual(argv.slice(0, 2), ['node', '-e']);
  const check = (env: Record<string, string>) => new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ['-e', argv[2]!], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore' });
    child.on('exit', (code) => resolve(code));
  });
  const server = await serveMetrics({ contentType: 'text/plain', metrics: async () => '' }, 0, '127.0.0.1');
  try {
    const port = new URL(server.url).port;
    assert.equal(await check({ ATS_ROLES: 'worker', ATS_METRICS_PORT: port }), 0, 'a worker answering on its metrics port');
    assert.equal(await check({ ATS_ROLES: 'relay,timers', ATS_METRICS_PORT: port }), 0);
    assert.equal(await check({ ATS_ROLES: 'api', PORT: port }), 0, 'the api port');
    assert.equal(await check({ ATS_ROLES: 'worker' }), 0, 'no port to ask: healthy');
  } finally {
    await server.close();
  }
  // Nothing answers there any more.
  const closed = new URL(server.url).port;
  assert.equal(await check({ ATS_ROLES: 'worker', ATS_METRICS_PORT: closed }), 1, 'a worker whose metrics port does not answer');
  assert.equal(await check({ ATS_ROLES: 'api,worker', PORT: closed, ATS_METRICS_PORT: '1' }), 1, 'the api role: its port, not the metrics one');
});

test('npm start runs the sources (no build step) with the same node flags as the image', () => {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, `node ${NODE_FLAGS.join(' ')} --conditions=ats-source --import tsx cli/main.ts start`);
  assert.equal(pkg.scripts.build, 'node --import tsx scripts/build.ts');
});

test('the build stage copies every source folder, the runtime stage only dist/ and production node_modules, and .dockerignore keeps the sources', () => {
  const copied = copiedBy(build);
  for (const src of ['machines', 'engine', 'adapters', 'server', 'cli', 'client', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build.ts']) {
    assert.ok(copied.includes(src), `build stage does not COPY ${src}`);
  }
  for (const src of copied) assert.ok(existsSync(new URL(src, root)), `COPY ${src}: not in the repository`);
  const fromBuild = runtime.filter((i) => i.op === 'COPY' && i.args.includes('--from=build')).map((i) => i.args.split(/\s+/)[1]);
  assert.deepEqual(fromBuild.sort(), ['/app/dist', '/app/node_modules']);
  assert.deepEqual(copiedBy(runtime), ['package.json'], 'the runtime stage copies no sources');
  const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const src of copied) assert.ok(!ignored.includes(src), `.dockerignore drops ${src}`);
  assert.ok(ignored.includes('scripts/*') && ignored.includes('!scripts/build.ts'), '.dockerignore keeps scripts/build.ts only');
  for (const secret of ['.env', 'node_modules', 'data', 'dist']) assert.ok(ignored.includes(secret), `.dockerignore must drop ${secret}`);
});

// ---------------------------------------------------------------- tests/jobs.http

type HttpRequest = { method: string; url: string; headers: Record<string, string>; body: string; handler: string; line: number };

/**
 * Requests of a REST Client file: `###` separates them; `@var = value` defines
 * variables; `# @name x` names one; a `> {% ... %}` line after a request is its
 * response handler (JetBrains' and httpyac's), not part of its body.
 */
function parseHttpFile(text: string): { vars: Record<string, string>; requests: HttpRequest[]; names: string[] } {
  const vars: Record<string, string> = {};
  const requests: HttpRequest[] = [];
  const names: string[] = [];
  let req: HttpRequest | null = null;
  let inBody = false;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line.startsWith('###')) return void ((req = null), (inBody = false));
    const name = /^(?:#|\/\/)\s*@name\s+(\S+)/.exec(line);
    if (name) return void names.push(name[1]!);
    if (!req && (line.startsWith('#') || line.startsWith('//') || !line)) return;
    const v = /^@([A-Za-z_][\w-]*)\s*=\s*(.*)$/.exec(line);
    if (!req && v) return void (vars[v[1]!] = v[2]!);
    if (!req) {
      const m = /^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(\S+)(?:\s+HTTP\/[\d.]+)?$/.exec(line);
      assert.ok(m, `jobs.http line ${index + 1}: not a request line: ${line}`);
      requests.push((req = { method: m[1]!, url: m[2]!, headers: {}, body: '', handler: '', line: index + 1 }));
    } else if (line.startsWith('> {%')) {
      req.handler += line;
    } else if (!inBody && line) {
      const h = /^([\w-]+):\s*(.*)$/.exec(line);
      assert.ok(h, `jobs.http line ${index + 1}: not a header: ${line}`);
      req.headers[h[1]!.toLowerCase()] = h[2]!;
    } else {
      inBody = true;
      req.body += raw + '\n';
    }
  });
  return { vars, requests, names };
}

const SAMPLE_ID = '01JBZ8Y0M6P4V2Q7R3S5T9W1XA';
const http = parseHttpFile(read('tests/jobs.http'));

/** `{{var}}` and `{{name.response.body.id}}` filled in (no other variable: each client has its own dynamic ones). */
function fill(text: string): string {
  return text.replace(/\{\{\s*([^}]+?)\s*\}\}/g, (_, expr: string) => {
    if (expr in http.vars) return http.vars[expr]!;
    const ref = /^(\w+)\.response\.body\.id$/.exec(expr);
    if (ref) {
      assert.ok(http.names.includes(ref[1]!), `{{${expr}}}: no request is named ${ref[1]}`);
      return SAMPLE_ID;
    }
    assert.fail(`jobs.http uses an unknown variable {{${expr}}}`);
  });
}

const routeOf = (method: string, path: string) =>
  CONTRACT.find(([m, p]) => m === method && new RegExp(`^${p.replace(/:id\b/g, '[^/]+')}$`).test(path));

test('jobs.http targets the api service and every request is a route of the REST contract', () => {
  assert.equal(http.vars.baseUrl, 'http://localhost:3000');
  assert.ok(http.requests.length >= CONTRACT.length, `only ${http.requests.length} requests`);
  for (const r of http.requests) {
    const url = new URL(fill(r.url));
    assert.equal(url.origin, http.vars.baseUrl, `line ${r.line}: ${r.url}`);
    assert.ok(routeOf(r.method, url.pathname), `line ${r.line}: ${r.method} ${url.pathname} is not in the REST contract`);
    for (const key of url.searchParams.keys()) assert.ok(LIST_QUERY.has(key), `line ${r.line}: unknown query parameter ${key}`);
  }
});

test('jobs.http tries every route of the contract', () => {
  const used = new Set(http.requests.map((r) => routeOf(r.method, new URL(fill(r.url)).pathname)));
  for (const route of CONTRACT) assert.ok(used.has(route), `no request for ${route.join(' ')}`);
});

test('jobs.http batch items are submit bodies with an optional idempotencyKey', () => {
  const batches = http.requests.filter((r) => r.method === 'POST' && new URL(fill(r.url)).pathname === '/v1/jobs/batch');
  assert.ok(batches.length > 0);
  for (const r of batches) {
    assert.equal(r.headers['content-type'], 'application/json', `line ${r.line}`);
    const { jobs, ...rest } = JSON.parse(fill(r.body)) as { jobs: Array<Record<string, unknown>> };
    assert.deepEqual(Object.keys(rest), [], `line ${r.line}: only jobs`);
    for (const item of jobs) {
      assert.ok(typeof item.type === 'string' && 'payload' in item, `line ${r.line}: type and payload are required`);
      for (const k of Object.keys(item)) assert.ok(SUBMIT_FIELDS.has(k) || k === 'idempotencyKey', `line ${r.line}: unknown field ${k}`);
    }
  }
});

test('jobs.http submits valid bodies, an idempotent pair, a failing job and a delayed one', () => {
  const submits = http.requests.filter((r) => r.method === 'POST' && new URL(fill(r.url)).pathname === '/v1/jobs');
  const bodies = submits.map((r) => {
    assert.equal(r.headers['content-type'], 'application/json', `line ${r.line}`);
    const body = JSON.parse(fill(r.body)) as Record<string, unknown>;
    assert.ok(typeof body.type === 'string' && 'payload' in body, `line ${r.line}: type and payload are required`);
    for (const key of Object.keys(body)) assert.ok(SUBMIT_FIELDS.has(key), `line ${r.line}: unknown field ${key}`);
    return { body, key: r.headers['idempotency-key'] };
  });
  const keyed = bodies.filter((b) => b.key);
  assert.ok(keyed.some((a, i) => keyed.some((b, j) => i !== j && a.key === b.key)), 'an Idempotency-Key sent twice');
  assert.ok(bodies.some(({ body }) => body.type === 'demo.echo'));
  assert.ok(bodies.some(({ body }) => body.type === 'demo.fail' && body.maxAttempts === 2));
  assert.ok(bodies.some(({ body }) => typeof body.runAt === 'string' && !Number.isNaN(Date.parse(body.runAt))));
});

test('jobs.http chains ids the same way in REST Client, JetBrains and httpyac', () => {
  const set = new Map<string, number>(); // name -> line of the GET whose handler stores it
  for (const r of http.requests) {
    for (const [, name] of r.url.matchAll(/\{\{(\w+)\.response\.body\.id\}\}/g)) {
      assert.ok(set.has(name!), `line ${r.line}: no handler above stores ${name}.response.body.id for JetBrains and httpyac`);
    }
    if (!r.handler) continue;
    // REST Client sends a handler as the request's body: harmless only on a GET without one.
    assert.equal(r.method, 'GET', `line ${r.line}: a response handler on a ${r.method}`);
    assert.equal(r.body.trim(), '', `line ${r.line}: a GET with a handler has no body of its own`);
    const stored = /^> \{% client\.global\.set\("(\w+)\.response\.body\.id", response\.body\.jobs\[0\]\.id\); %\}$/.exec(r.handler);
    assert.ok(stored, `line ${r.line}: unexpected handler ${r.handler}`);
    assert.ok(http.names.includes(stored[1]!), `line ${r.line}: no request is named ${stored[1]}`);
    set.set(stored[1]!, r.line);
  }
  assert.deepEqual([...set.keys()].sort(), [...http.names].sort(), 'each named request has its handler');
  // Dynamic variables differ between the clients ($datetime, $isoTimestamp, ...): the file uses none.
  const text = read('tests/jobs.http');
  assert.doesNotMatch(text, /\{\{\s*\$/);
});
