/**
 * The benchmark's results as markdown tables (stdout and RESULTS.md) and the
 * shape of the JSON file.
 */
import type { CaseResult } from '../case.js';
import type { Machine } from './machine.js';

export interface FloorResult {
  jobs: number;
  seconds: number;
  jobsPerSec: number;
  settings: string;
  cpuPer1k: Record<string, number>;
  messages?: number;
}

export interface RunResults {
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  command: string;
  options: { jobs: number; latencySeconds: number; concurrency: number; bulkSize: number; only: string[] | null };
  machine: Machine;
  cases: Array<CaseResult & { loadAvg1: number }>;
  limits: {
    sql?: FloorResult;
    kafka?: FloorResult;
    kafkaDispatchOnly?: FloorResult;
    kafkaPlatformatic?: FloorResult;
    kafkaPlatformaticDispatchOnly?: FloorResult;
    /** kafkajs moving the scheduler's records as published by default: transitions packed per partition. */
    kafkaPacked?: FloorResult;
  };
  failures: Array<{ what: string; error: string }>;
}

export const LABELS: Record<string, string> = {
  'ats-mysql': 'ats · MariaDB+Kafka · one process',
  'ats-split': 'ats · MariaDB+Kafka · api/relay/worker apart · HTTP submits',
  'ats-split-direct': 'ats · MariaDB+Kafka · api/relay/worker apart · submitMany',
  'ats-embedded': 'ats · embedded (SQLite, in-process log)',
  bullmq: 'BullMQ · Redis as found (no persistence)',
  'bullmq-aof': 'BullMQ · Redis AOF everysec',
  pgboss: 'pg-boss · PostgreSQL',
};

const PEERS = ['bullmq', 'bullmq-aof', 'pgboss'] as const;
const label = (s: string) => LABELS[s] ?? s;
const num = (n: number | undefined, digits = 0) =>
  n === undefined || !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ratio = (a: number | undefined, b: number | undefined) => (a && b ? `${num(a / b, a / b < 0.1 ? 3 : 2)}×` : '–');

function perProcess(o: Record<string, number>, digits: number, total: boolean): string {
  const parts = Object.entries(o).map(([k, v]) => `${k} ${num(v, digits)}`);
  const sum = Object.values(o).reduce((a, b) => a + b, 0);
  return parts.join(' · ') + (total && parts.length > 1 ? ` (Σ ${num(sum, digits)})` : '');
}

function rows(results: RunResults, workload: string): Array<CaseResult & { loadAvg1: number }> {
  return results.cases.filter((c) => c.workload === workload);
}

function throughputTable(results: RunResults, workload: 'throughput' | 'retry'): string[] {
  const cases = rows(results, workload);
  if (cases.length === 0) return [];
  const peer = (name: string) => cases.find((c) => c.system === name)?.jobsPerSec;
  const head = `| system | jobs | jobs/s | vs BullMQ | vs BullMQ AOF | vs pg-boss | submit s | CPU s per 1,000 jobs | peak RSS MiB | load |`;
  const lines = [head, '|---|--:|--:|--:|--:|--:|--:|---|---|--:|'];
  for (const c of cases) {
    lines.push(`| ${label(c.system)} | ${num(c.jobs)} | **${num(c.jobsPerSec)}** | ${PEERS.map((p) => ratio(c.jobsPerSec, peer(p))).join(' | ')} | ${num(c.submitSeconds, 1)} | ${perProcess(c.cpuPer1k, 2, true)} | ${perProcess(c.peakMiB, 0, false)} | ${num(c.loadAvg1, 1)} |`);
  }
  return lines;
}

function latencyTable(results: RunResults): string[] {
  const cases = rows(results, 'latency').filter((c) => c.latency);
  if (cases.length === 0) return [];
  const lines = [
    '| system | rate target / achieved | submit→start p50 / p95 / p99 ms | submit→done p50 / p95 / p99 ms | submit call p50 / p99 ms | CPU s per 1,000 jobs | peak RSS MiB | load |',
    '|---|--:|--:|--:|--:|---|---|--:|',
  ];
  for (const c of cases) {
    const l = c.latency!;
    const trio = (s: { p50: number; p95: number; p99: number }) => `${num(s.p50)} / ${num(s.p95)} / ${num(s.p99)}`;
    lines.push(`| ${label(c.system)} | ${num(l.targetRate)} / ${num(l.achievedRate)} | ${trio(l.startMs)} | ${trio(l.doneMs)} | ${num(l.submitCallMs.p50)} / ${num(l.submitCallMs.p99)} | ${perProcess(c.cpuPer1k, 2, true)} | ${perProcess(c.peakMiB, 0, false)} | ${num(c.loadAvg1, 1)} |`);
  }
  const overloaded = rows(results, 'latency-overload').filter((c) => c.latency);
  if (overloaded.length > 0) lines.push('');
  for (const c of overloaded) {
    const l = c.latency!;
    lines.push(`- ${label(c.system)}: paced at ${num(l.targetRate)} jobs/s, one-at-a-time submits reached only ${num(l.achievedRate)} jobs/s (submit call p50 ${num(l.submitCallMs.p50)} ms, submit→done p50 ${num(l.doneMs.p50)} ms); the row above is a second try at half of that.`);
  }
  return lines;
}

function limitTable(results: RunResults): string[] {
  const { sql, kafka, kafkaPacked, kafkaDispatchOnly, kafkaPlatformatic, kafkaPlatformaticDispatchOnly } = results.limits;
  if (!sql && !kafka) return [];
  const lines = ['| component floor | jobs/s | what it does | CPU s per 1,000 jobs |', '|---|--:|---|---|'];
  if (sql) lines.push(`| SQL on MariaDB | ${num(sql.jobsPerSec)} | ${sql.settings} | ${perProcess(sql.cpuPer1k, 3, false)} |`);
  if (kafka) lines.push(`| raw kafkajs | ${num(kafka.jobsPerSec)} | ${kafka.settings} | ${perProcess(kafka.cpuPer1k, 3, false)} |`);
  if (kafkaPacked) lines.push(`| raw kafkajs, transitions packed | ${num(kafkaPacked.jobsPerSec)} | ${kafkaPacked.settings} | ${perProcess(kafkaPacked.cpuPer1k, 3, false)} |`);
  if (kafkaDispatchOnly) lines.push(`| raw kafkajs, dispatch only | ${num(kafkaDispatchOnly.jobsPerSec)} | ${kafkaDispatchOnly.settings} | ${perProcess(kafkaDispatchOnly.cpuPer1k, 3, false)} |`);
  if (kafkaPlatformatic) lines.push(`| raw @platformatic/kafka | ${num(kafkaPlatformatic.jobsPerSec)} | ${kafkaPlatformatic.settings} | ${perProcess(kafkaPlatformatic.cpuPer1k, 3, false)} |`);
  if (kafkaPlatformaticDispatchOnly) lines.push(`| raw @platformatic/kafka, dispatch only | ${num(kafkaPlatformaticDispatchOnly.jobsPerSec)} | ${kafkaPlatformaticDispatchOnly.settings} | ${perProcess(kafkaPlatformaticDispatchOnly.cpuPer1k, 3, false)} |`);
  // Kafka's floor is the client moving what the scheduler publishes: packed transitions, as shipped, when measured.
  const floors = [sql, kafkaPacked ?? kafka].filter((f): f is FloorResult => !!f);
  const lower = floors.reduce((a, b) => (a.jobsPerSec <= b.jobsPerSec ? a : b));
  const ours = results.cases.filter((c) => c.workload === 'throughput' && c.system.startsWith('ats-') && c.system !== 'ats-embedded');
  lines.push('');
  lines.push(`Lower floor: **${num(lower.jobsPerSec)} jobs/s** (${lower === sql ? 'SQL' : 'Kafka'}).`);
  for (const c of ours) lines.push(`- ${label(c.system)}: ${num(c.jobsPerSec)} jobs/s = **${num((100 * c.jobsPerSec) / lower.jobsPerSec, 1)}%** of it.`);
  return lines;
}

/** All tables, as markdown. */
export function renderTables(results: RunResults): string {
  const o = results.options;
  const out: string[] = [];
  const section = (title: string, body: string[]) => {
    if (body.length === 0) return;
    out.push(`### ${title}`, '', ...body, '');
  };
  section(`Throughput: ${num(o.jobs)} no-op jobs submitted in bulk, until all are done`, throughputTable(results, 'throughput'));
  section(`Latency: one job at a time at half the system's measured throughput, ${o.latencySeconds} s`, latencyTable(results));
  section(`Retry-heavy: ${num(o.jobs)} jobs, 30% fail their first attempt and are retried at once`, throughputTable(results, 'retry'));
  section('Component limit', limitTable(results));
  if (results.failures.length > 0) {
    out.push('### Failures', '', ...results.failures.map((f) => `- ${f.what}: ${f.error.split('\n')[0]}`), '');
  }
  return out.join('\n');
}

/** Machine, commands and settings, as markdown. */
export function renderContext(results: RunResults): string {
  const m = results.machine;
  const settings = new Map<string, string>();
  for (const c of results.cases) if (!settings.has(c.system)) settings.set(c.system, c.settings);
  return [
    `Run ${results.startedAt} → ${results.finishedAt} (${Math.round(results.durationSeconds)} s) with \`${results.command}\`.`,
    '',
    `- Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}; load average at start ${m.loadAvgAtStart.join(' / ')} (the "load" column is the 1-minute load when each case started: other work on the machine shows there).`,
    `- MariaDB ${m.mariadb}; ${m.kafka}; Redis ${m.redis}; PostgreSQL ${m.postgres}.`,
    `- Packages: ${Object.entries(m.packages).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    `- Worker concurrency ${results.options.concurrency} everywhere; bulk submits of ${results.options.bulkSize} jobs per call.`,
    '',
    'Settings per system (as the run reported them):',
    '',
    ...[...settings].map(([s, text]) => `- **${label(s)}**: ${text}`),
  ].join('\n');
}
