/**
 * `ats start` when starting fails: the roles after the stores opened (the
 * api's port is taken), Kafka unreachable, a handler module that does not
 * load: one clear line naming what failed and exit code 1 within seconds, like
 * an unreachable database, so a supervisor sees a failed start and retries. A
 * bad setting, or an empty value for a flag that needs one, exits 2 naming it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import Database from 'better-sqlite3';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { createTestDatabase, requireMysql } from '../tests/helpers/mysql.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** `ats start ARGS...` with these settings and no MySQL/Kafka unless they set them: its exit code and stderr (killed after 30 s: null). */
async function startWith(extra: Record<string, string>, args: readonly string[] = []): Promise<{ code: number | null; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-start-fail-'));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: dir, LOG_LEVEL: 'error' };
    delete env.MYSQL_URL;
    delete env.KAFKA_BROKERS;
    delete env.NODE_TEST_CONTEXT;
    Object.assign(env, extra);
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'start', ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    // Not a bound on how fast it exits (under a loaded CI a start takes 20 s and more): only a hang ends here.
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c))).finally(() => clearTimeout(timer));
    return { code, stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `run` with the path of a file `name` holding `text`, in a folder of its own, removed after. */
async function withFile(name: string, text: string, run: (file: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-start-file-'));
  try {
    const file = join(dir, name);
    writeFileSync(file, text);
    await run(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

it('exits 1 with "cannot start" and no stack trace when the api port is taken', { timeout: 120_000 }, async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as { port: number }).port;
  try {
    const started = Date.now();
    const { code, stderr } = await startWith({ PORT: String(port) });
    assert.equal(code, 1, stderr);
    assert.ok(Date.now() - started < 30_000, `exited after ${Date.now() - started} ms`);
    assert.match(stderr, /^ats: cannot start: .*EADDRINUSE/m);
    // It names the setting and the port, so the user knows what to change.
    assert.match(stderr, new RegExp(`^ats: cannot start: PORT \\(--port\\) ${port} is in use on 127\\.0\\.0\\.1 .*: stop what listens there, or set PORT to another port$`, 'm'), stderr);
    assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
  } finally {
    taken.close();
  }
});

it('exits 1 naming ATS_METRICS_PORT when the metrics port is taken', { timeout: 120_000 }, async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as { port: number }).port;
  try {
    const { code, stderr } = await startWith({ ATS_METRICS_PORT: String(port) });
    assert.equal(code, 1, stderr);
    assert.match(stderr, new RegExp(`^ats: cannot start: ATS_METRICS_PORT \\(--metrics-port\\) ${port} is in use on 127\\.0\\.0\\.1 .*EADDRINUSE.*: stop what listens there, or set ATS_METRICS_PORT to another port$`, 'm'), stderr);
    assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
  } finally {
    taken.close();
  }
});

it('exits 2 (a bad setting) naming ATS_HANDLERS when a handler module does not exist', { timeout: 120_000 }, async () => {
  const { code, stderr } = await startWith({ ATS_HANDLERS: './no/such/handlers.ts' });
  assert.equal(code, 2, stderr);
  assert.match(stderr, /^ats: ATS_HANDLERS \(--handlers\): \.\/no\/such\/handlers\.ts does not exist/m);
  assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
});

it('exits 2 naming ATS_HANDLERS when it names a folder, not a module file (not 1 as a module that fails to load)', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-handlers-dir-'));
  try {
    const { code, stderr } = await startWith({ ATS_HANDLERS: dir });
    assert.equal(code, 2, stderr);
    assert.match(stderr, new RegExp(`^ats: ATS_HANDLERS \\(--handlers\\): ${dir} is a folder, not a module file$`, 'm'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('exits 2 naming ATS_HANDLERS when a handler module exports neither register(registry) nor handlers', { timeout: 120_000 }, async () => {
  await withFile('no-register.mjs', 'export const somethingElse = 1;\n', async (file) => {
    const { code, stderr } = await startWith({ ATS_HANDLERS: file });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /^ats: ATS_HANDLERS \(--handlers\): .*no-register\.mjs exports neither register\(registry\) nor handlers/m);
  });
});

it('exits 2 naming HOST and ATS_AUTH when bound to another interface than loopback with no API key', { timeout: 120_000 }, async () => {
  const { code, stderr } = await startWith({ HOST: '0.0.0.0' });
  assert.equal(code, 2, stderr);
  assert.match(stderr, /^ats: HOST \(--host\) is 0\.0\.0\.0, not loopback, and no API key exists: create one with `ats keys create .*`, or set ATS_AUTH=off/m);
  assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
});

it('exits 2 naming ATS_TRUST_PROXY when it would trust every peer (true) or names no address or CIDR', { timeout: 120_000 }, async () => {
  const all = await startWith({ ATS_TRUST_PROXY: 'true' });
  assert.equal(all.code, 2, all.stderr);
  assert.match(all.stderr, /^ats: ATS_TRUST_PROXY \(--trust-proxy\): "true" would believe X-Forwarded-For from every peer, .*: list the proxies' addresses or CIDRs/m);
  const bad = await startWith({}, ['--trust-proxy', '10.0.0.0/33']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /^ats: ATS_TRUST_PROXY \(--trust-proxy\): "10\.0\.0\.0\/33" is not an address or CIDR/m);
  assert.doesNotMatch(bad.stderr, /^\s+at /m, 'no stack trace');
});

it('exits 1 naming ATS_HANDLERS, the module and the line when a handler module has a syntax error', { timeout: 120_000 }, async () => {
  await withFile('broken.mjs', 'export const ok = 1;\nexport const handlers = [;\n', async (file) => {
    const { code, stderr } = await startWith({ ATS_HANDLERS: file });
    assert.equal(code, 1, stderr);
    const at = file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    assert.match(stderr, new RegExp(`^ats: cannot start: ATS_HANDLERS \\(--handlers\\): ${at} failed to load: ${at}:2: Unexpected token ';'$`, 'm'));
    assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
  });
});

it('exits 1 naming ATS_HANDLERS and the module when a handler module throws while it loads', { timeout: 120_000 }, async () => {
  await withFile('throws.mjs', 'throw new Error("no DATABASE_URL for my handlers");\n', async (file) => {
    const { code, stderr } = await startWith({ ATS_HANDLERS: file });
    assert.equal(code, 1, stderr);
    // Where the module threw, without a stack trace: its file, line and column.
    const at = file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    assert.match(stderr, new RegExp(`^ats: cannot start: ATS_HANDLERS \\(--handlers\\): ${at} failed to load: no DATABASE_URL for my handlers \\(at ${at}:1:7\\)$`, 'm'));
    assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
  });
});

it('exits 1 naming ATS_HANDLERS and the module when a handler module throws a value that is no Error, shown as node prints it', { timeout: 120_000 }, async () => {
  for (const [name, text, shown] of [
    ['throws-bare.mjs', 'throw Object.assign(Object.create(null), { code: "E_CONFIG" });\n', "[Object: null prototype] { code: 'E_CONFIG' }"],
    ['register-throws-bare.mjs', 'export function register() { throw Object.create(null); }\n', '[Object: null prototype] {}'],
  ] as const) {
    await withFile(name, text, async (file) => {
      const { code, stderr } = await startWith({ ATS_HANDLERS: file });
      assert.equal(code, 1, stderr);
      const at = file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      const shownAt = shown.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      assert.match(stderr, new RegExp(`^ats: cannot start: ATS_HANDLERS \\(--handlers\\): ${at} failed to (load|register its handlers): ${shownAt}$`, 'm'), stderr);
    });
  }
});

it('exits 1 naming ATS_HANDLERS and the module when its register(registry) throws or its handlers are not defineHandler results', { timeout: 120_000 }, async () => {
  const cases: ReadonlyArray<readonly [string, string, RegExp]> = [
    // Where the module's own code threw, or called what threw; nothing for a fault found in what it exports.
    ['register-throws.mjs', 'export function register() { throw new Error("no SMTP_URL for my handlers"); }\n', /no SMTP_URL for my handlers \(at \/.*register-throws\.mjs:1:36\)$/m],
    ['twice.mjs', 'export function register(r) { r.register("demo.echo", async () => 1); }\n', /a handler for demo\.echo is already registered \(at \/.*twice\.mjs:1:33\)$/m],
    // A fault of what it exports: said once, after the module's name (not the module named twice).
    ['not-an-array.mjs', 'export const handlers = 5;\n', /failed to register its handlers: handlers must be an array of defineHandler\(\.\.\.\) results$/m],
    ['undefined-item.mjs', 'export const handlers = [undefined];\n', /failed to register its handlers: handlers\[0\] is undefined, not a defineHandler\(\.\.\.\) result$/m],
  ];
  for (const [name, text, why] of cases) {
    await withFile(name, text, async (file) => {
      const { code, stderr } = await startWith({ ATS_HANDLERS: file });
      assert.equal(code, 1, `${name}: ${stderr}`);
      const at = file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      assert.match(stderr, new RegExp(`^ats: cannot start: ATS_HANDLERS \\(--handlers\\): ${at} failed to register its handlers: `, 'm'), `${name}: ${stderr}`);
      assert.match(stderr, why, `${name}: ${stderr}`);
      assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
    });
  }
});

it('exits 1 naming ATS_HANDLERS, the module and the name pattern when it registers a handler for a job type no submit could name', { timeout: 120_000 }, async () => {
  const cases: ReadonlyArray<readonly [string, string, RegExp]> = [
    ['register-spaced.mjs', 'export function register(r) { r.register("send email", async () => 1); }\n', / \(at \/.*register-spaced\.mjs:1:33\)$/m],
    // A definition made by hand rather than by defineHandler: held to the same names.
    ['handlers-spaced.mjs', 'export const handlers = [{ type: "send email", run: () => 1, check: () => null }];\n', /as a submit's is$/m],
  ];
  for (const [name, text, end] of cases) {
    await withFile(name, text, async (file) => {
      const { code, stderr } = await startWith({ ATS_HANDLERS: file });
      assert.equal(code, 1, `${name}: ${stderr}`);
      const at = file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      assert.match(stderr, new RegExp(`^ats: cannot start: ATS_HANDLERS \\(--handlers\\): ${at} failed to register its handlers: register\\("send email"\\): a job type is 1 to 200 of A-Z a-z 0-9 \\. _ : - \\(\\^\\[A-Za-z0-9\\._:-\\]\\+\\$\\)`, 'm'), `${name}: ${stderr}`);
      assert.match(stderr, end, `${name}: ${stderr}`);
      assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
    });
  }
});

it('exits 2 naming the flag when one that takes a value is given an empty one (--port=), not start on the default port', { timeout: 120_000 }, async () => {
  for (const args of [['--port='], ['--port', ''], ['--role=']]) {
    const { code, stderr } = await startWith({}, args);
    assert.equal(code, 2, `${JSON.stringify(args)}: ${stderr}`);
    assert.match(stderr, new RegExp(`^ats: option ${args[0]!.replace(/=$/, '')} needs a value, got an empty one`), stderr);
  }
});

it('exits 2 naming the setting meant when an ATS_ variable is one misspelt, not start on its default; says it ignores another', { timeout: 120_000 }, async () => {
  const { code, stderr } = await startWith({ ATS_WORKER_CONCURENCY: '20' });
  assert.equal(code, 2, stderr);
  assert.match(stderr, /^ats: ATS_WORKER_CONCURENCY is not a setting: did you mean ATS_WORKER_CONCURRENCY \(--concurrency\)\?/m);
  // Far from every setting (another tool's): the start goes on, and says so (here to a data folder that is a file: exit 2).
  await withFile('a-file', '', async (file) => {
    const other = await startWith({ ATS_FROBNICATE: '1', ATS_DATA_DIR: file });
    assert.equal(other.code, 2, other.stderr);
    assert.match(other.stderr, /^ats: ATS_FROBNICATE is not a setting: ignored \(`ats start --help` lists the settings\)$/m);
  });
});

it('exits 1 naming HOST when it is not an address of this machine (node\'s message names no setting)', { timeout: 120_000 }, async () => {
  const { code, stderr } = await startWith({ HOST: '192.0.2.1', ATS_AUTH: 'off' });
  assert.equal(code, 1, stderr);
  assert.match(stderr, /^ats: cannot start: HOST \(--host\) 192\.0\.2\.1 is not an address of this machine \(listen EADDRNOTAVAIL: .*\): set HOST to one of its addresses/m);
});

it('exits 2 naming MYSQL_URL when the driver refuses one of its options (an ssl profile it does not know), not 1 as an unreachable MySQL', { timeout: 120_000 }, async () => {
  for (const [ssl, said] of [['garbage', /Unknown SSL profile 'garbage'/], ['true', /SSL profile must be an object/]] as const) {
    const { code, stderr } = await startWith({ MYSQL_URL: `mysql://root:secret@127.0.0.1:1/ats?ssl=${ssl}` });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /^ats: MYSQL_URL \(--mysql-url\): the driver refuses its options: /m);
    assert.match(stderr, said);
    assert.doesNotMatch(stderr, /secret/, 'never the password');
  }
});

it('exits 2 naming MYSQL_URL when its database is another program\'s (a jobs table of its own), not 1 after half a schema made', { timeout: 120_000 }, async (t) => {
  if (!(await requireMysql())) return t.skip('MariaDB not reachable');
  const db = await createTestDatabase();
  const conn = await createConnection(db.url);
  try {
    await conn.query('CREATE TABLE jobs (id INT PRIMARY KEY, title VARCHAR(100))');
    const { code, stderr } = await startWith({ MYSQL_URL: db.url });
    assert.equal(code, 2, stderr);
    assert.match(stderr, new RegExp(`^ats: MYSQL_URL \\(--mysql-url\\): the MySQL database ${db.name} is not the scheduler's: it holds a table named as the scheduler's \\(jobs\\)`, 'm'));
    const [tables] = await conn.query<RowDataPacket[]>('SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE()');
    assert.deepEqual(tables.map((r) => String(r.t)), ['jobs'], 'nothing made beside it');
  } finally {
    await conn.end();
    await db.drop();
  }
});

it('exits 2 naming ATS_DATA_DIR when it names a file', { timeout: 120_000 }, async () => {
  await withFile('a-file', '', async (file) => {
    const { code, stderr } = await startWith({ ATS_DATA_DIR: file });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /^ats: ATS_DATA_DIR \(--data-dir\): .*a-file cannot be made a folder: EEXIST/m);
  });
});

it('exits 2 naming ATS_DATA_DIR and its lock file when the folder exists but its lock cannot be written', { timeout: 120_000 }, async () => {
  // What a folder this user may not write, or a read-only mount, does to the lock; made here so that root too meets it.
  const dir = mkdtempSync(join(tmpdir(), 'ats-start-lock-'));
  try {
    mkdirSync(join(dir, 'ats.lock'));
    const { code, stderr } = await startWith({ ATS_DATA_DIR: dir });
    assert.equal(code, 2, stderr);
    assert.match(stderr, new RegExp(`^ats: ATS_DATA_DIR \\(--data-dir\\): ${dir} cannot be used: ${dir}/ats\\.lock cannot be written \\(unable to open database file\\); the folder and its files must be writable by this user`, 'm'));
    assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('exits 2 naming ATS_DATA_DIR when its SQLite file cannot be opened, is no database or is another program\'s, not 1 as what a restart gets past', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-start-file-'));
  try {
    // A file that cannot be opened, made here so that root too meets it: a folder where the file goes (and said so).
    mkdirSync(join(dir, 'ats.sqlite'));
    const cannotOpen = await startWith({ ATS_DATA_DIR: dir });
    assert.equal(cannotOpen.code, 2, cannotOpen.stderr);
    assert.match(cannotOpen.stderr, new RegExp(`^ats: ATS_DATA_DIR \\(--data-dir\\): the SQLite database ${dir}/ats\\.sqlite cannot be used: unable to open database file \\(SQLITE_CANTOPEN\\); it is a folder, not a file: move it away, and the scheduler makes a new one$`, 'm'));
    rmSync(join(dir, 'ats.sqlite'), { recursive: true });
    writeFileSync(join(dir, 'ats.sqlite'), 'not a database, '.repeat(512));
    const notADatabase = await startWith({ ATS_DATA_DIR: dir });
    assert.equal(notADatabase.code, 2, notADatabase.stderr);
    assert.match(notADatabase.stderr, new RegExp(`^ats: ATS_DATA_DIR \\(--data-dir\\): the SQLite database ${dir}/ats\\.sqlite cannot be used: file is not a database \\(SQLITE_NOTADB\\); it is no SQLite database`, 'm'));
    rmSync(join(dir, 'ats.sqlite'));
    const theirs = new Database(join(dir, 'ats.sqlite'));
    theirs.exec('CREATE TABLE outbox (id INTEGER PRIMARY KEY, body TEXT)');
    theirs.close();
    const another = await startWith({ ATS_DATA_DIR: dir });
    assert.equal(another.code, 2, another.stderr);
    assert.match(another.stderr, new RegExp(`^ats: ATS_DATA_DIR \\(--data-dir\\): the SQLite database ${dir}/ats\\.sqlite is not the scheduler's: it holds a table named as the scheduler's \\(outbox\\)`, 'm'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('exits 2 naming ATS_DATA_DIR when it is under /proc, where no folder can be made (a recursive mkdir there never returns)', { timeout: 120_000 }, async () => {
  for (const dir of ['/proc/ats-no-such-folder', '/proc/ats-no-such-folder/data']) {
    const { code, stderr } = await startWith({ ATS_DATA_DIR: dir });
    assert.equal(code, 2, `${dir}: ${stderr}`); // not null: killed after 30 s, still making the folder
    assert.match(stderr, new RegExp(`^ats: ATS_DATA_DIR \\(--data-dir\\): ${dir} cannot be made a folder: `, 'm'));
  }
});

it('exits 1 saying "Kafka is not reachable", once, when the broker refuses connections', { timeout: 120_000 }, async () => {
  const { code, stderr } = await startWith({ KAFKA_BROKERS: '127.0.0.1:1' });
  assert.equal(code, 1, stderr);
  assert.match(stderr, /^ats: cannot start: Kafka is not reachable at 127\.0\.0\.1:1: .*ECONNREFUSED 127\.0\.0\.1:1$/m);
  assert.equal(stderr.split('ECONNREFUSED').length, 2, `the reason once: ${stderr}`);
});

it('exits 1 within seconds saying "Kafka is not reachable" when the broker accepts connections and never answers', { timeout: 120_000 }, async () => {
  const accepted = new Set<Socket>();
  const silent = createServer((socket) => {
    accepted.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as { port: number }).port;
  try {
    const started = Date.now();
    const { code, stderr } = await startWith({ KAFKA_BROKERS: `127.0.0.1:${port}` });
    assert.equal(code, 1, stderr);
    // Bounded by the connect timeout (5 s), not kafkajs' 30 s request timeout.
    assert.ok(Date.now() - started < 20_000, `exited after ${Date.now() - started} ms`);
    assert.match(stderr, new RegExp(`^ats: cannot start: Kafka is not reachable at 127\\.0\\.0\\.1:${port}: no answer within 5000 ms$`, 'm'));
  } finally {
    for (const s of accepted) s.destroy();
    silent.close();
  }
});
