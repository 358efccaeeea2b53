/**
 * The built package, as the Docker image runs it and as a project that
 * installed the tarball of `npm pack` has it: `npm run build`, then the
 * tarball's files with only the production dependencies (no tsx, esbuild,
 * dagre or TypeScript reachable) start with `node dist/cli/main.js start`,
 * run a job and serve the visualizer's prebuilt bundle; `cli/bin.mjs` runs
 * dist/ when no sources are beside it.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { SETTINGS } from '../../cli/config.js';
import { NODE_FLAGS } from '../../cli/node-flags.js';
import { freePort } from '../helpers/ports.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const BUILD_ONLY = ['tsx', 'esbuild', '@dagrejs/dagre', 'typescript'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Top-level package folders (`name` or `@scope/name`) of the production dependency tree. */
function productionPackages(): string[] {
  const ls = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8' });
  assert.ok(ls.stdout.trim(), `npm ls printed nothing: ${ls.stderr}`);
  const prefix = join(root, 'node_modules') + '/';
  const names = new Set<string>();
  for (const line of ls.stdout.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const [first, second] = line.slice(prefix.length).split('/');
    names.add(first!.startsWith('@') ? `${first}/${second}` : first!);
  }
  return [...names].sort();
}

/** What `npm pack --json` says of the tarball it wrote. */
interface Tarball {
  filename: string;
  size: number;
  unpackedSize: number;
  files: Array<{ path: string; size: number }>;
}

/** `folder/node_modules`: each production package, linked to the checkout's (but those in `except`). */
function linkProductionPackages(folder: string, except: readonly string[] = []): void {
  for (const name of packages) {
    if (except.includes(name)) continue;
    const target = join(folder, 'node_modules', name);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(join(root, 'node_modules', name), target, 'dir');
  }
}

/** The environment of a started scheduler: none of the settings of the test's own. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const s of Object.values(SETTINGS)) delete env[s.env];
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return env;
}

let packages: string[] = [];
let tarball: Tarball;
let dir: string;
let server: ChildProcess | undefined;
let base: string;
let stdout = '';
let stderr = '';

before(async () => {
  const built = spawnSync('npm', ['run', 'build'], { cwd: root, encoding: 'utf8' });
  assert.equal(built.status, 0, `npm run build failed:\n${built.stdout}\n${built.stderr}`);
  dir = mkdtempSync(join(tmpdir(), 'ats-built-'));
  // What `npm pack` puts in the tarball (the build is done: no prepack again), unpacked as an install would.
  const packed = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8' });
  assert.equal(packed.status, 0, `npm pack failed:\n${packed.stdout}\n${packed.stderr}`);
  tarball = (JSON.parse(packed.stdout) as Tarball[])[0]!;
  const untar = spawnSync('tar', ['-xzf', join(dir, tarball.filename), '--strip-components=1', '-C', dir], { encoding: 'utf8' });
  assert.equal(untar.status, 0, `tar failed: ${untar.stderr}`);
  rmSync(join(dir, tarball.filename));
  packages = productionPackages();
  for (const name of BUILD_ONLY) assert.ok(!packages.includes(name), `${name} is a production dependency`);
  linkProductionPackages(dir);
  const env = cleanEnv();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(process.execPath, [...NODE_FLAGS, 'dist/cli/main.js', 'start'], {
    cwd: dir,
    env: { ...env, PORT: String(port), HOST: '127.0.0.1', ATS_DATA_DIR: join(dir, 'data'), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout!.on('data', (d) => (stdout += d));
  server.stderr!.on('data', (d) => (stderr += d));
  const end = Date.now() + 60_000;
  for (;;) {
    if (server.exitCode !== null) assert.fail(`dist/cli/main.js exited ${server.exitCode}:\n${stdout}\n${stderr}`);
    // Ready, not only alive: /healthz answers 200 already while the process starts.
    const ok = await fetch(`${base}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > end) assert.fail(`not ready within 60 s:\n${stdout}\n${stderr}`);
    await sleep(100);
  }
});

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the tarball holds what the package runs and reads, and nothing else', () => {
  const paths = tarball.files.map((f) => f.path).sort();
  const outside = paths.filter((p) => !/^(dist|docs)\//.test(p) && !['README.md', 'package.json', 'cli/bin.mjs'].includes(p));
  assert.deepEqual(outside, [], 'files outside dist/, docs/, README.md, package.json and cli/bin.mjs');
  for (const engine of ['mysql', 'sqlite']) {
    const shipped = paths.filter((p) => p.startsWith(`dist/adapters/${engine}/migrations/`)).map((p) => p.split('/').pop()).sort();
    const source = readdirSync(join(root, `adapters/${engine}/migrations`)).sort();
    assert.deepEqual(shipped, source, `the ${engine} migrations`);
  }
  for (const p of ['dist/server/ui/page/index.html', 'dist/server/ui/page/styles.css', 'dist/server/ui/bundle/app.js', 'docs/asyncapi.yaml',
    'dist/client/index.js', 'dist/client/index.d.ts', 'dist/engine/public.js', 'dist/engine/public.d.ts']) {
    assert.ok(paths.includes(p), `${p} is not in the tarball`);
  }
  // Every doc the README, the CLI's messages and the API's descriptions name (docs/*.md) ships.
  for (const doc of readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md'))) assert.ok(paths.includes(`docs/${doc}`), `docs/${doc}`);
  assert.deepEqual(paths.filter((p) => /(^|\/)(tests?|bench|property-tests|\.cache|node_modules|data)\/|\.test\.|\.env|\.sqlite|\.tgz$/.test(p)), []);
  assert.ok(tarball.size < 4 * 1024 * 1024, `the tarball is ${tarball.size} bytes`);
});

test('dist/ holds production code only: no tests, no test helpers, no benchmarks', () => {
  for (const folder of ['tests', 'bench', 'property-tests', 'scripts']) assert.ok(!existsSync(join(dir, 'dist', folder)), `dist/${folder} exists`);
  const files = readdirSync(join(dir, 'dist'), { recursive: true, encoding: 'utf8' });
  assert.deepEqual(files.filter((f) => /\.test\.|(^|\/)test-/.test(f)), []);
  assert.ok(files.includes('cli/main.js') && files.includes('server/app.js'));
});

test('the build-only packages cannot be loaded from the built package', () => {
  for (const name of BUILD_ONLY) {
    const probe = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(name)})`], { cwd: join(dir, 'dist'), encoding: 'utf8' });
    assert.notEqual(probe.status, 0, `${name} resolved from dist/`);
    assert.match(probe.stderr, /ERR_MODULE_NOT_FOUND|Cannot find (package|module)/);
  }
});

test('node dist/cli/main.js start runs a job to done', async () => {
  const res = await fetch(`${base}/v1/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'demo.echo', payload: { built: true } }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const { id } = (await res.json()) as { id: string };
  const end = Date.now() + 30_000;
  let job: { state: string; result?: unknown } = { state: 'pending' };
  while (job.state !== 'done' && Date.now() < end) {
    await sleep(50);
    job = (await (await fetch(`${base}/v1/jobs/${id}`)).json()) as typeof job;
  }
  assert.equal(job.state, 'done', `${JSON.stringify(job)}\n${stderr}`);
  assert.deepEqual(job.result, { built: true });
});

test('the visualizer serves the bundle npm run build wrote, and its page', async () => {
  const js = await fetch(`${base}/ui/assets/app.js`);
  assert.equal(js.status, 200);
  assert.ok(Buffer.from(await js.arrayBuffer()).equals(readFileSync(join(dir, 'dist/server/ui/bundle/app.js'))), 'served app.js is the prebuilt bundle');
  const page = await fetch(`${base}/ui`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<html/i);
  const migrations = join(dir, 'dist/adapters/mysql/migrations/0001_init.sql');
  assert.ok(existsSync(migrations), 'MySQL migrations are in dist/');
});

test('a module outside the package imports its entries by name: dist/ JavaScript, with types', () => {
  const consumer = join(dir, 'consumer');
  mkdirSync(join(consumer, 'node_modules'), { recursive: true });
  symlinkSync(dir, join(consumer, 'node_modules', 'ai-task-scheduler'), 'dir');
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));
  writeFileSync(
    join(consumer, 'main.ts'),
    [
      "import { defineHandler, NonRetryableError, Type, type AbortKind, type AbortReason, type HandlerContext } from 'ai-task-scheduler/handlers';",
      "export const why = (ctx: HandlerContext): AbortKind | null => (ctx.signal.aborted ? (ctx.signal.reason as AbortReason).kind : null);",
      "import { createClient, type ApiError } from 'ai-task-scheduler/client';",
      "export const handlers = [defineHandler('x.y', { payload: Type.Object({ n: Type.Integer() }), run: async (p, ctx: HandlerContext) => p.n + ctx.attempt })];",
      "const client = createClient({ url: 'http://127.0.0.1:1' });",
      "const e: ApiError | null = null;",
      "console.log(typeof client.submit, new NonRetryableError('no').name, handlers.length, e, import.meta.resolve('ai-task-scheduler/client'));",
    ].join('\n'),
  );
  // Compiled as a consumer would: no `ats-source` condition, so the types are dist/*.d.ts.
  // (skipLibCheck: xstate's own declarations do not check under these flags.)
  const tsc = spawnSync(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '--strict', '--skipLibCheck', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022',
      '--types', 'node', '--typeRoots', join(root, 'node_modules/@types'), '--lib', 'ES2023,DOM', '--outDir', 'out', 'main.ts'],
    { cwd: consumer, encoding: 'utf8' },
  );
  assert.equal(tsc.status, 0, `a consumer of the entries does not compile:\n${tsc.stdout}${tsc.stderr}`);
  const out = spawnSync(process.execPath, ['out/main.js'], { cwd: consumer, encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout.trim(), /^function NonRetryableError 1 null file:\/\/.*\/dist\/client\/index\.js$/);
});

test('cli/bin.mjs runs dist/ when no sources are beside it', () => {
  const help = spawnSync(process.execPath, ['cli/bin.mjs', '--help'], { cwd: dir, encoding: 'utf8' });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^usage: ats <command>/);
});

test('LOG_FORMAT=pretty works from the built package (pino-pretty is a production dependency)', async () => {
  const env = cleanEnv();
  const child = spawn(process.execPath, [...NODE_FLAGS, 'dist/cli/main.js', 'start'], {
    cwd: dir,
    env: { ...env, PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: join(dir, 'data-pretty'), LOG_FORMAT: 'pretty' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let stopping = false; // one SIGTERM: a second one would mean "exit without finishing the shutdown"
  child.stdout!.on('data', (d) => {
    out += d;
    if (!stopping && out.includes('ats ready')) stopping = child.kill('SIGTERM');
  });
  child.stderr!.on('data', (d) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(timer);
  assert.equal(code, 0, `${out}\n${err}`);
  assert.match(out, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ats ready: /m);
});

/** `node dist/cli/main.js ...args` in `cwd`, to its end (at most 60 s). */
function runBuilt(cwd: string, args: readonly string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [...NODE_FLAGS, 'dist/cli/main.js', ...args], { cwd, env: { ...cleanEnv(), ...env }, encoding: 'utf8', timeout: 60_000 });
}

// Node 22.18+ / 23.6+ strip the types themselves: there the module loads.
const stripsTypes = Boolean((process.features as { typescript?: unknown }).typescript);

test('a TypeScript handler module on a node that runs no TypeScript: the start says what to do', { skip: stripsTypes && 'this node runs TypeScript' }, () => {
  const handlers = join(dir, 'handlers.ts');
  writeFileSync(handlers, "import { defineHandler, Type } from 'ai-task-scheduler/handlers';\nexport const handlers = [defineHandler('t.s', { payload: Type.Object({}), run: async () => 1 })];\n");
  const r = runBuilt(dir, ['start', '--handlers', './handlers.ts'], { PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: join(dir, 'data-ts') });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^ats: cannot start: ATS_HANDLERS \(--handlers\): \.\/handlers\.ts failed to load: .*"\.ts".*: node v[\d.]+ does not run TypeScript: compile the module to JavaScript, or run node 22\.18\+ \/ 23\.6\+$/m);
});

test('better-sqlite3 installed without its native module (install scripts skipped): the embedded store says so and how to build it', () => {
  // The tarball's files beside production packages whose better-sqlite3 has its JavaScript but no build/.
  const bare = join(dir, 'no-native');
  mkdirSync(bare);
  for (const f of ['dist', 'cli', 'package.json']) cpSync(join(dir, f), join(bare, f), { recursive: true });
  linkProductionPackages(bare, ['better-sqlite3']);
  const sqlite = join(bare, 'node_modules/better-sqlite3');
  mkdirSync(sqlite, { recursive: true });
  for (const f of ['package.json', 'lib']) cpSync(join(root, 'node_modules/better-sqlite3', f), join(sqlite, f), { recursive: true });
  const dataDir = join(bare, 'data');
  const expected = /^ats: (cannot start: |cannot use the embedded store \S+: )?the embedded store \(ATS_DATA_DIR\) needs better-sqlite3's native module, which did not load \(Could not locate the bindings file\.[^)]*\): build it with "npm rebuild better-sqlite3" under this node \(v[\d.]+\) \(an install with --ignore-scripts, or whose npm did not allow better-sqlite3's install script, skipped it\), or set MYSQL_URL \(--mysql-url\) to use MySQL$/m;
  const start = runBuilt(bare, ['start'], { PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: dataDir });
  assert.equal(start.status, 1, start.stderr);
  assert.match(start.stderr, expected);
  assert.doesNotMatch(start.stderr, /Tried:|cannot lock/);
  assert.ok(!existsSync(dataDir), 'the data folder was made');
  const keys = runBuilt(bare, ['keys', 'ls'], { ATS_DATA_DIR: dataDir });
  assert.equal(keys.status, 1, keys.stderr);
  assert.match(keys.stderr, expected);
});
