/** How the client commands print jobs and transitions for people (`--json` prints the API's JSON instead). */
import type { Insights, Job, JobDetail, JobEvent, JobProgress, Limit, Schedule, ScheduleDetail, Worker } from '../client.js';
import { heldText, waitingText } from '../client.js';
import { RunCounter } from '../../machines/runs.js';
import { durationText } from '../duration.js';

/** `attempt` carried by an event's data (STARTED, FAILED, ...), if any. */
export function attemptOf(e: { data: unknown }): number | undefined {
  const a = (e.data as { attempt?: unknown } | null)?.attempt;
  return typeof a === 'number' ? a : undefined;
}

/**
 * Control characters (C0, DEL, C1), the line and paragraph separators, and the
 * bidirectional embeddings, overrides and isolates (U+202A-U+202E,
 * U+2066-U+2069: a right-to-left override would show the rest of the line,
 * the text after it too, reversed): what `oneLine` escapes.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const ESCAPES = new Map([['\n', '\\n'], ['\r', '\\r'], ['\t', '\\t']]);

/**
 * Text from the server that a person reads on one line (a handler's error
 * message, a cancel reason): its newlines and control characters escaped
 * (`\n`, `\u001b`), so that it keeps to its line and no terminal sequence
 * it holds (`ESC [2J`) runs; longer than `max` characters as printed, cut
 * with `…` before the escape or character (a pair of UTF-16 units outside
 * the BMP) that would pass it, never within one.
 */
export function oneLine(text: string, max = Infinity): string {
  const escaped = (c: string) => c.length === 1 && CONTROL.test(c) ? ESCAPES.get(c) ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c;
  if (!CONTROL.test(text) && text.length <= max) return text;
  let out = '';
  for (const c of text) {
    const printed = escaped(c);
    if (out.length + printed.length > max) return `${out}…`;
    out += printed;
  }
  return out;
}

/** Longest error message or reason a line of `watch`, `submit --wait` or `ats get`'s history shows (`--json` has it whole). */
const DETAIL_CHARS = 300;

/** A short reason for a failure event, if it is one. */
function detailOf(e: { type: string; data: unknown }): string {
  const d = e.data as { error?: { message?: unknown }; reason?: unknown; holderGone?: unknown } | null;
  if (e.type === 'FAILED' && typeof d?.error?.message === 'string' && d.error.message) return `  ${oneLine(d.error.message, DETAIL_CHARS)}`;
  if (e.type === 'LEASE_EXPIRED') return d?.holderGone === true ? '  lease ended at the restart (its process had ended)' : '  lease expired (worker gone?)';
  if (e.type === 'CANCEL' && typeof d?.reason === 'string' && d.reason) return `  reason: ${oneLine(d.reason, DETAIL_CHARS)}`;
  return '';
}

/**
 * An attempt (the machine's, counting across runs) as a person reads it:
 * `2/3` in the first run; after a redrive, within its run, with the run and
 * the count across runs (`1/2 in run 2, 3 in all`), which is what events,
 * errors and progress number it by.
 */
export function attemptText(attempt: number, maxAttempts: number | undefined, runs: RunCounter): string {
  const inRun = Math.max(0, attempt - runs.base);
  const ofMax = maxAttempts ? `${inRun}/${maxAttempts}` : String(inRun);
  return runs.run === 1 ? ofMax : `${ofMax} in run ${runs.run}, ${attempt} in all`;
}

/**
 * Keeps the attempt number across a job's events (only some carry it), for
 * lines like `... running  attempt 1/3` (within its run after a redrive).
 */
export class AttemptTracker {
  private attempt = 0;
  private readonly runs = new RunCounter();
  constructor(private readonly maxAttempts?: number) {}

  see(e: JobEvent): string {
    this.attempt = this.runs.see(e) ?? this.attempt;
    return `attempt ${attemptText(this.attempt, this.maxAttempts, this.runs)}`;
  }
}

/** `2030-01-01T12:00:00.000Z  running    attempt 1/3  STARTED` (one line of `submit --wait`). */
export function stateLine(e: JobEvent, attempt: string): string {
  return `${e.at}  ${e.to.padEnd(9)}  ${attempt.padEnd(12)}  ${e.type}${detailOf(e)}`;
}

/** A progress value: a number as a percentage (`40%`), an object as its JSON (shortened past `max` characters). */
export function progressValue(value: unknown, max = 200): string {
  return typeof value === 'number' ? `${value}%` : short(value, max);
}

/** `2030-01-01T12:00:00.000Z  progress   attempt 1/3  40%` (a progress line of `submit --wait`). */
export function progressLine(p: JobProgress, maxAttempts?: number): string {
  const attempt = maxAttempts ? `attempt ${p.attempt}/${maxAttempts}` : `attempt ${p.attempt}`;
  return `${p.at}  ${'progress'.padEnd(9)}  ${attempt.padEnd(12)}  ${progressValue(p.value)}`;
}

/** `2030-...Z  01J...  demo.echo  published -> running  STARTED  attempt 1` (one line of `watch`). */
export function transitionLine(e: JobEvent & { jobId: string; jobType: string; queue: string }): string {
  const a = attemptOf(e);
  const move = `${e.from ?? '(new)'} -> ${e.to}`;
  return `${e.at}  ${e.jobId}  ${e.jobType}  ${e.queue}  ${move.padEnd(22)}  ${e.type}${a === undefined ? '' : `  attempt ${a}`}${detailOf(e)}`;
}

/** `v` as JSON (which escapes C0 controls itself; `oneLine` escapes DEL and C1 too), shortened past `max` characters. */
export function short(v: unknown, max = 200): string {
  const text = JSON.stringify(v) ?? 'null';
  return oneLine(text.length > max ? `${text.slice(0, max)}...` : text);
}

/**
 * Label and value lines, the values in one column: at `min` at least, past
 * the longest label (`concurrencyKey`) when one is longer.
 */
export function labelled(fields: ReadonlyArray<readonly [string, string]>, min = 12): string[] {
  const width = fields.reduce((w, [k]) => Math.max(w, k.length), min);
  return fields.map(([k, v]) => `${k.padEnd(width)} ${v}`);
}

/** A job with its history, as `ats get` prints it. */
export function jobDetail(job: JobDetail): string {
  const e = job.lastError;
  const why = e && !e.retryable ? (e.decidedBy === 'advisor' ? `, not retried: advisor: ${e.advice ?? 'hopeless'}` : ', not retryable') : '';
  const err = e ? `${oneLine(e.message)} (attempt ${e.attempt}${why})` : '-';
  const fields: Array<[string, string]> = [
    ['id', job.id], ['type', job.type], ['queue', job.queue], ['state', job.state],
    ...(job.waiting ? [['waiting', waitingText(job, job.waiting, oneLine)] as [string, string]] : []),
    ['attempt', attemptText(job.attempt, job.maxAttempts, RunCounter.of(job.events))],
    // The whole object (at most 1 KiB): the latest progress is what a person asks `get` for.
    ...(job.progress ? [['progress', `${progressValue(job.progress.value, 1100)} (attempt ${job.progress.attempt}, ${job.progress.at})`] as [string, string]] : []),
    ['payload', short(job.payload)], ['result', short(job.result)], ['lastError', err],
    ...(job.cancelReason ? [['cancelReason', oneLine(job.cancelReason)] as [string, string]] : []),
    // The job's policy, fixed at submit and kept by a redrive: how it is ordered, retried, timed and limited.
    ...(job.priority === undefined ? [] : [['priority', String(job.priority)] as [string, string]]),
    ...(job.backoff === undefined ? [] : [['backoff', backoffText(job.backoff)] as [string, string]]),
    ...(job.timeoutMs === undefined ? [] : [['timeoutMs', String(job.timeoutMs)] as [string, string]]),
    ...(job.concurrencyKey ? [['concurrencyKey', oneLine(job.concurrencyKey)] as [string, string]] : []),
    ['runAt', job.runAt], ['createdAt', job.createdAt], ['updatedAt', job.updatedAt],
    ['allowed', job.allowed?.length ? job.allowed.join(', ') : '-'],
  ];
  if (job.eta) fields.push(['eta', etaText(job.eta)]);
  const head = labelled(fields);
  // Each attempt's error on its FAILED line (lastError is only the last one's), a lease's end and a cancel's reason on theirs.
  const events = table(
    ['SEQ', 'AT', 'EVENT', 'FROM', 'TO', 'ATTEMPT', 'DETAIL'],
    job.events.map((e) => [String(e.seq), e.at, e.type, e.from ?? '-', e.to, String(attemptOf(e) ?? ''), detailOf(e).trimStart()]),
  );
  return [...head, '', 'events', ...events.map((l) => `  ${l}`.trimEnd())].join('\n');
}

/**
 * `start 2030-...Z, finish 2030-...Z (3 ahead, 12.5 starts/s, median run 800 ms)`; an ETA that is
 * a lower bound (`lowerBound`) says `earliest`, and `at least` of the jobs ahead it counted. One its
 * limit decides (`basis.held`) says that instead of the queue's jobs ahead and start rate.
 */
function etaText(eta: NonNullable<JobDetail['eta']>): string {
  const { ahead, startsPerSecond, medianRunMs, startLatencyMs, held } = eta.basis;
  const earliest = eta.lowerBound ? 'earliest ' : '';
  const median = `median run ${Math.round(medianRunMs)} ms`;
  if (held !== undefined) return `${earliest}start ${eta.start}, finish ${eta.finish} (${heldText(held, oneLine)}; ${median})`;
  const rate = startsPerSecond === null ? 'no recent starts' : `${startsPerSecond.toFixed(1)} starts/s`;
  const wait = startLatencyMs === null || startLatencyMs === undefined ? '' : `, started ${Math.round(startLatencyMs)} ms after due`;
  return `${earliest}start ${eta.start}, finish ${eta.finish} (${eta.lowerBound ? 'at least ' : ''}${ahead} ahead, ${rate}${wait}, ${median})`;
}

/** What the advisor learned, as `ats insights` prints it: a table per type and queue, then what it changes. */
export function insightsText(insights: Insights): string {
  const lines = [`advisor: ${insights.mode}, ${insights.events} events learned from`];
  if (insights.types.length === 0) return lines.join('\n');
  lines.push('', ...table(
    ['TYPE', 'QUEUE', 'ATTEMPTS', 'FAILED', 'RUN P50', 'RUN P99', 'LEASE', 'ANOMALIES'],
    insights.types.map((t) => [
      t.type, t.queue, String(t.attempts), String(t.failures),
      t.runMs ? `${Math.round(t.runMs.p50)} ms` : '-', t.runMs ? `${Math.round(t.runMs.p99)} ms` : '-',
      t.lease ? `${t.lease.leaseMs} ms` : '-', String(t.anomalies.length),
    ]),
  ));
  const signatures = insights.types.flatMap((t) => t.signatures.map((s) => [
    t.type, s.verdict, `${s.recovered}/${s.recovered + s.hopeless}`, s.signature,
  ]));
  if (signatures.length > 0) lines.push('', 'failures', ...table(['TYPE', 'VERDICT', 'RECOVERED', 'SIGNATURE'], signatures).map((l) => `  ${l}`));
  const changes = insights.types.flatMap((t) => t.changes.map((c) => `  ${t.type} (${t.queue}): ${c}`));
  if (changes.length > 0) lines.push('', insights.mode === 'enforce' ? 'changes' : 'would change (ATS_ADVISOR=enforce to apply)', ...changes);
  return lines.join('\n');
}

/**
 * Rows of jobs, as `ats ls` prints them. ATTEMPT is within the job's run
 * (`attempt - attemptBase`; a server without `attemptBase` counts 0): after
 * a redrive the machine counts on, and a new run may make `maxAttempts` more
 * (`ats get` shows the count in all).
 */
export function jobTable(jobs: readonly Job[]): string[] {
  return table(
    ['ID', 'TYPE', 'QUEUE', 'STATE', 'ATTEMPT', 'UPDATED'],
    jobs.map((j) => [j.id, j.type, j.queue, j.state, `${j.attempt - (j.attemptBase ?? 0)}/${j.maxAttempts}`, j.updatedAt]),
  );
}

/** Left-aligned columns two spaces apart; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)];
}

/** `yes` / `no`. */
const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

/** Rows of schedules, as `ats schedule ls` prints them. */
export function scheduleTable(schedules: readonly Schedule[]): string[] {
  return table(
    ['NAME', 'CRON', 'TZ', 'NEXT RUN', 'PAUSED', 'LAST TICK', 'SUBMITTED/SKIPPED/MISSED'],
    schedules.map((s) => [
      s.name, s.cron, s.timezone, s.nextRunAt ?? '-', yesNo(s.paused), s.lastTickAt ?? '-', `${s.submitted}/${s.skipped}/${s.missed}`,
    ]),
  );
}

/** `exponential 1000..60000 ms, full jitter` or `fixed 500 ms`. */
function backoffText(b: Schedule['job']['backoff']): string {
  return b.kind === 'fixed' ? `fixed ${b.delayMs} ms` : `exponential ${b.baseMs}..${b.maxMs} ms, ${b.jitter} jitter`;
}

/** A schedule with its next runs and recent ticks, as `ats schedule get` prints it. */
export function scheduleDetail(s: ScheduleDetail): string {
  const j = s.job;
  const fields: Array<[string, string]> = [
    ['name', s.name], ['cron', s.cron], ['timezone', s.timezone], ['paused', yesNo(s.paused)], ['overlap', s.overlap],
    ['catchUp', s.catchUp], ['type', j.type], ['queue', j.queue], ['payload', short(j.payload)], ['maxAttempts', String(j.maxAttempts)],
    ['backoff', backoffText(j.backoff)], ['timeoutMs', String(j.timeoutMs)], ['priority', String(j.priority)],
    ['nextRunAt', s.nextRunAt ?? '-'], ['lastTickAt', s.lastTickAt ?? '-'], ['lastJobId', s.lastJobId ?? '-'],
    ['ticks', `${s.submitted} submitted, ${s.skipped} skipped, ${s.missed} missed`],
    ['createdAt', s.createdAt], ['updatedAt', s.updatedAt],
  ];
  const head = labelled(fields);
  const next = s.nextRuns.length > 0 ? s.nextRuns : [s.paused ? 'none (paused)' : 'none'];
  const ticks = s.ticks.length > 0
    ? table(['TICK', 'OUTCOME', 'JOB', 'FIRED'], s.ticks.map((t) => [t.tickAt, t.outcome, t.jobId ?? '-', t.at]))
    : ['none yet'];
  return [...head, '', 'next runs', ...next.map((l) => `  ${l}`), '', 'recent ticks (newest first)', ...ticks.map((l) => `  ${l}`)].join('\n');
}

/** Rows of workers, as `ats workers` prints them (`*` in QUEUES: every queue; TYPES comma-separated). */
export function workerTable(workers: readonly Worker[]): string[] {
  return table(
    ['ID', 'HOST', 'PID', 'QUEUES', 'TYPES', 'CONCURRENCY', 'LAST SEEN', 'LIVE'],
    workers.map((w) => [
      w.id, w.host, String(w.pid), w.queues.join(','), w.types.length > 0 ? w.types.join(',') : '-', String(w.concurrency), w.lastSeenAt, yesNo(w.live),
    ]),
  );
}

/** `100/1m` (what `--rate` takes), or `-` for no rate. */
export function rateText(rate: Limit['rate']): string {
  return rate ? `${rate.max}/${durationText(rate.intervalMs)}` : '-';
}

/** Rows of limits, as `ats limits ls` prints them (`-`: no cap). */
export function limitTable(limits: readonly Limit[]): string[] {
  return table(
    ['KEY', 'CONCURRENCY', 'RUNNING', 'RATE', 'UPDATED'],
    limits.map((l) => [l.key, l.concurrency === null ? '-' : concurrencyText(l.concurrency), String(l.running), rateText(l.rate), l.updatedAt]),
  );
}

/** `5`, or `0 (paused)`: a concurrency of 0 starts none of the key's jobs. */
const concurrencyText = (n: number): string => (n === 0 ? '0 (paused)' : String(n));

/** A limit, as `ats limits get` prints it. */
export function limitDetail(l: Limit): string {
  const step = l.rate ? ` (one start every ${Math.ceil(l.rate.intervalMs / l.rate.max)} ms at most)` : '';
  const fields: Array<[string, string]> = [
    ['key', l.key],
    ['concurrency', l.concurrency === null ? '- (no cap)' : l.concurrency === 0 ? '0 (paused: none of its jobs starts)' : String(l.concurrency)],
    ['running', String(l.running)],
    ['rate', l.rate ? `${rateText(l.rate)}${step}` : '- (no cap)'],
    ['createdAt', l.createdAt], ['updatedAt', l.updatedAt],
  ];
  return labelled(fields).join('\n');
}

/** `email: concurrency 5, rate 100/1m` (what `ats limits set` prints). */
export function limitLine(l: Limit): string {
  const parts = [...(l.concurrency === null ? [] : [`concurrency ${concurrencyText(l.concurrency)}`]), ...(l.rate ? [`rate ${rateText(l.rate)}`] : [])];
  return `${l.key}: ${parts.join(', ')}`;
}

/** `v` as one word of a POSIX shell: as it is when it needs no quotes, else single-quoted. */
export function shellWord(v: string): string {
  return /^[A-Za-z0-9._:/@%+=,-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command that lists the next page: `command` with each option given
 * (`--url` too: a cursor holds only where the last page ended, so a command
 * without the filters would list other rows), each value quoted for a POSIX shell when needed.
 */
export function moreHint(command: string, options: ReadonlyArray<readonly [string, string | number | undefined]>): string {
  // `--flag=value`: a name may start with `-`, which after a space would be read as an option.
  const parts = options.filter(([, v]) => v !== undefined).map(([flag, v]) => `--${flag}=${shellWord(String(v))}`);
  return `more: ${[command, ...parts].join(' ')}`;
}
