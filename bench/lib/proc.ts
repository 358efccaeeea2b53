/**
 * What the benchmark reads about processes from /proc (Linux): CPU seconds
 * (user + system, all threads) and peak resident memory, for our own child
 * processes and for the servers under test (MariaDB, Kafka, Redis, PostgreSQL).
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux x86_64

/** CPU seconds a process has used so far (0 when it is gone). */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that closes the command name: utime is field 14, stime 15 (1-based).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** Peak (VmHWM) and current (VmRSS) resident memory in MiB; 0 when unknown. */
export function memoryOf(pid: number): { peakMiB: number; rssMiB: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    return { peakMiB: kb('VmHWM') / 1024, rssMiB: kb('VmRSS') / 1024 };
  } catch {
    return { peakMiB: 0, rssMiB: 0 };
  }
}

/** Pids whose command name (comm) or command line matches. */
export function findPids(match: { comm?: string; cmdline?: RegExp }): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (match.comm && readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== match.comm) continue;
      if (match.cmdline && !match.cmdline.test(readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' '))) continue;
      pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** The servers a system under test leans on, by name. */
export const SERVERS = {
  mariadb: { comm: 'mariadbd' },
  kafka: { comm: 'java', cmdline: /kafka\.Kafka/ },
  redis: { comm: 'redis-server' },
  postgres: { comm: 'postgres' },
} as const;
export type ServerName = keyof typeof SERVERS;

/**
 * CPU meter over a set of processes: `start()` takes a reading, `stop()`
 * the difference. A server made of several processes (PostgreSQL: one per
 * connection) is summed; processes born meanwhile count from zero.
 */
export class CpuMeter {
  private readonly before = new Map<string, Map<number, number>>();

  constructor(private readonly groups: () => Record<string, number[]>) {}

  start(): void {
    this.before.clear();
    for (const [name, pids] of Object.entries(this.groups())) {
      this.before.set(name, new Map(pids.map((p) => [p, cpuSecondsOf(p)])));
    }
  }

  stop(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, pids] of Object.entries(this.groups())) {
      const was = this.before.get(name) ?? new Map<number, number>();
      out[name] = pids.reduce((sum, p) => sum + Math.max(0, cpuSecondsOf(p) - (was.get(p) ?? 0)), 0);
    }
    return out;
  }
}

/** Pids of the named servers (a fresh lookup, so PostgreSQL backends opened since count). */
export function serverPids(names: readonly ServerName[]): Record<string, number[]> {
  return Object.fromEntries(names.map((n) => [n, findPids(SERVERS[n])]));
}
