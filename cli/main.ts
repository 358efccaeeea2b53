/**
 * The command-line entry: `ats <command> [options]`. The only module that
 * reads `process.env` and `process.argv`.
 */
import { fstatSync } from 'node:fs';

type Command = (args: readonly string[], env: Record<string, string | undefined>) => Promise<number>;

/**
 * A command loaded on first use: `start` pulls in every adapter (MySQL,
 * Kafka, SQLite, fastify), which a client command like `ats ls` must not wait for.
 */
const lazy = <K extends string>(load: () => Promise<Record<K, Command>>, name: K): Command =>
  async (args, env) => (await load())[name](args, env);

const runStart = lazy(() => import('./start.js'), 'startCommand');

/** `ats start`, or with `--help` / `-h` its settings (start.ts reads every argument as a setting). */
const startCommand: Command = async (args, env) => {
  if (!args.includes('--help') && !args.includes('-h')) return runStart(args, env);
  process.stdout.write((await import('./config.js')).startHelp() + '\n');
  return 0;
};
const submitCommand = lazy(() => import('./commands/submit.js'), 'submitCommand');
const getCommand = lazy(() => import('./commands/get.js'), 'getCommand');
const lsCommand = lazy(() => import('./commands/ls.js'), 'lsCommand');
const watchCommand = lazy(() => import('./commands/watch.js'), 'watchCommand');
const cancelCommand = lazy(() => import('./commands/actions.js'), 'cancelCommand');
const redriveCommand = lazy(() => import('./commands/actions.js'), 'redriveCommand');
const deleteCommand = lazy(() => import('./commands/delete.js'), 'deleteCommand');
const verifyCommand = lazy(() => import('./commands/verify.js'), 'verifyCommand');
const insightsCommand = lazy(() => import('./commands/insights.js'), 'insightsCommand');
const scheduleCommand = lazy(() => import('./commands/schedule.js'), 'scheduleCommand');
const workersCommand = lazy(() => import('./commands/workers.js'), 'workersCommand');
const limitsCommand = lazy(() => import('./commands/limits.js'), 'limitsCommand');
const keysCommand = lazy(() => import('./commands/keys.js'), 'keysCommand');
const workflowCommand = lazy(() => import('./commands/workflows.js'), 'workflowCommand');

export const COMMANDS: ReadonlyMap<string, { run: Command; help: string }> = new Map([
  ['start', { run: startCommand, help: 'ats start [--role api,relay,worker,timers] [--port 3000] ...  run the scheduler' }],
  ['submit', { run: submitCommand, help: 'ats submit TYPE [--payload JSON] [--wait | --count N] ...    submit a job (or N)' }],
  ['get', { run: getCommand, help: 'ats get ID [--json]                                          a job and its events' }],
  ['ls', { run: lsCommand, help: 'ats ls [--state S] [--type T] [--queue Q] [--limit N]        list jobs, newest first' }],
  ['watch', { run: watchCommand, help: 'ats watch [--job ID] [--type T] [--queue Q] [--state S,...]  follow transitions live' }],
  ['cancel', { run: cancelCommand, help: 'ats cancel ID [ID...] | --state S [--type T] [--queue Q]     cancel jobs' }],
  ['redrive', { run: redriveCommand, help: 'ats redrive ID [ID...] | --state S [--type T] [--queue Q]    run dead or cancelled jobs again' }],
  ['delete', { run: deleteCommand, help: 'ats delete ID [ID...] [--json]                               delete done, dead or cancelled jobs' }],
  ['verify', { run: verifyCommand, help: 'ats verify ID [--json]                                       replay a job\'s history against the stored job' }],
  ['insights', { run: insightsCommand, help: 'ats insights [--json]                                        what the advisor learned per job type' }],
  ['schedule', { run: scheduleCommand, help: 'ats schedule add|ls|get|pause|resume|rm ...                  cron schedules ("ats schedule --help")' }],
  ['workflow', { run: workflowCommand, help: 'ats workflow start|ls|show|history|signal|cancel|delete|verify ...  workflow instances ("ats workflow --help")' }],
  ['workers', { run: workersCommand, help: 'ats workers [--json]                                         the workers, live or not' }],
  ['limits', { run: limitsCommand, help: 'ats limits set|ls|get|pause|rm ...                           concurrency and rate limits ("ats limits --help")' }],
  ['keys', { run: keysCommand, help: 'ats keys create|ls|revoke ...                                API keys, in the database ("ats keys --help")' }],
]);

function usage(): string {
  return [
    'usage: ats <command> [options]', '', ...[...COMMANDS.values()].map((c) => `  ${c.help}`), '',
    'Client commands talk to --url or $ATS_URL (default http://localhost:3000). "ats <command> --help" (or "ats help <command>") for details.',
    '"ats keys" works on the database itself (MYSQL_URL or ATS_DATA_DIR, as "ats start"): it makes the first key before any exists.',
  ].join('\n');
}

/**
 * A client command whose reader stops reading (`ats watch | head -1`) ends there, quietly, exit 0: what it writes
 * next has nowhere to go. Without this, the write's EPIPE was an uncaught error (a stack trace, exit 1). Not for
 * `ats start`, whose logs go to stdout: a server stops by its signals, with its grace, not by a closed pipe.
 */
function endWhenReaderGoes(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  // So does one whose stderr shares that reader (`ats watch 2>&1 | head -1`): its next notice finds it gone. A reader
  // of stderr alone gone (stdout still read), what goes to stderr is dropped and the command goes on.
  const sharesStdout = samePipe(1, 2);
  process.stderr.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    if (sharesStdout) process.exit(0);
  });
}

/** Are the two descriptors the same pipe, file or socket (`2>&1`)? */
function samePipe(a: number, b: number): boolean {
  try {
    const [x, y] = [fstatSync(a), fstatSync(b)];
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  // `ats help COMMAND [SUB]` is `ats COMMAND [SUB] --help`.
  const [name, ...args] = first === 'help' && rest.length > 0 ? [...rest, '--help'] : argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    // Asked for, the usage is the answer (stdout, 0); with no command, a wrong command line (stderr, 2).
    (name ? process.stdout : process.stderr).write(usage() + '\n');
    return name ? 0 : 2;
  }
  const command = COMMANDS.get(name);
  if (!command) {
    process.stderr.write(`ats: unknown command "${name}"\n${usage()}\n`);
    return 2;
  }
  if (name !== 'start') endWhenReaderGoes();
  return command.run(args, process.env);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`ats: ${(err as Error)?.stack ?? err}\n`);
    process.exit(1);
  },
);
