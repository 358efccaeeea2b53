/**
 * `ats start` whose stop does not finish within its deadline (the grace plus
 * SHUTDOWN_SLACK_MS): the line it exits 1 with names the part of the stop it
 * was still waiting on (a store whose close hangs, a role whose stop does),
 * and for how long, so an operator can tell what was stuck.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = (path: string) => JSON.stringify(pathToFileURL(join(root, path)).href);

/**
 * `ats start` (startCommand) on SQLite whose part `STUCK_PART` never ends its stop: `STUCK_METHOD` of
 * `system[STUCK_PART]` (the store's close, a role's stop) returns a promise that never settles, as a
 * database or a broker that stopped answering; its connection, still open, keeps the process running.
 * With `SLOW_PART`, `SLOW_METHOD` of that part first waits `SLOW_MS`.
 */
const STUCK_STOP_START = `
import { compose } from ${source('cli/compose.ts')};
import { startCommand } from ${source('cli/start.ts')};
const code = await startCommand([], process.env, {
  compose: async (config, opts) => {
    const system = await compose(config, opts);
    // STUCK_HOLDS=none: a promise that holds nothing open (a bug's, not a connection's), else one an open handle keeps waiting.
    system[process.env.STUCK_PART][process.env.STUCK_METHOD] = () => new Promise(() => {
      if (process.env.STUCK_HOLDS !== 'none') setInterval(() => {}, 60_000);
    });
    if (process.env.SLOW_PART) {
      // A part before it that takes SLOW_MS to stop, and then does.
      const part = system[process.env.SLOW_PART];
      const own = part[process.env.SLOW_METHOD].bind(part);
      part[process.env.SLOW_METHOD] = () => new Promise((r) => setTimeout(r, Number(process.env.SLOW_MS))).then(own);
    }
    return system;
  },
});
process.exit(code);
`;

/** The JSON log lines of `out` (the others, such as a child's stray output, skipped). */
function logLines(out: string): Array<Record<string, unknown>> {
  return out.split('\n').flatMap((line) => {
    try {
      const parsed: unknown = JSON.parse(line);
      return parsed && typeof parsed === 'object' ? [parsed as Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}

const STUCK_STOPS = [
  // [system's member, its method that hangs, the stop's name for that part]
  ['store', 'close', 'store'],
  ['relay', 'stop', 'relay'],
] as const;

/** STUCK_STOP_START on SQLite in a fresh folder, with `extra` in its environment and no grace for handlers (the deadline is SHUTDOWN_SLACK_MS). */
function runStuck(part: string, method: string, extra: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'ats-stop-deadline-'));
  const file = join(dir, 'start.mts');
  writeFileSync(file, STUCK_STOP_START);
  const env: NodeJS.ProcessEnv = {
    ...process.env, PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: dir, LOG_LEVEL: 'info', ATS_SHUTDOWN_GRACE_MS: '0', STUCK_PART: part, STUCK_METHOD: method, ...extra,
  };
  delete env.MYSQL_URL;
  delete env.KAFKA_BROKERS;
  delete env.NODE_TEST_CONTEXT;
  delete env.LOG_FORMAT;
  const child = spawn(process.execPath, ['--conditions=ats-source', '--import', 'tsx', file], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))).finally(() => clearTimeout(killer));
  /** Signals the process once it is ready; its exit code, and its give-up line (the one of its log lines that says so). */
  const stopped = async () => {
    for (const deadline = Date.now() + 45_000; !/ats ready/.test(out);) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `not ready: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGTERM');
    const code = await exited;
    const gaveUp = logLines(out).filter((l) => typeof l.msg === 'string' && l.msg.startsWith('ats: shutdown did not finish in time'));
    assert.equal(gaveUp.length, 1, out);
    return { code, line: gaveUp[0], out };
  };
  return { stopped, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('a stop given up after a part took long to stop: the give-up line names that part too, and how long it took', { timeout: 90_000 }, async () => {
  const run = runStuck('store', 'close', { SLOW_PART: 'relay', SLOW_METHOD: 'stop', SLOW_MS: '1500' });
  try {
    const { code, line, out } = await run.stopped();
    assert.equal(code, 1, out);
    assert.match(line.msg as string, /waiting on store \(\d+ ms\); slow before it: relay \(\d+ ms\)/, 'the message names the part that took long');
    const slow = line.slow as Array<{ part: string; ms: number }>;
    const relay = slow.find((s) => s.part === 'relay');
    assert.ok(relay && relay.ms >= 1500, `the relay took ${relay?.ms} ms`);
    assert.ok(!slow.some((s) => s.part === 'data folder'), 'a part that stopped at once is not named');
  } finally {
    run.cleanup();
  }
});

for (const [part, method, named] of STUCK_STOPS) {
  test(`a stop that does not finish in time because ${part}.${method}() hangs: exit 1, and the give-up line names ${named} as what the stop still waited on, and for how long`, { timeout: 90_000 }, async () => {
    const run = runStuck(part, method);
    try {
      const { code, line, out } = await run.stopped();
      assert.equal(code, 1, out);
      assert.match(line.msg as string, new RegExp(`waiting on ${named} \\(\\d+ ms\\)`), 'the message names what the stop waited on');
      const waitingOn = line.waitingOn as Array<{ part: string; ms: number }>;
      assert.deepEqual(waitingOn.map((w) => w.part), [named]);
      assert.ok(Number.isInteger(waitingOn[0].ms) && waitingOn[0].ms >= 0, `ms: ${waitingOn[0].ms}`);
    } finally {
      run.cleanup();
    }
  });
}

test('a stop part that never settles and holds nothing open: the process still gives up at its deadline, exit 1 with the line, not a silent exit', { timeout: 90_000 }, async () => {
  const run = runStuck('store', 'close', { STUCK_HOLDS: 'none' });
  try {
    const { code, line, out } = await run.stopped();
    assert.equal(code, 1, out);
    assert.deepEqual((line.waitingOn as Array<{ part: string }>).map((w) => w.part), ['store']);
  } finally {
    run.cleanup();
  }
});
