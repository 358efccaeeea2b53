/** Scheduler roles as real child processes (`ats start --role ...`), for crash and start-up tests. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface RoleProcess {
  child: ChildProcess;
  name: string;
  output(): string;
  /** SIGKILL: no shutdown code runs. */
  kill(): Promise<void>;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
}

export function startRole(name: string, role: string, env: Record<string, string>): RoleProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'start', '--role', role], {
    cwd: root,
    env: { ...process.env, ...env, ATS_WORKER_ID: name },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out = (out + d).slice(-20_000)));
  child.stderr!.on('data', (d) => (out = (out + d).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child, name,
    output: () => out,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Resolves once the process logged `ats ready`; fails the test with its output after `timeoutMs`. */
export async function waitForReady(p: RoleProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!p.output().includes('ats ready')) {
    if (Date.now() > deadline) assert.fail(`${p.name} did not start: ${p.output()}`);
    await sleep(100);
  }
}

/**
 * `ats start` (the sources, from the repository root) with exactly `env`:
 * once it logs `ats ready` it gets one SIGTERM (a second would mean "exit
 * without finishing the shutdown"); SIGKILL after `timeoutMs`. Resolves with
 * its exit code and output, whether it got ready or exited before.
 */
export async function startUntilReady(env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'start'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let stopping = false;
  child.stdout!.on('data', (d) => {
    stdout += d;
    if (!stopping && stdout.includes('ats ready')) stopping = child.kill('SIGTERM');
  });
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}
