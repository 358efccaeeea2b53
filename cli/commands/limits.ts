/**
 * `ats limits set|ls|get|pause|rm`: the concurrency and rate limits of concurrency
 * keys (`/v1/limits`, docs/limits.md). Each sub-command is a client command
 * of its own (its usage, `--url`, `--help`, the exit codes of run.ts);
 * `ats limits` picks one by its first argument.
 */
import { MAX_LIMIT_CONCURRENCY, MAX_RATE, MAX_RATE_INTERVAL_MS } from '../../engine/limits.js';
import { ApiError, type AtsClient, type Limit, type LimitSpec } from '../client.js';
import { durationText, parseDurationMs } from '../duration.js';
import { int, str, UsageError, type Values } from './args.js';
import { limitDetail, limitLine, limitTable, rateText, shellWord } from './output.js';
import { clientCommand, err, out, usageOf, type Command, type CommandSpec } from './run.js';

export const limitsSetSpec: CommandSpec = {
  usage: 'ats limits set KEY [--concurrency N] [--rate MAX/DURATION] [--json]',
  details: [
    'KEY                  the concurrency key: 1 to 200 of A-Z a-z 0-9 . _ : - (what jobs give as --concurrency-key)',
    `--concurrency N      at most N attempts of the key run at once, across all workers (0 to ${MAX_LIMIT_CONCURRENCY});`,
    '                     0 pauses the key: none of its jobs starts (those running go on) until the limit is raised or removed',
    `--rate MAX/DURATION  at most MAX starts per DURATION, spaced evenly: 100/1m, 5/1s, 1/500ms (MAX: 1 to ${MAX_RATE}; DURATION: ${durationText(MAX_RATE_INTERVAL_MS)} at most)`,
    'At least one of the two. The limit replaces the key\'s whole limit: the one not given is no cap.',
    'Jobs over the limit wait (published), burning no attempt.',
    '--json               print the limit as JSON',
  ],
  options: {
    concurrency: { type: 'string' },
    rate: { type: 'string' },
    json: { type: 'boolean' },
  },
  positionals: [1, 1],
};

export const limitsLsSpec: CommandSpec = {
  usage: 'ats limits ls [--json]',
  details: [
    'Every limit by key: its concurrency, the attempts of the key running now, its rate, when it was last set (- : no cap).',
    '--json  print the API\'s JSON (GET /v1/limits)',
  ],
  options: { json: { type: 'boolean' } },
  positionals: [0, 0],
};

export const limitsGetSpec: CommandSpec = {
  usage: 'ats limits get KEY [--json]',
  details: ['The limit of the key and the attempts of the key running now.'],
  options: { json: { type: 'boolean' } },
  positionals: [1, 1],
};

export const limitsPauseSpec: CommandSpec = {
  usage: 'ats limits pause KEY [--json]',
  details: [
    'Pauses the key: sets its concurrency to 0 and keeps its rate. None of its jobs starts (those running go on) until',
    'the limit is set again or removed. Prints the limit, and on stderr the command that sets the limit it had (resume):',
    '"resume: ats limits set --concurrency 5 --rate 100/1m KEY", or "ats limits rm KEY" for a key that had none.',
    'It reads the limit, then sets it: a change made in between is replaced. A key paused already is left as it is.',
    '--json  print the limit as JSON',
  ],
  options: { json: { type: 'boolean' } },
  positionals: [1, 1],
};

export const limitsRmSpec: CommandSpec = {
  usage: 'ats limits rm KEY',
  details: ['Lifts the limit of the key: its jobs are no longer limited (they keep their key).'],
  options: {},
  positionals: [1, 1],
};

/**
 * `--rate MAX/DURATION`: `100/1m`, `5/1s`, `10/500ms` (a DURATION without a number is one of its unit: `5/s`),
 * held to the bounds the API holds a limit to: a rate it would refuse is a usage error (exit 2), not its 400.
 */
export function rateFrom(text: string): { max: number; intervalMs: number } {
  const m = /^\s*(\d{1,15})\s*\/\s*(\S+)\s*$/.exec(text);
  const intervalMs = m ? parseDurationMs(/^\d/.test(m[2]!) ? m[2]! : `1${m[2]}`) : NaN;
  if (!m || !(intervalMs >= 1)) {
    // Not DURATION_FORMS: its example 7d is over the bound, and would be refused next.
    throw new UsageError(`--rate must be MAX/DURATION, e.g. 100/1m or 5/1s (DURATION: 1d, 12h, 30m, 60s, 500ms or plain milliseconds, at most ${durationText(MAX_RATE_INTERVAL_MS)}), got "${text}"`);
  }
  const max = Number(m[1]);
  if (max < 1 || max > MAX_RATE) throw new UsageError(`--rate: MAX must be from 1 to ${MAX_RATE}, got "${text}"`);
  if (intervalMs > MAX_RATE_INTERVAL_MS) throw new UsageError(`--rate: DURATION must be at most ${durationText(MAX_RATE_INTERVAL_MS)}, got "${text}"`);
  return { max, intervalMs };
}

/** The body of `PUT /v1/limits/:key` from the command line (throws UsageError on a bad value, or when it sets nothing). */
export function limitSpecFrom(values: Values): LimitSpec {
  const concurrency = int(values, 'concurrency', 0, MAX_LIMIT_CONCURRENCY);
  const rate = str(values, 'rate');
  if (concurrency === undefined && rate === undefined) throw new UsageError('--concurrency or --rate is required (or both)');
  return { concurrency: concurrency ?? null, rate: rate === undefined ? null : rateFrom(rate) };
}

const setCommand = clientCommand(limitsSetSpec, async ({ client, values, positionals }) => {
  const limit = await client.putLimit(positionals[0]!, limitSpecFrom(values));
  out(values.json ? JSON.stringify(limit) : limitLine(limit));
  return 0;
});

const lsCommand = clientCommand(limitsLsSpec, async ({ client, values }) => {
  const limits = await client.listLimits();
  if (values.json) out(JSON.stringify({ limits }));
  else if (limits.length === 0) err('no limits');
  else out(limitTable(limits).join('\n'));
  return 0;
});

const getCommand = clientCommand(limitsGetSpec, async ({ client, values, positionals }) => {
  const limit = await client.getLimit(positionals[0]!);
  out(values.json ? JSON.stringify(limit) : limitDetail(limit));
  return 0;
});

/** The key's limit, or null when it has none. */
async function limitOrNull(client: AtsClient, key: string): Promise<Limit | null> {
  try {
    return await client.getLimit(key);
  } catch (e) {
    if (e instanceof ApiError && e.code === 'ATS_ERR_LIMIT_NOT_FOUND') return null;
    throw e;
  }
}

/**
 * The command that sets `key`'s limit back to `before` (none: removes it); `url` as given on the command line.
 * The key comes last, after `--` when it starts with `-` (a key may), which would be read as an option.
 */
export function resumeCommand(key: string, before: Limit | null, url: string | undefined): string {
  const options = before === null ? [] : [
    ...(before.concurrency === null ? [] : [`--concurrency ${before.concurrency}`]),
    ...(before.rate === null ? [] : [`--rate ${rateText(before.rate)}`]),
  ];
  return [
    before === null ? 'ats limits rm' : 'ats limits set', ...options, ...(url === undefined ? [] : [`--url=${shellWord(url)}`]),
    ...(key.startsWith('-') ? ['--'] : []), shellWord(key),
  ].join(' ');
}

const pauseCommand = clientCommand(limitsPauseSpec, async ({ client, values, positionals }) => {
  const key = positionals[0]!;
  const before = await limitOrNull(client, key);
  const limit = before?.concurrency === 0 ? before : await client.putLimit(key, { concurrency: 0, rate: before?.rate ?? null });
  out(values.json ? JSON.stringify(limit) : limitLine(limit));
  err(before?.concurrency === 0
    ? `ats: ${key} was paused already; give its concurrency with ats limits set to resume`
    : `resume: ${resumeCommand(key, before, str(values, 'url'))}`);
  return 0;
});

const rmCommand = clientCommand(limitsRmSpec, async ({ client, positionals }) => {
  await client.deleteLimit(positionals[0]!);
  out(`${positionals[0]!} deleted`);
  return 0;
});

/** The sub-commands by name (a Map: the name comes from the command line). */
const SUBCOMMANDS = new Map<string, { spec: CommandSpec; run: Command }>([
  ['set', { spec: limitsSetSpec, run: setCommand }],
  ['ls', { spec: limitsLsSpec, run: lsCommand }],
  ['get', { spec: limitsGetSpec, run: getCommand }],
  ['pause', { spec: limitsPauseSpec, run: pauseCommand }],
  ['rm', { spec: limitsRmSpec, run: rmCommand }],
]);

/** Every sub-command's usage. */
export function limitsUsage(): string {
  return [...SUBCOMMANDS.values()].map((c) => usageOf(c.spec)).join('\n\n');
}

export const limitsCommand: Command = async (args, env) => {
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    out(limitsUsage());
    return 0;
  }
  const command = sub === undefined ? undefined : SUBCOMMANDS.get(sub);
  if (!command) {
    err(`ats: ${sub === undefined ? 'missing limits command' : `unknown limits command "${sub}"`} (set, ls, get, pause, rm)\n${limitsUsage()}`);
    return 2;
  }
  return command.run(rest, env);
};
