/**
 * The `ats` client end to end: a real scheduler (`ats start`, embedded store,
 * temp data dir) as a child process, and the CLI as child processes
 * (`node cli/bin.mjs ...`) talking to it, checked by exit code and output.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { SETTINGS } from './config.js';
import { freePort } from '../tests/helpers/ports.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** This process's environment without any scheduler setting (`npm test` exports MYSQL_URL and KAFKA_BROKERS). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const s of Object.values(SETTINGS)) delete env[s.env];
  delete env.ATS_URL;
  delete env.NODE_TEST_CONTEXT;
  return { ...env, ...extra };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Collects a child's output and resolves on exit. */
function collect(child: ChildProcess): Promise<Run> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

let url = '';
let server: ChildProcess | null = null;
let serverOut = '';
const dataDir = mkdtempSync(join(tmpdir(), 'ats-cli-test-'));

/** `ats ARGS...` against the test server (or `env.ATS_URL`). */
function spawnAts(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['cli/bin.mjs', ...args], { cwd: root, env: cleanEnv({ ATS_URL: url, ...env }), stdio: ['ignore', 'pipe', 'pipe'] });
}

function ats(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawnAts(args, env);
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return collect(child).finally(() => clearTimeout(timer));
}

/**
 * `ats` once per command line, a few at a time (each is a process that mostly
 * loads code: run one after the other, they left a core idle), the runs in the
 * order of the command lines. For command lines that do not depend on each other.
 */
async function atsEach(lines: readonly string[][], env: Record<string, string> = {}): Promise<Run[]> {
  const runs: Run[] = new Array(lines.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < lines.length; i = next++) runs[i] = await ats(lines[i]!, env);
  };
  await Promise.all(Array.from({ length: Math.min(4, lines.length) }, lane));
  return runs;
}

/** The server's `ats_stream_clients` gauge: WebSocket stream clients connected now. */
async function streamClients(): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = /^ats_stream_clients (\d+)$/m.exec(text) ?? assert.fail(`no ats_stream_clients in /metrics:\n${text.slice(0, 2000)}`);
  return Number(line[1]);
}

/** Polls the gauge until `ok` holds of it (30 s at most). */
async function untilStreamClients(ok: (n: number) => boolean, what: string): Promise<void> {
  const end = Date.now() + 30_000;
  let n = await streamClients();
  while (!ok(n)) {
    if (Date.now() > end) assert.fail(`${what}: ats_stream_clients is still ${n} after 30 s`);
    await new Promise((r) => setTimeout(r, 50));
    n = await streamClients();
  }
}

async function waitForHealth(deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (server?.exitCode !== null) assert.fail(`the server exited early:\n${serverOut}`);
    try {
      // Ready, not only alive: /healthz answers 200 already while the process starts.
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet (or handing its port over to the API)
    }
    if (Date.now() > end) assert.fail(`the server did not answer /readyz within ${deadlineMs} ms:\n${serverOut}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A one-attempt job's states: `published` only if its dispatch waited for a worker (see the relay's PUBLISHED delay). */
const isLifecycle = (states: readonly string[]) =>
  ['pending,running,done', 'pending,published,running,done'].includes(states.join(','));

const futureRunAt = () => new Date(Date.now() + 3_600_000).toISOString();

describe('ats CLI against a running scheduler', { timeout: 300_000 }, () => {
  before(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    server = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'start'], {
      cwd: root,
      // The demo handlers and test.progress, which reports progress (tests/helpers/progress-handlers.ts).
      env: cleanEnv({ PORT: String(port), ATS_DATA_DIR: dataDir, LOG_LEVEL: 'warn', ATS_HANDLERS: './tests/helpers/progress-handlers.ts' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout!.on('data', (d) => (serverOut += d));
    server.stderr!.on('data', (d) => (serverOut += d));
    await waitForHealth(60_000);
  });

  after(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  let echoId = '';

  test('submit --wait prints each state and exits 0 on done', async () => {
    const r = await ats(['submit', 'demo.echo', '--payload', '{"x":1}', '--wait']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    echoId = lines[0]!;
    assert.match(echoId, /^[0-9A-Z]{26}$/);
    const states = lines.slice(1).map((l) => l.split(/\s+/)[1]);
    // `published` shows only when the dispatch waited for a worker longer than the relay's PUBLISHED delay.
    assert.ok(isLifecycle(states), `states ${states}`);
    assert.match(lines.find((l) => l.split(/\s+/)[1] === 'running')!, /running\s+attempt 1\/3\s+STARTED/);
  });

  test('submit --wait exits 1 when the job ends dead', async () => {
    const r = await ats(['submit', 'demo.fail', '--payload', '{"always":true}', '--max-attempts', '2', '--wait']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /\bdead\s+attempt 2\/2\s+FAILED/);
    assert.equal((r.stdout.match(/\brunning\b/g) ?? []).length, 2, 'two attempts ran');
  });

  test('get prints the job and its history; --json the API\'s JSON', async () => {
    const [text, json] = await atsEach([['get', echoId], ['get', echoId, '--json']]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^id\\s+${echoId}$`, 'm'));
    assert.match(text.stdout, /^state\s+done$/m);
    assert.match(text.stdout, /SUCCEEDED\s+running\s+done/);
    const job = JSON.parse(json.stdout);
    assert.equal(job.id, echoId);
    assert.deepEqual(job.result, { x: 1 });
    assert.ok(isLifecycle(job.events.map((e: { to: string }) => e.to)), JSON.stringify(job.events));
  });

  test('submit --wait prints the progress the handler reports as it arrives, between running and done', async () => {
    const upload = { step: 'upload', done: 1, of: 2 };
    // Farther apart than the worker's writes (500 ms) and the stream's progress reads (200 ms).
    const payload = JSON.stringify({ reports: [10, 60, upload], ms: 700 });
    const r = await ats(['submit', 'test.progress', '--payload', payload, '--wait']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    const id = lines[0]!;
    const column = (l: string) => l.split(/\s+/)[1];
    const progress = lines.filter((l) => column(l) === 'progress');
    for (const l of progress) assert.match(l, /^\d{4}-\d\d-\d\dT[\d:.]+Z {2}progress {3}attempt 1\/3 {3}\S/, l);
    // Each once, in the order reported, the last one the object; a value replaced before the stream read it is not shown.
    const values = progress.map((l) => l.split(/attempt 1\/3\s+/)[1]);
    assert.equal(values.at(-1), JSON.stringify(upload), r.stdout);
    assert.deepEqual(values, ['10%', '60%', JSON.stringify(upload)].filter((v) => values.includes(v)), r.stdout);
    // The progress lines sit between the start and the end.
    const states = lines.map(column);
    assert.ok(states.indexOf('running') < lines.indexOf(progress[0]!) && lines.indexOf(progress.at(-1)!) < states.indexOf('done'), r.stdout);
    assert.ok(isLifecycle(states.slice(1).filter((s) => s !== 'progress')), r.stdout);

    // get shows the latest progress, whole, with its attempt and time; --json the API's.
    // With them, two more jobs of their own: a last report just before the handler returns; --wait --json.
    const [got, gotJson, quick, quiet] = await atsEach([
      ['get', id], ['get', id, '--json'],
      ['submit', 'test.progress', '--payload', JSON.stringify({ reports: [30, 100], ms: 1 }), '--wait'],
      ['submit', 'test.progress', '--payload', JSON.stringify({ reports: [5], ms: 1 }), '--wait', '--json'],
    ]);
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /^progress {5}\{"step":"upload","done":1,"of":2\} \(attempt 1, \d{4}-[\d-]+T[\d:.]+Z\)$/m);
    const json = JSON.parse(gotJson.stdout);
    assert.deepEqual({ ...json.progress, at: null }, { value: upload, attempt: 1, at: null });
    // A last report just before the handler returns is shown, before the end.
    assert.equal(quick.code, 0, quick.stderr);
    const tail = quick.stdout.trim().split('\n').slice(-2);
    assert.match(tail[0]!, /progress {3}attempt 1\/3 {3}100%$/, quick.stdout);
    assert.match(tail[1]!, /done {7}attempt 1\/3 {3}SUCCEEDED$/, quick.stdout);
    // --wait --json prints the job at its end, progress and all, and no progress lines.
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.deepEqual(JSON.parse(quiet.stdout).progress.value, 5);
  });

  test('get of a running job shows its progress; of a job that reported none, no progress line', async () => {
    const submitted = await ats(['submit', 'test.progress', '--payload', JSON.stringify({ reports: [40], ms: 60_000 })]);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = submitted.stdout.trim();
    // Waited for through the API (a process a look would cost more than the wait), then looked at with `ats get`.
    const end = Date.now() + 30_000;
    while (((await (await fetch(`${url}/v1/jobs/${id}`)).json()) as { progress: unknown }).progress == null && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const text = (await ats(['get', id])).stdout;
    assert.match(text, /^state\s+running$/m);
    assert.match(text, /^progress {5}40% \(attempt 1, \S+Z\)$/m);
    const [cancelled, echo, echoJson] = await atsEach([['cancel', id, '--reason', 'test over'], ['get', echoId], ['get', echoId, '--json']]);
    assert.equal(cancelled.code, 0);
    assert.doesNotMatch(echo.stdout, /^progress/m);
    assert.equal(JSON.parse(echoJson.stdout).progress, null);
  });

  test('workers: the server\'s own worker, live, serving every queue, with the types it handles; --json the API\'s JSON', async () => {
    const [r, json] = await atsEach([['workers'], ['workers', '--json']]);
    assert.equal(r.code, 0, r.stderr);
    const [header, ...rows] = r.stdout.trim().split('\n');
    assert.match(header!, /^ID\s+HOST\s+PID\s+QUEUES\s+TYPES\s+CONCURRENCY\s+LAST SEEN\s+LIVE$/);
    assert.equal(rows.length, 1, r.stdout);
    const [, , pid, queues, types, concurrency, lastSeen, live] = rows[0]!.split(/\s+/);
    assert.equal(pid, String(server!.pid));
    assert.equal(queues, '*');
    assert.ok(types!.split(',').includes('demo.echo'), types);
    assert.match(concurrency!, /^\d+$/);
    assert.match(lastSeen!, /^\d{4}-\d{2}-\d{2}T[\d:.]+Z$/);
    assert.equal(live, 'yes');
    assert.equal(json.code, 0, json.stderr);
    const { workers } = JSON.parse(json.stdout) as { workers: Array<{ pid: number; types: string[]; queues: string[]; live: boolean }> };
    assert.equal(workers.length, 1);
    assert.equal(workers[0]!.pid, server!.pid);
    assert.deepEqual(workers[0]!.queues, ['*']);
    assert.equal(workers[0]!.live, true);
    assert.ok(workers[0]!.types.includes('demo.echo') && workers[0]!.types.includes('test.progress'), JSON.stringify(workers[0]));
  });

  test('ls --state done lists finished jobs only', async () => {
    const r = await ats(['ls', '--state', 'done']);
    assert.equal(r.code, 0, r.stderr);
    const [header, ...rows] = r.stdout.trim().split('\n');
    assert.match(header!, /^ID\s+TYPE\s+QUEUE\s+STATE/);
    assert.ok(rows.some((row) => row.startsWith(echoId)), r.stdout);
    for (const row of rows) assert.equal(row.split(/\s+/)[3], 'done', row);
  });

  test('cancel of a finished job: exit 1 with ATS_ERR_TRANSITION_NOT_ALLOWED', async () => {
    const r = await ats(['cancel', echoId]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^ATS_ERR_TRANSITION_NOT_ALLOWED: CANCEL is not allowed in state done/);
  });

  test('cancel then redrive a delayed job print the new state', async () => {
    const submitted = await ats(['submit', 'demo.echo', '--payload', '{}', '--run-at', futureRunAt()]);
    const id = submitted.stdout.trim();
    const cancelled = await ats(['cancel', id, '--reason', 'test']);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal(cancelled.stdout.trim(), `${id} cancelled`);
    const verified = await ats(['verify', id]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.stdout, 'ok: 2 events replayed\n');
    assert.deepEqual(JSON.parse((await ats(['verify', id, '--json'])).stdout), { ok: true, events: 2, problems: [] });
    const redriven = await ats(['redrive', id]);
    assert.equal(redriven.code, 0, redriven.stderr);
    assert.equal(redriven.stdout.trim(), `${id} pending`);
  });

  test('an unknown job id: exit 1 with ATS_ERR_JOB_NOT_FOUND', async () => {
    const r = await ats(['get', '01J00000000000000000000000']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^ATS_ERR_JOB_NOT_FOUND: /);
  });

  test('submit --count 50 waits for all and reports 50 done', async () => {
    const r = await ats(['submit', 'demo.echo', '--payload', '{"n":1}', '--count', '50']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^50 jobs: 50 done, 0 dead, 0 cancelled in [\d.]+ s \([\d.]+ jobs\/s\)$/m);
    // stderr is not a TTY here: plain progress lines, the last at 100%.
    assert.ok(!r.stderr.includes('\r'));
    assert.match(r.stderr.trim().split('\n').at(-1)!, /50\/50 100%/);
  });

  test('watch prints transitions live and stops on Ctrl-C with exit 0', async () => {
    // The earlier tests' streams (of --wait) closed, the watcher's connection is then the one the gauge counts.
    await untilStreamClients((n) => n === 0, 'before the watch');
    const child = spawnAts(['watch', '--type', 'demo.sleep']);
    const run = collect(child);
    let seen = '';
    child.stdout!.on('data', (d) => (seen += d));
    // The watcher holds its stream before the job exists (its subscribe goes as the connection opens; the
    // submit below is a process that starts first).
    await untilStreamClients((n) => n >= 1, 'the watch did not connect to the stream');
    const submitted = await ats(['submit', 'demo.sleep', '--payload', '{"ms":10}', '--wait']);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = submitted.stdout.split('\n')[0]!;
    const end = Date.now() + 30_000;
    while (!new RegExp(`${id}.*running -> done`).test(seen) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGINT');
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${id}\\s+demo\\.sleep\\s+default\\s+(pending|published) -> running\\s+STARTED\\s+attempt 1`));
    assert.match(r.stdout, new RegExp(`${id}.*running -> done\\s+SUCCEEDED`));
  });
  describe('ats schedule', () => {
    const name = `every-second-${process.pid}`;
    const nightly = `nightly-${process.pid}`;

    test('add prints the next run (or paused); --json the schedule as the API shows it', async () => {
      const [r, json] = await atsEach([
        ['schedule', 'add', name, '--cron', '* * * * * *', '--type', 'demo.echo', '--payload', '{"n":1}', '--queue', 'sched'],
        ['schedule', 'add', nightly, '--cron', '0 3 * * *', '--type', 'demo.echo', '--tz', 'Europe/Berlin',
          '--overlap', 'allow', '--catch-up', 'latest', '--paused', '--json'],
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout.trim(), new RegExp(`^${name} created, next run \\d{4}-\\d{2}-\\d{2}T[\\d:.]+Z$`));
      assert.equal(json.code, 0, json.stderr);
      const s = JSON.parse(json.stdout);
      assert.deepEqual(
        { name: s.name, cron: s.cron, timezone: s.timezone, overlap: s.overlap, catchUp: s.catchUp, paused: s.paused, nextRunAt: s.nextRunAt, payload: s.job.payload },
        { name: nightly, cron: '0 3 * * *', timezone: 'Europe/Berlin', overlap: 'allow', catchUp: 'latest', paused: true, nextRunAt: null, payload: null },
      );
    });

    test('get shows the schedule, its next runs and its ticks once they fire', async () => {
      type Detail = { ticks: Array<{ outcome: string; jobId: string | null }>; nextRuns: string[] };
      // Waited for through the API (a process a look would cost more than the wait), then read with `ats schedule get --json`.
      const end = Date.now() + 30_000;
      const ticked = (d: Detail) => d.ticks.some((t) => t.outcome === 'submitted');
      while (!ticked(await (await fetch(`${url}/v1/schedules/${name}`)).json() as Detail) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      const j = await ats(['schedule', 'get', name, '--json']);
      assert.equal(j.code, 0, j.stderr);
      const detail = JSON.parse(j.stdout) as Detail;
      assert.ok(ticked(detail), j.stdout);
      assert.equal(detail.nextRuns.length, 5);
      const jobId = detail.ticks.find((t) => t.outcome === 'submitted')!.jobId!;
      const [r, job] = await atsEach([['schedule', 'get', name], ['get', jobId, '--json']]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^name\\s+${name}$`, 'm'));
      assert.match(r.stdout, /^cron\s+\* \* \* \* \* \*$/m);
      assert.match(r.stdout, /^queue\s+sched$/m);
      assert.match(r.stdout, /^payload\s+\{"n":1\}$/m);
      assert.match(r.stdout, /^paused\s+no$/m);
      const lines = r.stdout.split('\n');
      const next = lines.indexOf('next runs');
      assert.ok(next > 0, r.stdout);
      for (const l of lines.slice(next + 1, next + 6)) assert.match(l, /^ {2}\d{4}-\d{2}-\d{2}T[\d:.]+Z$/);
      assert.match(r.stdout, /^ {2}TICK\s+OUTCOME\s+JOB\s+FIRED$/m);
      assert.match(r.stdout, new RegExp(`^ {2}\\S+Z\\s+submitted\\s+${jobId}\\s+\\S+Z$`, 'm'));
      // The tick's job is a job like any other.
      assert.equal(JSON.parse(job.stdout).queue, 'sched');
    });

    test('ls: one row per schedule with its cron, time zone, next run, paused, last tick and tick counts', async () => {
      const [r, json] = await atsEach([['schedule', 'ls'], ['schedule', 'ls', '--json']]);
      assert.equal(r.code, 0, r.stderr);
      const [header, ...rows] = r.stdout.trim().split('\n');
      assert.match(header!, /^NAME\s+CRON\s+TZ\s+NEXT RUN\s+PAUSED\s+LAST TICK\s+SUBMITTED\/SKIPPED\/MISSED$/);
      const row = (n: string) => rows.find((l) => l.startsWith(`${n} `)) ?? assert.fail(`no row for ${n}:\n${r.stdout}`);
      assert.match(row(name), /^\S+\s+\* \* \* \* \* \*\s+UTC\s+\S+Z\s+no\s+\S+Z\s+[1-9]\d*\/\d+\/\d+$/);
      assert.match(row(nightly), /^\S+\s+0 3 \* \* \*\s+Europe\/Berlin\s+-\s+yes\s+-\s+0\/0\/0$/);
      const names = (JSON.parse(json.stdout) as { schedules: Array<{ name: string }> }).schedules.map((s) => s.name);
      assert.ok(names.includes(name) && names.includes(nightly), json.stdout);
    });

    test('pause and resume print the change; a paused schedule has no next run', async () => {
      // The two schedules' changes, side by side.
      const [[paused, got], resumed] = await Promise.all([
        ats(['schedule', 'pause', name]).then(async (p) => [p, await ats(['schedule', 'get', name])] as const),
        ats(['schedule', 'resume', nightly]),
      ]);
      assert.equal(paused.code, 0, paused.stderr);
      assert.equal(paused.stdout.trim(), `${name} paused`);
      assert.match(got.stdout, /^paused\s+yes$/m);
      assert.match(got.stdout, /^nextRunAt\s+-$/m);
      assert.match(got.stdout, /^next runs\n {2}none \(paused\)$/m);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.match(resumed.stdout.trim(), new RegExp(`^${nightly} resumed, next run \\S+Z$`));
      const json = await ats(['schedule', 'resume', name, '--json']);
      assert.equal(JSON.parse(json.stdout).paused, false);
    });

    test('rm deletes; then get and rm exit 1 with ATS_ERR_SCHEDULE_NOT_FOUND', async () => {
      const names = [name, nightly];
      for (const [i, r] of (await atsEach(names.map((n) => ['schedule', 'rm', n]))).entries()) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), `${names[i]} deleted`);
      }
      const gone = [['get', name], ['rm', name], ['pause', nightly]];
      for (const [i, r] of (await atsEach(gone.map((args) => ['schedule', ...args]))).entries()) {
        assert.equal(r.code, 1, gone[i]!.join(' '));
        assert.match(r.stderr, /^ATS_ERR_SCHEDULE_NOT_FOUND: /);
      }
      const ls = await ats(['schedule', 'ls']);
      assert.ok(!ls.stdout.includes(name), ls.stdout);
    });

    test('an invalid cron or time zone, or a name in use: exit 1 with the API\'s code and message', async () => {
      const api = async (body: unknown) => (await fetch(`${url}/v1/schedules`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
      }).then((r) => r.json())) as { code: string; message: string };
      const taken = `taken-${process.pid}`;
      const [bad, tz, made] = await atsEach([
        ['schedule', 'add', 'bad-cron', '--cron', '61 * * * *', '--type', 'demo.echo'],
        ['schedule', 'add', 'bad-tz', '--cron', '* * * * *', '--type', 'demo.echo', '--tz', 'Mars/Base'],
        ['schedule', 'add', taken, '--cron', '0 0 1 1 *', '--type', 'demo.echo', '--paused'],
      ]);
      assert.equal(bad.code, 1);
      const expected = await api({ name: 'bad-cron', cron: '61 * * * *', type: 'demo.echo' });
      assert.equal(expected.code, 'ATS_ERR_INVALID_CRON');
      assert.equal(bad.stderr.trim(), `ATS_ERR_INVALID_CRON: ${expected.message}`);
      assert.equal(tz.code, 1);
      assert.match(tz.stderr, /^ATS_ERR_INVALID_TIMEZONE: 'Mars\/Base' is not an IANA time zone/);
      assert.equal(made.code, 0);
      const again = await ats(['schedule', 'add', taken, '--cron', '0 0 1 1 *', '--type', 'demo.echo']);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /^ATS_ERR_SCHEDULE_EXISTS: /);
      assert.equal((await ats(['schedule', 'rm', taken])).code, 0);
    });
  });

  describe('ats limits', () => {
    test('ls with no limit: "no limits" on stderr, exit 0; --json an empty list', async () => {
      const [r, json] = await atsEach([['limits', 'ls'], ['limits', 'ls', '--json']]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.trim(), 'no limits');
      assert.deepEqual(JSON.parse(json.stdout), { limits: [] });
    });

    test('set prints the limit; a second set replaces it whole; --json the limit as the API shows it', async () => {
      // tenant:42's limit is set beside email's two.
      const [r, other] = await atsEach([['limits', 'set', 'email', '--concurrency', '5', '--rate', '100/1m'], ['limits', 'set', 'tenant:42', '--concurrency', '2']]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), 'email: concurrency 5, rate 100/1m');
      const api = await fetch(`${url}/v1/limits/email`).then((x) => x.json());
      assert.deepEqual({ concurrency: api.concurrency, rate: api.rate }, { concurrency: 5, rate: { max: 100, intervalMs: 60_000 } });

      const rateOnly = await ats(['limits', 'set', 'email', '--rate', '5/s', '--json']);
      assert.equal(rateOnly.code, 0, rateOnly.stderr);
      const json = JSON.parse(rateOnly.stdout);
      assert.deepEqual({ key: json.key, concurrency: json.concurrency, rate: json.rate, running: json.running }, {
        key: 'email', concurrency: null, rate: { max: 5, intervalMs: 1000 }, running: 0,
      });
      assert.equal(other.code, 0, other.stderr);
      assert.equal(other.stdout.trim(), 'tenant:42: concurrency 2');
    });

    test('ls: one row per limit by key, KEY CONCURRENCY RUNNING RATE UPDATED (- for no cap); --json the API\'s JSON', async () => {
      const [r, jsonRun] = await atsEach([['limits', 'ls'], ['limits', 'ls', '--json']]);
      assert.equal(r.code, 0, r.stderr);
      const [header, ...rows] = r.stdout.trim().split('\n');
      assert.match(header!, /^KEY\s+CONCURRENCY\s+RUNNING\s+RATE\s+UPDATED$/);
      assert.equal(rows.length, 2, r.stdout);
      assert.match(rows[0]!, /^email\s+-\s+0\s+5\/1s\s+\d{4}-\d\d-\d\dT\S+Z$/);
      assert.match(rows[1]!, /^tenant:42\s+2\s+0\s+-\s+\d{4}-\d\d-\d\dT\S+Z$/);
      const json = JSON.parse(jsonRun.stdout) as { limits: Array<{ key: string }> };
      assert.deepEqual(json.limits.map((l) => l.key), ['email', 'tenant:42']);
    });

    test('get shows the limit, its running attempts and its rate\'s spacing; --json the API\'s JSON', async () => {
      const [r, tenant] = await atsEach([['limits', 'get', 'email'], ['limits', 'get', 'tenant:42', '--json']]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^key\s+email$/m);
      assert.match(r.stdout, /^concurrency\s+- \(no cap\)$/m);
      assert.match(r.stdout, /^running\s+0$/m);
      assert.match(r.stdout, /^rate\s+5\/1s \(one start every 200 ms at most\)$/m);
      assert.match(r.stdout, /^updatedAt\s+\S+Z$/m);
      const json = JSON.parse(tenant.stdout);
      assert.equal(json.concurrency, 2);
      assert.equal(json.rate, null);
    });

    test('pause sets concurrency 0 keeping the rate, and prints the command that resumes it; a key without a limit gets one, resumed by rm; a paused key is left as it is', async () => {
      const resume = async (r: { stderr: string }) => ats(r.stderr.trim().replace(/^resume: ats /, '').split(' '));
      try {
        const r = await ats(['limits', 'pause', 'email']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), 'email: concurrency 0 (paused), rate 5/1s');
        assert.equal(r.stderr.trim(), 'resume: ats limits set --rate 5/1s email');
        const again = await ats(['limits', 'pause', 'email', '--json']);
        assert.equal(again.code, 0, again.stderr);
        assert.deepEqual({ concurrency: JSON.parse(again.stdout).concurrency, rate: JSON.parse(again.stdout).rate }, { concurrency: 0, rate: { max: 5, intervalMs: 1000 } });
        assert.match(again.stderr, /email was paused already/);
        const resumed = await resume(r);
        assert.equal(resumed.code, 0, resumed.stderr);
        assert.equal(resumed.stdout.trim(), 'email: rate 5/1s', 'the limit it had');

        const [fresh, keyed, dashed] = await atsEach([['limits', 'pause', 'fresh'], ['limits', 'pause', 'tenant:42', '--url', url], ['limits', 'pause', '--', '-dash']]);
        assert.equal(fresh.code, 0, fresh.stderr);
        assert.equal(fresh.stdout.trim(), 'fresh: concurrency 0 (paused)');
        assert.equal(fresh.stderr.trim(), 'resume: ats limits rm fresh');
        assert.equal(keyed.stderr.trim(), `resume: ats limits set --concurrency 2 --url=${url} tenant:42`);
        assert.equal(dashed.stderr.trim(), 'resume: ats limits rm -- -dash', 'a key that starts with - comes after --');
        for (const r2 of [fresh, keyed, dashed]) assert.equal((await resume(r2)).code, 0, 'each printed command runs');
        assert.equal((await ats(['limits', 'get', 'tenant:42', '--json'])).stdout.includes('"concurrency":2'), true);
      } finally {
        // The next tests run jobs of tenant:42 under its limit of 2, and list exactly email's and tenant:42's.
        await atsEach([['limits', 'set', 'tenant:42', '--concurrency', '2'], ['limits', 'set', 'email', '--rate', '5/s'], ['limits', 'rm', 'fresh'], ['limits', 'rm', '--', '-dash']]);
      }
    });

    test('submit --concurrency-key: the job carries the key, and runs under its limit', async () => {
      const [[r, got], plainRun] = await Promise.all([
        ats(['submit', 'demo.echo', '--payload', '{"x":1}', '--concurrency-key', 'tenant:42', '--wait'])
          .then(async (w) => [w, await ats(['get', w.stdout.trim().split('\n')[0]!, '--json'])] as const),
        ats(['submit', 'demo.echo', '--json']),
      ]);
      assert.equal(r.code, 0, r.stderr);
      const job = JSON.parse(got.stdout);
      assert.equal(job.id, r.stdout.trim().split('\n')[0]);
      assert.equal(job.concurrencyKey, 'tenant:42');
      assert.equal(job.state, 'done');
      const plain = JSON.parse(plainRun.stdout);
      assert.equal(plain.concurrencyKey, null);
    });

    test('rm deletes; then get and rm exit 1 with ATS_ERR_LIMIT_NOT_FOUND', async () => {
      const keys = ['email', 'tenant:42'];
      for (const [i, r] of (await atsEach(keys.map((key) => ['limits', 'rm', key]))).entries()) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), `${keys[i]} deleted`);
      }
      const gone = [['get', 'email'], ['rm', 'email']];
      for (const [i, r] of (await atsEach(gone.map((args) => ['limits', ...args]))).entries()) {
        assert.equal(r.code, 1, gone[i]!.join(' '));
        assert.match(r.stderr, /^ATS_ERR_LIMIT_NOT_FOUND: .*email/);
      }
      assert.equal((await ats(['limits', 'ls'])).stderr.trim(), 'no limits');
    });

    test('a rate beyond the API\'s bounds is a usage error (exit 2); a key or concurrency key the server refuses: exit 1 with the API\'s code and message', async () => {
      const [big, long, key, job] = await atsEach([
        ['limits', 'set', 'email', '--rate', '2000000/1s'], ['limits', 'set', 'email', '--rate', '1/2d'],
        ['limits', 'set', 'a b', '--concurrency', '1'], ['submit', 'demo.echo', '--concurrency-key', 'a/b'],
      ]);
      assert.equal(big.code, 2);
      assert.match(big.stderr, /^ats: --rate: MAX must be from 1 to 1000000/);
      assert.equal(long.code, 2);
      assert.match(long.stderr, /^ats: --rate: DURATION must be at most 1d/);
      assert.equal(key.code, 1);
      assert.match(key.stderr, /^ATS_ERR_VALIDATION: params\/key/);
      assert.equal(job.code, 1);
      assert.match(job.stderr, /^ATS_ERR_VALIDATION: body\/concurrencyKey/);
      assert.equal((await ats(['limits', 'ls'])).stderr.trim(), 'no limits');
    });
  });
});

describe('ats CLI usage and connection errors', { timeout: 120_000 }, () => {
  test('an unknown command exits 2 with the command list', async () => {
    const names = ['frobnicate', 'constructor', '__proto__', 'toString'];
    for (const [i, r] of (await atsEach(names.map((n) => [n]))).entries()) {
      const name = names[i]!;
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`unknown command "${name}"`));
      assert.match(r.stderr, /ats submit TYPE/);
    }
  });

  test('a wrong command line exits 2 with that command\'s usage', async () => {
    const lines = [['submit'], ['submit', 'demo.echo', '--payload', '{x'], ['ls', '--limit', 'ten'], ['get', 'a', 'b'], ['watch', '--bogus'], ['workers', 'extra'], ['delete'], ['delete', 'a']];
    for (const [i, r] of (await atsEach(lines)).entries()) {
      const args = lines[i]!;
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`usage: ats ${args[0]}`), args.join(' '));
    }
  });

  test('ats schedule: a wrong command line exits 2 with the sub-command\'s usage; no sub-command or an unknown one, every usage', async () => {
    const wrong = [['add', 'x', '--type', 'demo.echo'], ['add', 'x', '--cron', '* * * * *'], ['add', 'x', '--cron', '* * * * *', '--type', 'demo.echo', '--overlap', 'never'],
      ['add', '--cron', '* * * * *', '--type', 'demo.echo'], ['get'], ['rm', 'a', 'b'], ['ls', '--bogus']];
    const none = [[], ['frobnicate']];
    const runs = await atsEach([...wrong.map((args) => ['schedule', ...args]), ...none.map((args) => ['schedule', ...args]), ['schedule', '--help'], ['--help']]);
    for (const [i, args] of wrong.entries()) {
      const r = runs[i]!;
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`usage: ats schedule ${args[0]}`), args.join(' '));
    }
    for (const r of runs.slice(wrong.length, wrong.length + none.length)) {
      assert.equal(r.code, 2);
      for (const sub of ['add', 'ls', 'get', 'pause', 'resume', 'rm']) assert.match(r.stderr, new RegExp(`usage: ats schedule ${sub}`));
    }
    const [help, top] = runs.slice(-2) as [Run, Run];
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: ats schedule add NAME --cron EXPR --type TYPE/m);
    assert.match(top.stdout, /^ {2}ats schedule add\|ls\|get\|pause\|resume\|rm/m);
    assert.match(top.stdout, /^ {2}ats workers \[--json\]/m);
  });

  test('ats limits: a wrong command line exits 2 with the sub-command\'s usage; no sub-command or an unknown one, every usage', async () => {
    const wrong = [['set', 'email'], ['set', 'email', '--concurrency=-1'], ['set', 'email', '--concurrency', '1.5'],
      ['set', 'email', '--rate', '100'], ['set', 'email', '--rate', '100/1y'], ['set', 'email', '--rate', 'x/1s'], ['set', '--concurrency', '1'],
      ['get'], ['rm', 'a', 'b'], ['ls', '--bogus']];
    const none = [[], ['frobnicate']];
    const runs = await atsEach([...wrong.map((args) => ['limits', ...args]), ...none.map((args) => ['limits', ...args]),
      ['limits', '--help'], ['--help'], ['submit', '--help']]);
    for (const [i, args] of wrong.entries()) {
      const r = runs[i]!;
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`usage: ats limits ${args[0]}`), args.join(' '));
    }
    // `limits set email` and `limits set email --rate 100/1y` (above) say what is wrong.
    const neither = runs[wrong.findIndex((a) => a.join(' ') === 'set email')]!;
    assert.match(neither.stderr, /--concurrency or --rate is required/);
    const badRate = runs[wrong.findIndex((a) => a.join(' ') === 'set email --rate 100/1y')]!;
    assert.match(badRate.stderr, /--rate must be MAX\/DURATION, e\.g\. 100\/1m/);
    for (const r of runs.slice(wrong.length, wrong.length + none.length)) {
      assert.equal(r.code, 2);
      for (const sub of ['set', 'ls', 'get', 'pause', 'rm']) assert.match(r.stderr, new RegExp(`usage: ats limits ${sub}`));
    }
    const [help, top, submitHelp] = runs.slice(-3) as [Run, Run, Run];
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: ats limits set KEY \[--concurrency N\] \[--rate MAX\/DURATION\]/m);
    assert.match(top.stdout, /^ {2}ats limits set\|ls\|get\|pause\|rm/m);
    assert.match(submitHelp.stdout, /--concurrency-key K/);
  });

  test('no server at the URL: exit 1 with a message naming it, and how to start one wherever ats is installed', async () => {
    const [r, refused] = await Promise.all([
      ats(['ls'], { ATS_URL: 'http://127.0.0.1:1' }),
      freePort().then((port) => ats(['submit', 'demo.echo', '--url', `http://127.0.0.1:${port}`])),
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach the ats server at http:\/\/127\.0\.0\.1:1/);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot reach the ats server at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    // Not `npm start`: a project that installed the package has no such script.
    assert.match(refused.stderr, /Start one with "npx ats start"/);
  });
});
