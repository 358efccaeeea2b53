/**
 * The command-line entry: `ats <command> [options]`. The only module that
 * reads `process.env` and `process.argv`.
 */
import { startCommand } from './start.js';

type Command = (args: readonly string[], env: Record<string, string | undefined>) => Promise<number>;

export const COMMANDS: Record<string, { run: Command; help: string }> = {
  start: { run: startCommand, help: 'ats start [--role api,relay,worker,timers] [--port 3000] ...  run the scheduler' },
};

function usage(): string {
  return ['usage: ats <command> [options]', '', ...Object.values(COMMANDS).map((c) => `  ${c.help}`)].join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`ats: unknown command "${name}"\n${usage()}\n`);
    return 2;
  }
  return command.run(args, process.env);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`ats: ${(err as Error)?.stack ?? err}\n`);
    process.exit(1);
  },
);
