/**
 * The process's open-file limit (RLIMIT_NOFILE), read once at start for the
 * API's connection cap (server/connections.ts `defaultMaxConnections`). Node
 * raises its soft limit to the hard one as it starts, so the soft column of
 * /proc/self/limits is what the process can open. Linux only: elsewhere, or
 * when the file cannot be read or understood, the limit is unknown (null)
 * and the cap keeps its default; reading it never fails a start.
 */
import { readFileSync } from 'node:fs';

/** "Max open files" of a /proc/<pid>/limits text: its soft column, or null (unlimited, absent, not understood). */
export function parseOpenFileLimit(text: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0] ?? '';
  if (!/^\d+$/.test(soft)) return null;
  const n = Number(soft);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

export interface OpenFileLimitSource {
  platform: NodeJS.Platform;
  read(path: string): string;
}

const PROCESS: OpenFileLimitSource = { platform: process.platform, read: (path) => readFileSync(path, 'utf8') };

/** This process's open-file limit, or null when unknown (see above). */
export function readOpenFileLimit(source: OpenFileLimitSource = PROCESS): number | null {
  if (source.platform !== 'linux') return null;
  try {
    return parseOpenFileLimit(source.read('/proc/self/limits'));
  } catch {
    return null;
  }
}
