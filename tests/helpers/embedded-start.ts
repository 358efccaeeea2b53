/**
 * `ats start` as a child process on a fresh data dir (the embedded store, the
 * in-process log) with a handler module of the test's own, once it said it is
 * ready: what the tests of a start's signals and of its exits drive.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface StartedEmbedded {
  child: ChildProcess;
  /** The API's base URL. */
  api: string;
  /** stdout and stderr so far, interleaved. */
  output(): string;
  /** The exit code (null: a signal ended it); a SIGKILL after 60 s if it has not exited. */
  exited: Promise<number | null>;
}

/** Removes the data dirs `startEmbedded` made (a test file's `after`). */
export function embeddedDirs(): { dirs: string[]; remove(): void } {
  const dirs: string[] = [];
  return { dirs, remove: () => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })) };
}

/** `ats start` on a fresh data dir (pushed on `dirs`) with `handlers` as its handler module's source, once ready. */
export async function startEmbedded(handlers: string, dirs: string[], extra: Record<string, string> = {}): Promise<StartedEmbedded> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-start-'));
  dirs.push(dir);
  const module = join(dir, 'handlers.mjs');
  writeFileSync(module, handlers);
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: dir, ATS_HANDLERS: module, LOG_LEVEL: 'info', ...extra };
  delete env.MYSQL_URL;
  delete env.KAFKA_BROKERS;
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ['--conditions=ats-source', '--import', 'tsx', 'cli/main.ts', 'start'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))).finally(() => clearTimeout(killer));
  const deadline = Date.now() + 45_000;
  let port: string | undefined;
  try {
    while (!(port = /ats ready: open http:\/\/localhost:(\d+)\/ui/.exec(out)?.[1])) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `not ready: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return { child, api: `http://127.0.0.1:${port}`, output: () => out, exited };
}
