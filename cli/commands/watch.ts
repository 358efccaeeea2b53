/**
 * `ats watch [--job ID] [--type T] [--queue Q] [--state S,...]`: one line per
 * transition, live, until Ctrl-C. Over the stream a dropped connection is
 * resumed from the last cursor (no gap, no duplicate); a server without a
 * stream is polled instead (the newest jobs only — see `pollTransitions`).
 * A stream that ends by itself — its key refused (revoked: a close with
 * 4401; or a reconnect answered 401 or 403) — ends the command with that
 * error (exit 1).
 */
import { JOB_STATES, type AtsClient, type Job, type JobEvent } from '../client.js';
import { oneOf, str } from './args.js';
import { repeat, trySubscribe } from './follow.js';
import { transitionLine } from './output.js';
import { clientCommand, err, out, type CommandSpec } from './run.js';
import type { CommandFilter as StreamFilter } from './stream.js';

export const watchSpec: CommandSpec = {
  usage: 'ats watch [--job ID] [--type T] [--queue Q] [--state S,...] [--cursor C] [--json]',
  details: [
    `--state S,...  only transitions into these states (${JOB_STATES.join(', ')})`,
    '--cursor C     replay every matching transition after this stream cursor first',
    '--json         one JSON object per transition, with its cursor',
    'Ctrl-C stops (exit 0). Without a stream route on the server, the newest jobs are polled every second.',
    'A key the server stops taking (revoked) ends the watch: ATS_ERR_UNAUTHORIZED on stderr, exit 1.',
  ],
  options: {
    job: { type: 'string' }, type: { type: 'string' }, queue: { type: 'string' },
    state: { type: 'string' }, cursor: { type: 'string' }, json: { type: 'boolean' },
  },
  positionals: [0, 0],
};

/** A transition with the job it belongs to (what a stream event carries). */
export type Transition = JobEvent & { jobId: string; jobType: string; queue: string; cursor?: string };

/** `stopped` resolves on the first SIGINT/SIGTERM; `dispose()` removes the listeners. */
function interrupted(): { stopped: Promise<void>; dispose(): void } {
  let resolve!: () => void;
  const stopped = new Promise<void>((r) => (resolve = r));
  const on = () => resolve();
  process.once('SIGINT', on);
  process.once('SIGTERM', on);
  return { stopped, dispose: () => void process.off('SIGINT', on).off('SIGTERM', on) };
}

export const watchCommand = clientCommand(watchSpec, async ({ client, values }) => {
  const filter: StreamFilter = {};
  const job = str(values, 'job');
  const type = str(values, 'type');
  const queue = str(values, 'queue');
  const states = oneOf(values, 'state', JOB_STATES, { many: true });
  if (job) filter.jobId = job;
  if (type) filter.type = type;
  if (queue) filter.queue = queue;
  if (states) filter.states = states;
  const print = (t: Transition) => out(values.json ? JSON.stringify(t) : transitionLine(t));
  const { stopped, dispose } = interrupted();
  try {
    const sub = await trySubscribe(client, filter, print, { onNotice: err, cursor: str(values, 'cursor') });
    if (sub) {
      const ended = await Promise.race([stopped.then(() => null), sub.ended]);
      sub.close();
      if (ended !== null) throw ended; // told as any error: `code: message` on stderr, exit 1
      return 0;
    }
    err(`ats: ${client.url} has no stream route; polling ${job ? 'the job' : 'the 100 newest jobs'} every second`);
    await Promise.race([stopped, pollTransitions(client, filter, print, stopped)]);
    return 0;
  } finally {
    dispose();
  }
});

/**
 * The fallback: every second, list the newest jobs (or read the one job) and
 * print the events of those whose version moved since the last look. Jobs
 * older than the 100 newest are not seen: the stream is the real way.
 */
export async function pollTransitions(client: AtsClient, filter: StreamFilter, print: (t: Transition) => void, until: Promise<void>): Promise<never> {
  const versions = new Map<string, number>();
  let baseline = true;
  const look = async () => {
    const jobs = filter.jobId ? [await client.get(filter.jobId)] : (await client.listPage({ type: filter.type, queue: filter.queue, limit: 100 })).jobs;
    for (const job of jobs) await printNewEvents(client, job, versions, baseline ? null : print, filter.states);
    baseline = false;
  };
  await look();
  return repeat(look, 1000, until, err);
}

async function printNewEvents(
  client: AtsClient, job: Job, versions: Map<string, number>, print: ((t: Transition) => void) | null, states?: readonly string[],
): Promise<void> {
  const known = versions.get(job.id) ?? 0;
  const version = job.version ?? 0;
  if (version <= known && versions.has(job.id)) return;
  versions.set(job.id, version);
  if (!print) return; // the first look only learns where each job stands: watching is live from now
  const events = 'events' in job ? (job as { events: JobEvent[] }).events : (await client.get(job.id)).events;
  for (const e of events) {
    if (e.seq <= known || (states && !states.includes(e.to))) continue;
    print({ ...e, jobId: job.id, jobType: job.type, queue: job.queue });
  }
}
