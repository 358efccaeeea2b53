/**
 * `ats schedule add|ls|get|pause|resume|rm`: cron schedules (`/v1/schedules`).
 * Each sub-command is a client command of its own (its usage, `--url`,
 * `--help`, the exit codes of run.ts); `ats schedule` picks one by its first
 * argument.
 */
import type { Schedule, ScheduleRequest } from '../client.js';
import { int, jobPolicy, json, oneOf, str, UsageError, type Values } from './args.js';
import { scheduleDetail, scheduleTable } from './output.js';
import { clientCommand, err, out, usageOf, type Command, type CommandSpec } from './run.js';

const OVERLAPS = ['skip', 'allow'] as const;
const CATCH_UPS = ['none', 'latest', 'all'] as const;

export const scheduleAddSpec: CommandSpec = {
  usage: 'ats schedule add NAME --cron EXPR --type TYPE [--tz IANA] [--payload JSON] [--queue Q]\n' +
    '                 [--overlap skip|allow] [--catch-up none|latest|all] [--paused] [--max-attempts N]\n' +
    '                 [--timeout-ms N] [--priority N] [--json]',
  details: [
    'NAME                 1 to 100 of A-Z a-z 0-9 . _ : -',
    '--cron EXPR          5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, 7 with seconds',
    '                     first and a year last; names (MON-FRI) and nicknames (@daily, @hourly) too',
    '--type TYPE          the handler of the job each tick submits',
    '--tz IANA            the time zone the expression is read in, e.g. Europe/Berlin (default UTC)',
    '--payload JSON       the job\'s input (default null)',
    '--overlap MODE       skip (the default): a tick whose previous job is still live submits nothing; allow: it does',
    '--catch-up MODE      ticks missed while no timers ran: none fire (the default), the latest fires, or all fire',
    '--paused             create it paused (no tick fires until "ats schedule resume NAME")',
    '--json               print the schedule as JSON',
  ],
  options: {
    cron: { type: 'string' },
    type: { type: 'string' },
    tz: { type: 'string' },
    payload: { type: 'string' },
    queue: { type: 'string' },
    overlap: { type: 'string' },
    'catch-up': { type: 'string' },
    paused: { type: 'boolean' },
    'max-attempts': { type: 'string' },
    'timeout-ms': { type: 'string' },
    priority: { type: 'string' },
    json: { type: 'boolean' },
  },
  positionals: [1, 1],
};

export const scheduleLsSpec: CommandSpec = {
  usage: 'ats schedule ls [--json]',
  details: ['Every schedule by name: its cron, time zone, next run, whether paused, last tick and tick counts.'],
  options: { json: { type: 'boolean' } },
  positionals: [0, 0],
};

export const scheduleGetSpec: CommandSpec = {
  usage: 'ats schedule get NAME [--json]',
  details: ['The schedule, its job, its next 5 run times and its recent ticks (newest first).'],
  options: { json: { type: 'boolean' } },
  positionals: [1, 1],
};

export const schedulePauseSpec: CommandSpec = {
  usage: 'ats schedule pause NAME [--json]',
  details: ['No tick fires until it is resumed. Jobs already submitted run as they would.'],
  options: { json: { type: 'boolean' } },
  positionals: [1, 1],
};

export const scheduleResumeSpec: CommandSpec = {
  usage: 'ats schedule resume NAME [--json]',
  details: ['The next run is counted from now: the ticks of the pause are not caught up.'],
  options: { json: { type: 'boolean' } },
  positionals: [1, 1],
};

export const scheduleRmSpec: CommandSpec = {
  usage: 'ats schedule rm NAME',
  details: ['Deletes the schedule and its ticks. The jobs it submitted stay.'],
  options: {},
  positionals: [1, 1],
};

/** The body of `POST /v1/schedules` from the command line (throws UsageError on a bad or missing value). */
export function scheduleRequestFrom(name: string, values: Values): ScheduleRequest {
  const cron = str(values, 'cron');
  const type = str(values, 'type');
  if (cron === undefined) throw new UsageError('--cron is required');
  if (type === undefined) throw new UsageError('--type is required');
  const body: ScheduleRequest = { name, cron, type, ...jobPolicy(values) };
  const timezone = str(values, 'tz');
  const queue = str(values, 'queue');
  const overlap = oneOf(values, 'overlap', OVERLAPS)?.[0] as ScheduleRequest['overlap'];
  const catchUp = oneOf(values, 'catch-up', CATCH_UPS)?.[0] as ScheduleRequest['catchUp'];
  if (timezone !== undefined) body.timezone = timezone;
  if (values.payload !== undefined) body.payload = json(values, 'payload');
  if (queue !== undefined) body.queue = queue;
  if (overlap !== undefined) body.overlap = overlap;
  if (catchUp !== undefined) body.catchUp = catchUp;
  if (values.paused) body.paused = true;
  return body;
}

/** `nightly created, next run 2030-01-01T03:00:00.000Z`, `nightly paused` and the like. */
export function changedText(s: Schedule, done: 'created' | 'paused' | 'resumed'): string {
  if (s.paused) return done === 'paused' ? `${s.name} paused` : `${s.name} ${done}, paused`;
  return `${s.name} ${done}, ${s.nextRunAt ? `next run ${s.nextRunAt}` : 'no next run (the expression fires no more)'}`;
}

const print = (s: Schedule, json: boolean, done: 'created' | 'paused' | 'resumed'): number => {
  out(json ? JSON.stringify(s) : changedText(s, done));
  return 0;
};

const addCommand = clientCommand(scheduleAddSpec, async ({ client, values, positionals }) =>
  print(await client.createSchedule(scheduleRequestFrom(positionals[0]!, values)), values.json === true, 'created'));

const lsCommand = clientCommand(scheduleLsSpec, async ({ client, values }) => {
  const schedules = await client.listSchedules();
  if (values.json) out(JSON.stringify({ schedules }));
  else if (schedules.length === 0) err('no schedules');
  else out(scheduleTable(schedules).join('\n'));
  return 0;
});

const getCommand = clientCommand(scheduleGetSpec, async ({ client, values, positionals }) => {
  const s = await client.getSchedule(positionals[0]!);
  out(values.json ? JSON.stringify(s) : scheduleDetail(s));
  return 0;
});

const pauseCommand = clientCommand(schedulePauseSpec, async ({ client, values, positionals }) =>
  print(await client.updateSchedule(positionals[0]!, { paused: true }), values.json === true, 'paused'));

const resumeCommand = clientCommand(scheduleResumeSpec, async ({ client, values, positionals }) =>
  print(await client.updateSchedule(positionals[0]!, { paused: false }), values.json === true, 'resumed'));

const rmCommand = clientCommand(scheduleRmSpec, async ({ client, positionals }) => {
  await client.deleteSchedule(positionals[0]!);
  out(`${positionals[0]!} deleted`);
  return 0;
});

/** The sub-commands by name (a Map: the name comes from the command line). */
const SUBCOMMANDS = new Map<string, { spec: CommandSpec; run: Command }>([
  ['add', { spec: scheduleAddSpec, run: addCommand }],
  ['ls', { spec: scheduleLsSpec, run: lsCommand }],
  ['get', { spec: scheduleGetSpec, run: getCommand }],
  ['pause', { spec: schedulePauseSpec, run: pauseCommand }],
  ['resume', { spec: scheduleResumeSpec, run: resumeCommand }],
  ['rm', { spec: scheduleRmSpec, run: rmCommand }],
]);

/** Every sub-command's usage. */
export function scheduleUsage(): string {
  return [...SUBCOMMANDS.values()].map((c) => usageOf(c.spec)).join('\n\n');
}

export const scheduleCommand: Command = async (args, env) => {
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    out(scheduleUsage());
    return 0;
  }
  const command = sub === undefined ? undefined : SUBCOMMANDS.get(sub);
  if (!command) {
    err(`ats: ${sub === undefined ? 'missing schedule command' : `unknown schedule command "${sub}"`} (add, ls, get, pause, resume, rm)\n${scheduleUsage()}`);
    return 2;
  }
  return command.run(rest, env);
};
