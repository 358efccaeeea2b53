/**
 * The CLI end to end: a real scheduler composed in the test's process (all
 * roles on a fresh SQLite folder, the API on a free port) and `ats` run as a
 * child process (`node cli/bin.mjs ...`) against it, checked by exit code
 * and output.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, type AtsClient } from '../../client/index.js';
import { compose } from '../../cli/compose.js';
import { configFrom } from '../../cli/start.js';
import type { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running `ats`: what it wrote so far, a signal to send it, and its end. */
export interface CliProcess {
  readonly stdout: string;
  readonly stderr: string;
  kill(signal: NodeJS.Signals): void;
  /** Resolves when it exits (null: killed by a signal it did not handle). */
  readonly exited: Promise<CliRun>;
}

/**
 * `ats ARGS...` started against `url`, without this process's ATS_API_KEY,
 * MYSQL_URL or test runner context; `extraEnv` on top; killed after `killAfterMs`.
 */
export function spawnAts(url: string, args: readonly string[], extraEnv: Record<string, string> = {}, killAfterMs = 60_000): CliProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, ATS_URL: url };
  delete env.ATS_API_KEY;
  delete env.NODE_TEST_CONTEXT;
  delete env.MYSQL_URL;
  Object.assign(env, extraEnv); // on top: a key given here is sent
  const child = spawn(process.execPath, ['cli/bin.mjs', ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  const exited = new Promise<CliRun>((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr }))).finally(() => clearTimeout(timer));
  return {
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    kill: (signal) => void child.kill(signal),
    exited,
  };
}

/** `ats ARGS...` run to its end (see `spawnAts`). */
export function runAts(url: string, args: readonly string[], extraEnv: Record<string, string> = {}, killAfterMs = 60_000): Promise<CliRun> {
  return spawnAts(url, args, extraEnv, killAfterMs).exited;
}

/** A scheduler serving `registry` on a fresh data folder (`env`: settings on top), its URL and a client; `stop()` removes the folder. */
export async function startCliServer(registry: HandlerRegistry, env: Record<string, string> = {}): Promise<{ url: string; client: AtsClient; stop(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ats-cli-'));
  const system = await compose(configFrom({ ATS_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', ...env }, []), { registry, logger: silentLogger });
  const stop = async () => {
    try {
      await system.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  };
  try {
    const url = (await system.start()).url!.replace('localhost', '127.0.0.1');
    return { url, client: createClient({ url }), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
