/**
 * Summarise `.cpuprofile` files (from `node --cpu-prof`): self time by
 * function, and by where the code lives (a package under node_modules, a
 * folder of this project, node's internals, GC, idle).
 *
 *   node --import tsx bench/cpuprofile-top.ts profiles/*.cpuprofile [--top 25]
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Frame {
  name: string;
  selfMs: number;
  share: number;
}

const root = process.cwd();

function where(url: string, fn: string): string {
  if (!url) return fn === '(garbage collector)' ? 'GC' : fn === '(idle)' ? 'idle' : fn === '(program)' ? 'program (native)' : 'native';
  const path = url.replace(/^file:\/\//, '');
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (nm) return nm[1]!;
  if (path.startsWith('node:')) return 'node internals';
  const rel = relative(root, path);
  return rel.startsWith('..') ? path : rel.split('/')[0]!;
}

/** Self time (ms) per node id. */
function selfTimes(p: Profile): Map<number, number> {
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000));
  return self;
}

export function summarize(files: readonly string[], top = 25): { totalMs: number; idleMs: number; byFunction: Frame[]; byPlace: Frame[] } {
  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  for (const file of files) {
    const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    for (const [id, ms] of selfTimes(p)) {
      const { functionName, url, lineNumber } = nodes.get(id)!.callFrame;
      totalMs += ms;
      if (functionName === '(idle)') {
        idleMs += ms;
        continue;
      }
      const place = where(url, functionName);
      const file = url ? relative(root, url.replace(/^file:\/\//, '')).replace(/^.*node_modules\//, '') : '';
      const key = `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}` : `[${place}]`}`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
      byPlace.set(place, (byPlace.get(place) ?? 0) + ms);
    }
  }
  const busy = totalMs - idleMs;
  const rank = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, ms]) => ({ name, selfMs: Math.round(ms), share: Math.round((1000 * ms) / busy) / 10 }));
  return { totalMs: Math.round(totalMs), idleMs: Math.round(idleMs), byFunction: rank(byFunction), byPlace: rank(byPlace) };
}

function main(): void {
  const args = process.argv.slice(2);
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args[topAt + 1]) : 25;
  const files = args.filter((a, i) => a.endsWith('.cpuprofile') && i !== topAt + 1);
  if (files.length === 0) {
    process.stderr.write('usage: bench/cpuprofile-top.ts FILE.cpuprofile... [--top N]\n');
    process.exit(2);
  }
  const s = summarize(files, top);
  const busy = s.totalMs - s.idleMs;
  process.stdout.write(`${files.length} profile(s): ${s.totalMs} ms sampled, ${busy} ms busy (${Math.round((100 * busy) / s.totalMs)}%)\n\n`);
  process.stdout.write('| self ms | % of busy | where |\n|--:|--:|---|\n');
  for (const f of s.byPlace) process.stdout.write(`| ${f.selfMs} | ${f.share} | ${f.name} |\n`);
  process.stdout.write('\n| self ms | % of busy | function |\n|--:|--:|---|\n');
  for (const f of s.byFunction) process.stdout.write(`| ${f.selfMs} | ${f.share} | \`${f.name}\` |\n`);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) main();
