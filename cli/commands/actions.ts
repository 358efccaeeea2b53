/**
 * `ats cancel` and `ats redrive`: send a user event to jobs named by id (one
 * or many, in turn), or to every job `GET /v1/jobs` lists with a filter that
 * names a state (the filter form); print each job's new state.
 */
import type { Job } from '../client.js';
import { int, nameOption, oneOf, str, UsageError, type Values } from './args.js';
import { actOnEach, actOnMatching, idsOf, jobsMatching, type EachKind, type JobsFilter } from './each.js';
import { oneLine } from './output.js';
import { clientCommand, err, out, type CommandSpec, type Context } from './run.js';

/** The states the filter form of each takes: those the action is allowed in (the machine's). */
const CANCEL_STATES = ['pending', 'published', 'running', 'retrying'] as const;
const REDRIVE_STATES = ['dead', 'cancelled'] as const;

/** Jobs a page of the filter form reads (the API's `limit`). */
const PAGE_SIZE = 100;

/** `text` in lines of at most `width` characters, broken at spaces. */
function wrap(text: string, width = 116): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  return line === '' ? lines : [...lines, line];
}

/** What both say of their forms, after their own lines. */
const shared = (verb: string, done: string, refusedLines: string, changed: string): string[] => [
  ...wrap(`With IDs: ${verb}s each, one after the other, in the order given, a line each: "ID STATE" (the state it is in now), `
    + `"ID not found" (no such job, or another tenant's), ${refusedLines}, or "ID refused" (changed meanwhile: 409 `
    + 'ATS_ERR_CONCURRENT_UPDATE), with the API\'s code and message on stderr. A job refused does not stop the others; with '
    + 'several ids, a count on stderr when some were not. A failure that is not about one job (no server, a 401, 403, 429 or 503 after the '
    + 'retries, an answer that is not the API\'s) stops at that job: the ones before stay as they were made, the ones after '
    + 'are named on stderr as not tried. An ID that is no job id (a ULID) is exit 2, nothing sent; an ID given twice is '
    + `acted on once. Exit 0 when every job was ${done}, else 1. With one ID, a refusal is only its code and message on `
    + 'stderr (exit 1), as it always was.'),
  ...wrap(`With --state (the filter form): ${verb}s every job GET /v1/jobs lists with --state, and --type and --queue when `
    + `given, one at a time, newest first, a line each as above, then a count on stderr ("ats: 120 jobs ${done}, 3 skipped"). `
    + 'The list is walked by its cursor, a page at a time (the next read once the jobs of the one before were acted on): '
    + `no job is ${done} twice (one that is back in --state's state meanwhile too), none that matched throughout is `
    + 'missed, and a job submitted once the walk began is newer than the pages read and is not listed, so the walk ends '
    + 'however many arrive meanwhile. A job listed that changed before its turn (the API refuses the action: 409 '
    + `ATS_ERR_TRANSITION_NOT_ALLOWED, ${changed}; or 404, deleted) is "ID skipped (moved on)" or "ID skipped (not found)" `
    + 'and leaves exit 0; another refusal makes it exit 1. A 429 of the server\'s rate limit (nothing was done) is waited '
    + 'out, its Retry-After, and the same request sent again, with a notice on stderr (20 in a row at most). A failure that every job would get '
    + 'stops the walk, with the count so far. IDs and a filter together, or a filter without --state, are exit 2: no form '
    + 'acts on every job.'),
  '--dry-run      lists the ids the filter form would act on (and a count on stderr); sends nothing else',
  `--page-size N  jobs a page of the filter form reads (default ${PAGE_SIZE}, at most 500)`,
  `--json         one JSON object per job: the job as the API answers it when ${done}, else {"id","${done}":false,`,
  '               "status","code","message"} (with "skipped":true when skipped); with --dry-run, each job as listed',
];

export const cancelSpec: CommandSpec = {
  usage: 'ats cancel ID [ID...] [--reason TEXT] [--json]\n'
    + `ats cancel --state ${CANCEL_STATES.join('|')} [--type T] [--queue Q] [--reason TEXT] [--dry-run] [--page-size N] [--json]`,
  details: [
    ...wrap('A running handler is told through its AbortSignal. A job that has ended (done, dead or cancelled) is refused: 409 '
      + 'ATS_ERR_TRANSITION_NOT_ALLOWED. The API takes a cancel in any live state: a job listed pending that has started '
      + 'meanwhile is cancelled all the same.'),
    '--reason TEXT  recorded with each cancel (the job\'s cancelReason)',
    ...shared('cancel', 'cancelled', '"ID ended (refused)" (done, dead or cancelled)', 'it has ended'),
  ],
  options: {
    reason: { type: 'string', emptyOk: true }, json: { type: 'boolean' },
    state: { type: 'string' }, type: { type: 'string' }, queue: { type: 'string' }, 'dry-run': { type: 'boolean' }, 'page-size': { type: 'string' },
  },
  positionals: [0, Infinity],
};

export const redriveSpec: CommandSpec = {
  usage: 'ats redrive ID [ID...] [--json]\n'
    + `ats redrive --state ${REDRIVE_STATES.join('|')} [--type T] [--queue Q] [--dry-run] [--page-size N] [--json]`,
  details: [
    ...wrap('Starts a new run of a dead or cancelled job (back to pending). A job in another state is refused: 409 '
      + 'ATS_ERR_TRANSITION_NOT_ALLOWED; a workflow\'s finished child whose instance has not taken its end yet: 409 '
      + 'ATS_ERR_JOB_AWAITED. A redrive whose answer was lost is never sent again: the job is read instead (it has left '
      + 'dead and cancelled: the redrive went through).'),
    ...shared('redrive', 'redriven', '"ID not dead or cancelled (refused)", "ID awaited (refused)" (a workflow\'s child)', 'redriven by another'),
  ],
  options: {
    json: { type: 'boolean' },
    state: { type: 'string' }, type: { type: 'string' }, queue: { type: 'string' }, 'dry-run': { type: 'boolean' }, 'page-size': { type: 'string' },
  },
  positionals: [0, Infinity],
};

/** The options of the filter form alone. */
const FILTER_OPTIONS = ['state', 'type', 'queue', 'dry-run', 'page-size'] as const;

/** The form the command line asks for: ids, or a filter (its `--state` one of `states`). */
function formOf(values: Values, positionals: readonly string[], states: readonly string[]):
  { ids: readonly string[] } | { filter: JobsFilter; dryRun: boolean } {
  const given = FILTER_OPTIONS.filter((name) => values[name] !== undefined);
  if (positionals.length > 0) {
    if (given.length > 0) throw new UsageError(`job ids and --${given[0]} together: give the ids, or a filter with --state, not both`);
    return { ids: positionals };
  }
  if (given.length === 0) throw new UsageError(`missing argument: job ids, or --state ${states.join('|')}`);
  const state = oneOf(values, 'state', states)?.[0];
  if (state === undefined) throw new UsageError(`--${given[0]} needs --state (${states.join(', ')}): a filter acts on the jobs of one state, never on every job`);
  const type = nameOption(values, 'type');
  const queue = nameOption(values, 'queue');
  const filter: JobsFilter = {
    state: state as JobsFilter['state'], limit: int(values, 'page-size', 1, 500) ?? PAGE_SIZE,
    ...(type === undefined ? {} : { type }), ...(queue === undefined ? {} : { queue }),
  };
  return { filter, dryRun: values['dry-run'] === true };
}

/** "ID STATE", or the job's JSON: the line of one acted on (with one ID, all the command prints). */
const stateLine = (_: string, job: Job, json: boolean): string => (json ? JSON.stringify(job) : `${oneLine(String(job.id), 40)} ${oneLine(String(job.state), 40)}`);

/** A job listed that changed before its turn: the API refuses the action because it moved on, or it was deleted. */
const SKIPPED: ReadonlyMap<string, string> = new Map([['ATS_ERR_TRANSITION_NOT_ALLOWED', 'moved on'], ['ATS_ERR_JOB_NOT_FOUND', 'not found']]);

/** Runs `kind` on the ids, or on every job the filter lists. */
async function run(kind: EachKind<Job>, states: readonly string[], { client, values, positionals }: Context): Promise<number> {
  const json = values.json === true;
  const form = formOf(values, positionals, states);
  if ('filter' in form) {
    const jobs = jobsMatching(client, form.filter, (notice) => err(`ats: ${notice}`));
    return actOnMatching(kind, SKIPPED, jobs, { json, dryRun: form.dryRun, url: client.url });
  }
  const ids = idsOf(kind, form.ids);
  // One id prints what it always did: "ID STATE" (or the job), or a refusal as every command tells it.
  if (ids.length === 1) {
    out(stateLine(ids[0]!, await kind.act(ids[0]!), json));
    return 0;
  }
  return actOnEach(kind, ids, json, client.url);
}

const jobKind = (spec: CommandSpec, done: string, refused: ReadonlyArray<readonly [string, string]>, act: (id: string) => Promise<Job>): EachKind<Job> => ({
  spec, noun: 'job', nouns: 'jobs', printedBy: 'ats submit', done,
  refused: new Map([['ATS_ERR_JOB_NOT_FOUND', 'not found'], ...refused]), act, doneLine: stateLine,
});

export const cancelCommand = clientCommand(cancelSpec, (ctx) => {
  const reason = str(ctx.values, 'reason');
  return run(jobKind(cancelSpec, 'cancelled', [['ATS_ERR_TRANSITION_NOT_ALLOWED', 'ended (refused)']], (id) => ctx.client.cancel(id, { reason })), CANCEL_STATES, ctx);
});

export const redriveCommand = clientCommand(redriveSpec, (ctx) =>
  run(jobKind(redriveSpec, 'redriven', [
    ['ATS_ERR_TRANSITION_NOT_ALLOWED', 'not dead or cancelled (refused)'],
    ['ATS_ERR_JOB_AWAITED', 'awaited (refused)'],
  ], (id) => ctx.client.redrive(id)), REDRIVE_STATES, ctx));
