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
 */
const STUCK_STOP_START = `
import { compose } from ${source('cli/compose.ts')};
import { startCommand } from ${source('cli/start.ts')};
const code = await startCommand([], process.env, {
  compose: async (config, opts) => {
    const system = await compose(config, opts);
    system[process.env.STUCK_PART][process.env.STUCK_METHOD] = () => new Promise(() => setInterval(() => {}, 60_000));
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

for (const [part, method, named] of STUCK_STOPS) {
  test(`a stop that does not finish in time because ${part}.${method}() hangs: exit 1, and the give-up line names ${named} as what the stop still waited on, and for how long`, { timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ats-stop-deadline-'));
    try {
      const file = join(dir, 'start.mts');
      writeFileSync(file, STUCK_STOP_START);
      const env: NodeJS.ProcessEnv = {
        ...process.env, PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: dir, LOG_LEVEL: 'info', ATS_SHUTDOWN_GRACE_MS: '0', STUCK_PART: part, STUCK_METHOD: method,
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
      for (const deadline = Date.now() + 45_000; !/ats ready/.test(out);) {
        assert.ok(Date.now() < deadline && child.exitCode === null, `not ready: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGTERM');
      assert.equal(await exited, 1, out);
      const gaveUp = logLines(out).filter((l) => typeof l.msg === 'string' && l.msg.startsWith('ats: shutdown did not finish in time'));
      assert.equal(gaveUp.length, 1, out);
      const [line] = gaveUp;
      assert.match(line.msg as string, new RegExp(`waiting on ${named} \\(\\d+ ms\\)`), 'the message names what the stop waited on');
      const waitingOn = line.waitingOn as Array<{ part: string; ms: number }>;
      assert.deepEqual(waitingOn.map((w) => w.part), [named]);
      assert.ok(Number.isInteger(waitingOn[0].ms) && waitingOn[0].ms >= 0, `ms: ${waitingOn[0].ms}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
