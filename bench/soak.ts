/**
 * Soak benchmark (by hand, never in CI): N jobs in steady batches through one
 * scheduler process, sampling every `--sample-ms` what should stay flat over
 * a long run: the scheduler's RSS and heap, the row count and on-disk size of
 * every table, and the Kafka consumer groups (state, members, lag). Writes
 * the samples as JSON under bench/results/ and prints a markdown table, an
 * ASCII plot and a trend slope per metric, to paste into bench/SOAK.md.
 *
 *   node --import tsx bench/soak.ts [--mode embedded|mysql] [--jobs N] [--sample-ms 10000]
 *                                   [--rate 1000] [--batch 500] [--linger-ms 0] [--out FILE]
 *
 * --mode embedded (default, 200,000 jobs): SQLite file + in-process log.
 * --mode mysql (100,000 jobs): MariaDB (MYSQL_URL, a fresh `ats_bench_*`
 *   database) + Kafka (KAFKA_BROKERS, a fresh topic prefix).
 * The scheduler runs all its roles in a child process (this file with
 * `--host`, configured from the environment like `ats start`), so its memory
 * is its own; settings such as ATS_RETENTION_DONE=60s pass through the
 * environment. Submits go in as `submitMany` batches of `--batch` jobs paced
 * to `--rate` jobs/s; when more than 20 batches are unfinished the driver
 * waits (a soak measures steady state, not an ever-growing backlog).
 * `--linger-ms` keeps sampling after the last job finished (watch retention
 * empty the tables).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { Kafka, logLevel } from 'kafkajs';
import { createPool, type Pool } from 'mysql2/promise';
import { runId, makeJobs, type BenchJob } from './lib/driver.js';
import { memoryOf } from './lib/proc.js';
import { createBenchDatabase, deleteTopicsWithPrefix, kafkaBrokers } from './lib/services.js';
import { round, sleep } from './lib/stats.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** What the scheduler process reports about itself. */
interface HostStats {
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  succeeded: number;
  failed: number;
}

interface GroupSample {
  group: string;
  state: string;
  members: number;
  /** Sum over partitions of (log end offset - committed offset). */
  lag: number;
}

export interface Sample {
  /** Seconds since the first submit. */
  t: number;
  submitted: number;
  /** Jobs whose SUCCEEDED the worker recorded (counted in the scheduler: retention may delete the rows). */
  done: number;
  host: HostStats;
  /** Rows per table. */
  rows: Record<string, number>;
  /** On-disk bytes per table (MariaDB: data + index + free) or per file (SQLite: the db, -wal, -shm). */
  bytes: Record<string, number>;
  groups: GroupSample[];
}

// ---------------------------------------------------------------- the scheduler process

type HostRequest = { id: number; cmd: 'submit'; jobs: BenchJob[] } | { id: number; cmd: 'stats' } | { id: number; cmd: 'stop' };

async function host(): Promise<void> {
  const { configFrom } = await import('../cli/start.js');
  const { compose } = await import('../cli/compose.js');
  const { createLogger } = await import('../engine/logger.js');
  const { benchSpec } = await import('./systems/ats.js');
  const config = configFrom(process.env, []);
  const system = await compose(config, { logger: createLogger(config.logLevel) });
  await system.start();
  const mib = (b: number) => round(b / 2 ** 20, 1);
  process.on('message', (raw) => {
    const m = raw as HostRequest;
    const reply = (body: object) => process.send!({ id: m.id, ...body });
    if (m.cmd === 'submit') {
      system.transitions.submitMany(m.jobs.map(benchSpec)).then(
        (r) => reply({ ok: true, n: r.length }),
        (err: unknown) => reply({ ok: false, error: String(err) }),
      );
    } else if (m.cmd === 'stats') {
      const mem = process.memoryUsage();
      const c = system.worker?.counters;
      reply({
        ok: true,
        stats: {
          rssMiB: mib(mem.rss), heapUsedMiB: mib(mem.heapUsed), heapTotalMiB: mib(mem.heapTotal), externalMiB: mib(mem.external),
          succeeded: c?.succeeded ?? 0, failed: c?.failed ?? 0,
        } satisfies HostStats,
      });
    } else if (m.cmd === 'stop') {
      // A step that failed to stop is logged; the soak still ends.
      system.stop().catch(() => undefined).then(() => { reply({ ok: true }); process.exit(0); });
    }
  });
  process.send!({ id: 0, ok: true, ready: true });
}

/** The child: requests by id over IPC. */
class Host {
  private next = 1;
  private readonly waiting = new Map<number, (m: { ok: boolean; error?: string } & Record<string, unknown>) => void>();
  private constructor(readonly child: ChildProcess) {
    child.on('message', (raw) => {
      const m = raw as { id: number; ok: boolean };
      this.waiting.get(m.id)?.(m);
      this.waiting.delete(m.id);
    });
  }

  static start(env: Record<string, string>): Promise<Host> {
    const child = fork(fileURLToPath(import.meta.url), ['--host'], {
      cwd: root, execArgv: ['--import', 'tsx'], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const h = new Host(child);
    return new Promise((resolve, reject) => {
      h.waiting.set(0, () => resolve(h));
      child.once('exit', (code) => reject(new Error(`the scheduler process exited (${code}) before it was ready`)));
    });
  }

  request<T>(body: Record<string, unknown>): Promise<T> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (m) => (m.ok ? resolve(m as T) : reject(new Error(m.error))));
      this.child.send({ id, ...body });
    });
  }
}

// ---------------------------------------------------------------- what is sampled

interface Probe {
  tables(): Promise<{ rows: Record<string, number>; bytes: Record<string, number> }>;
  groups(): Promise<GroupSample[]>;
  close(): Promise<void>;
}

function sqliteProbe(dir: string): Probe {
  const file = join(dir, 'ats.sqlite');
  let db: Database.Database | null = null;
  return {
    async tables() {
      db ??= new Database(file, { readonly: true, fileMustExist: true });
      const names = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name);
      const rows = Object.fromEntries(names.map((n) => [n, Number((db!.prepare(`SELECT COUNT(*) AS n FROM "${n}"`).get() as { n: number }).n)]));
      const bytes: Record<string, number> = {};
      for (const f of readdirSync(dir)) if (f.startsWith('ats.sqlite')) bytes[f] = statSync(join(dir, f)).size;
      return { rows, bytes };
    },
    groups: async () => [],
    async close() {
      db?.close();
    },
  };
}

function mysqlProbe(pool: Pool, database: string, prefix: string): Probe {
  const kafka = new Kafka({ clientId: 'ats-soak', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  let connected: Promise<void> | null = null;
  return {
    async tables() {
      const [info] = await pool.query(
        'SELECT TABLE_NAME AS name, DATA_LENGTH + INDEX_LENGTH + DATA_FREE AS bytes FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME',
        [database]);
      const rows: Record<string, number> = {};
      const bytes: Record<string, number> = {};
      for (const t of info as Array<{ name: string; bytes: number | string }>) {
        const [[c]] = (await pool.query(`SELECT COUNT(*) AS n FROM \`${t.name}\``)) as unknown as [[{ n: number | string }]];
        rows[t.name] = Number(c.n);
        bytes[t.name] = Number(t.bytes);
      }
      return { rows, bytes };
    },
    async groups() {
      connected ??= admin.connect();
      await connected;
      const ids = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(prefix)).sort();
      if (ids.length === 0) return [];
      const described = new Map((await admin.describeGroups(ids)).groups.map((g) => [g.groupId, g]));
      const ends = new Map<string, Map<number, number>>();
      const out: GroupSample[] = [];
      for (const group of ids) {
        let lag = 0;
        for (const t of await admin.fetchOffsets({ groupId: group })) {
          if (!ends.has(t.topic)) ends.set(t.topic, new Map((await admin.fetchTopicOffsets(t.topic)).map((p) => [p.partition, Number(p.high)])));
          for (const p of t.partitions) {
            const end = ends.get(t.topic)!.get(p.partition) ?? 0;
            lag += Number(p.offset) >= 0 ? end - Number(p.offset) : end;
          }
        }
        const d = described.get(group);
        out.push({ group: group.slice(prefix.length), state: d?.state ?? '?', members: d?.members.length ?? 0, lag });
      }
      return out;
    },
    async close() {
      if (connected) await admin.disconnect();
    },
  };
}

// ---------------------------------------------------------------- report

/** Least-squares slope of y over t (per minute). */
export function slopePerMinute(points: ReadonlyArray<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mt = points.reduce((s, [t]) => s + t, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [t, y] of points) {
    num += (t - mt) * (y - my);
    den += (t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60;
}

const BARS = '▁▂▃▄▅▆▇█';
/** One line per metric: its samples as bars scaled from its min to its max. */
export function sparkline(values: readonly number[], width = 60): string {
  if (values.length === 0) return '';
  const step = Math.max(1, Math.ceil(values.length / width));
  const picked = values.filter((_, i) => i % step === 0);
  const lo = Math.min(...picked);
  const hi = Math.max(...picked);
  return picked.map((v) => BARS[hi === lo ? 3 : Math.round(((v - lo) / (hi - lo)) * 7)]).join('');
}

/** The metrics worth a trend, by name, from the samples. */
function series(samples: readonly Sample[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const put = (name: string, i: number, v: number) => {
    if (!out.has(name)) out.set(name, new Array(samples.length).fill(0));
    out.get(name)![i] = v;
  };
  samples.forEach((s, i) => {
    put('rss MiB', i, s.host.rssMiB);
    put('heap used MiB', i, s.host.heapUsedMiB);
    put('backlog (submitted - done)', i, s.submitted - s.done);
    for (const [t, n] of Object.entries(s.rows)) put(`rows ${t}`, i, n);
    for (const [t, b] of Object.entries(s.bytes)) put(`MiB ${t}`, i, round(b / 2 ** 20, 2));
    for (const g of s.groups) put(`lag ${g.group}`, i, g.lag);
  });
  return out;
}

export function renderReport(meta: Record<string, unknown>, samples: readonly Sample[]): string {
  const lines: string[] = [];
  lines.push(`Soak: ${Object.entries(meta).map(([k, v]) => `${k} ${v}`).join(', ')}`, '');
  const tables = [...new Set(samples.flatMap((s) => Object.keys(s.rows)))];
  lines.push(`| t (s) | submitted | done | RSS MiB | heap MiB | ${tables.map((t) => `${t} rows`).join(' | ')} | disk MiB | groups (state/members/lag) |`);
  lines.push(`|${'---|'.repeat(7 + tables.length)}`);
  for (const s of samples) {
    const disk = round(Object.values(s.bytes).reduce((a, b) => a + b, 0) / 2 ** 20, 1);
    const groups = s.groups.map((g) => `${g.group}: ${g.state}/${g.members}/${g.lag}`).join('; ') || '-';
    lines.push(`| ${s.t} | ${s.submitted} | ${s.done} | ${s.host.rssMiB} | ${s.host.heapUsedMiB} | ${tables.map((t) => s.rows[t] ?? '').join(' | ')} | ${disk} | ${groups} |`);
  }
  lines.push('', 'Trend (least-squares slope over the second half of the samples, per minute) and plot (min to max, over the whole run):', '', '```');
  const half = samples.slice(Math.floor(samples.length / 2));
  const width = Math.max(...[...series(samples).keys()].map((k) => k.length));
  for (const [name, values] of series(samples)) {
    const slope = slopePerMinute(half.map((s, i) => [s.t, values[samples.length - half.length + i]!]));
    lines.push(`${name.padEnd(width)}  ${sparkline(values)}  min ${Math.min(...values)} max ${Math.max(...values)} slope ${round(slope, 2)}/min`);
  }
  lines.push('```');
  return lines.join('\n');
}

// ---------------------------------------------------------------- the run

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      mode: { type: 'string', default: 'embedded' }, jobs: { type: 'string' }, 'sample-ms': { type: 'string', default: '10000' },
      rate: { type: 'string' }, batch: { type: 'string', default: '500' }, 'linger-ms': { type: 'string', default: '0' },
      out: { type: 'string' },
    },
  });
  const mode = a.mode as 'embedded' | 'mysql';
  if (mode !== 'embedded' && mode !== 'mysql') throw new Error(`--mode must be embedded or mysql (got ${mode})`);
  const jobs = Number(a.jobs ?? (mode === 'embedded' ? 200_000 : 100_000));
  const sampleMs = Number(a['sample-ms']);
  const rate = Number(a.rate ?? (mode === 'embedded' ? 1000 : 500));
  const batch = Number(a.batch);
  const lingerMs = Number(a['linger-ms']);
  const log = (msg: string) => process.stderr.write(`[soak] ${msg}\n`);

  const id = runId();
  let env: Record<string, string>;
  let probe: Probe;
  let cleanup: () => Promise<void>;
  const base = { ATS_HANDLERS: 'bench/handlers.ts', PORT: '0', LOG_LEVEL: process.env.LOG_LEVEL ?? 'error', ATS_ROLES: 'api,relay,worker,timers' };
  if (mode === 'embedded') {
    const dir = mkdtempSync(join(tmpdir(), 'ats-soak-'));
    env = { ...base, ATS_DATA_DIR: dir, MYSQL_URL: '', KAFKA_BROKERS: '' };
    probe = sqliteProbe(dir);
    cleanup = async () => rmSync(dir, { recursive: true, force: true });
  } else {
    const db = await createBenchDatabase(`soak_${id}`);
    const prefix = `ats-soak-${id}.`;
    env = { ...base, MYSQL_URL: db.url, KAFKA_BROKERS: kafkaBrokers().join(','), ATS_TOPIC_PREFIX: prefix };
    const pool = createPool({ uri: db.url, connectionLimit: 2 });
    probe = mysqlProbe(pool, db.name, prefix);
    cleanup = async () => {
      await pool.end();
      await db.drop();
      await deleteTopicsWithPrefix(prefix).catch(() => undefined);
    };
  }
  const passed = Object.keys(process.env).filter((k) => k.startsWith('ATS_') && !(k in env)).map((k) => `${k}=${process.env[k]}`);
  log(`mode ${mode}, ${jobs} jobs at ${rate}/s in batches of ${batch}, sample every ${sampleMs} ms; passed through: ${passed.join(' ') || 'nothing'}`);

  const h = await Host.start(env);
  const samples: Sample[] = [];
  let submitted = 0;
  let done = 0;
  const t0 = Date.now();
  const take = async () => {
    const { stats } = await h.request<{ stats: HostStats }>({ cmd: 'stats' });
    done = stats.succeeded;
    const { rows, bytes } = await probe.tables();
    const groups = await probe.groups().catch((err: unknown) => [{ group: `error: ${String(err)}`, state: '?', members: 0, lag: 0 }]);
    const s: Sample = { t: round((Date.now() - t0) / 1000, 0), submitted, done, host: { ...stats, rssMiB: round(memoryOf(h.child.pid!).rssMiB, 1) }, rows, bytes, groups };
    samples.push(s);
    log(`t=${s.t}s submitted ${submitted} done ${done} rss ${s.host.rssMiB} MiB heap ${s.host.heapUsedMiB} MiB rows ${JSON.stringify(rows)}`);
  };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await take().catch((err: unknown) => log(`sample failed: ${String(err)}`));
      const next = t0 + samples.length * sampleMs;
      while (sampling && Date.now() < next) await sleep(Math.min(250, next - Date.now()));
    }
  })();

  try {
    for (let from = 0; from < jobs; from += batch) {
      const due = t0 + (from / rate) * 1000;
      while (Date.now() < due || submitted - done > 20 * batch) {
        await sleep(Math.max(5, Math.min(100, due - Date.now())));
        if (submitted - done > 20 * batch) done = (await h.request<{ stats: HostStats }>({ cmd: 'stats' })).stats.succeeded;
      }
      const n = Math.min(batch, jobs - from);
      await h.request({ cmd: 'submit', jobs: makeJobs(n, 0.1, from) });
      submitted += n;
    }
    log(`all ${jobs} submitted after ${round((Date.now() - t0) / 1000, 1)} s; waiting for them to finish`);
    while (done < jobs) {
      await sleep(500);
      done = (await h.request<{ stats: HostStats }>({ cmd: 'stats' })).stats.succeeded;
    }
    const finished = Date.now();
    log(`all done after ${round((finished - t0) / 1000, 1)} s${lingerMs > 0 ? `; sampling ${lingerMs} ms more` : ''}`);
    while (Date.now() - finished < lingerMs) await sleep(250);
  } finally {
    sampling = false;
    await sampler;
    await take().catch(() => undefined);
    await h.request({ cmd: 'stop' }).catch(() => undefined);
    await probe.close();
    await cleanup();
  }

  const meta = {
    mode, jobs, rate: `${rate}/s`, batch, sampleMs, settings: passed.join(' ') || 'defaults', at: new Date(t0).toISOString(),
  };
  const out = a.out ?? join(root, `bench/results/soak-${mode}-${new Date(t0).toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ meta, samples }, null, 2));
  const report = renderReport(meta, samples);
  writeFileSync(out.replace(/\.json$/, '.md'), `${report}\n`);
  process.stdout.write(`${report}\n`);
  log(`wrote ${out} and its .md`);
}

if (process.argv.includes('--host')) {
  host().catch((err: unknown) => {
    process.stderr.write(`soak host: ${(err as Error)?.stack ?? err}\n`);
    process.exit(1);
  });
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(() => process.exit(0), (err: unknown) => {
    process.stderr.write(`soak: ${(err as Error)?.stack ?? err}\n`);
    process.exit(1);
  });
}

