/** `ats cancel ID [--reason R]` and `ats redrive ID`: send a user event; print the job's new state. */
import type { Job } from '../client.js';
import { str } from './args.js';
import { clientCommand, out, type CommandSpec, type Context } from './run.js';

const print = (job: Job, json: boolean): number => {
  out(json ? JSON.stringify(job) : `${job.id} ${job.state}`);
  return 0;
};

export const cancelSpec: CommandSpec = {
  usage: 'ats cancel ID [--reason TEXT] [--json]',
  details: ['A running handler is told through its AbortSignal. Exit 1 with ATS_ERR_TRANSITION_NOT_ALLOWED when the job has ended.'],
  options: { reason: { type: 'string', emptyOk: true }, json: { type: 'boolean' } },
  positionals: [1, 1],
};

export const redriveSpec: CommandSpec = {
  usage: 'ats redrive ID [--json]',
  details: ['Starts a new run of a dead or cancelled job (back to pending).'],
  options: { json: { type: 'boolean' } },
  positionals: [1, 1],
};

export const cancelCommand = clientCommand(cancelSpec, async ({ client, values, positionals }: Context) =>
  print(await client.cancel(positionals[0]!, { reason: str(values, 'reason') }), values.json === true));

export const redriveCommand = clientCommand(redriveSpec, async ({ client, values, positionals }: Context) =>
  print(await client.redrive(positionals[0]!), values.json === true));
