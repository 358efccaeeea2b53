/**
 * Scheduler roles as child processes (`cli/main.ts start --role ...`), as
 * they run in production, with a readiness wait on the "ats ready" log line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { NODE_FLAGS } from '../../cli/node-flags.js';
import { fileURLToPath } from 'node:url';
import { memoryOf } from './proc.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface RoleProcess {
  name: string;
  pid: number;
  /** The api's URL when the process runs the api role. */
  url: string | null;
  output(): string;
  /** Peak resident memory so far, MiB. */
  peakMiB(): number;
  /** SIGTERM, then wait for the exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

/** Extra node arguments for every role process (e.g. `--cpu-prof --cpu-prof-dir=...`). */
const nodeArgs = (): string[] => (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);

/** Starts `ats start --role <role>` and resolves once it logged "ats ready". */
export async function startRole(name: string, role: string, env: Record<string, string>, timeoutMs = 60_000): Promise<RoleProcess> {
  const child = spawn(process.execPath, [...NODE_FLAGS, ...nodeArgs(), '--import', 'tsx', 'cli/main.ts', 'start', '--role', role], {
    cwd: root,
    env: { ...process.env, ...env, ATS_WORKER_ID: name, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const append = (d: Buffer) => (out = (out + d.toString()).slice(-50_000));
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await waitReady(child, () => out, timeoutMs, name);
  return {
    name, pid: child.pid!, url,
    output: () => out,
    peakMiB: () => memoryOf(child.pid!).peakMiB,
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

function waitReady(child: ChildProcess, out: () => string, timeoutMs: number, name: string): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setInterval(() => {
      const text = out();
      const line = text.split('\n').find((l) => l.includes('ats ready'));
      if (line) {
        clearInterval(timer);
        resolve(/(http:\/\/[^\s/]+)\/ui/.exec(line)?.[1] ?? null);
      } else if (child.exitCode !== null || Date.now() - started > timeoutMs) {
        clearInterval(timer);
        child.kill('SIGKILL');
        reject(new Error(`role ${name} did not get ready:\n${text.slice(-3000)}`));
      }
    }, 50);
  });
}
