/** `ats get ID [--json]`: a job with its history, its latest progress and the actions it accepts now. */
import { jobDetail } from './output.js';
import { clientCommand, out, type CommandSpec } from './run.js';

export const getSpec: CommandSpec = {
  usage: 'ats get ID [--json]',
  details: ['--json  print the API\'s JSON (the job, its events, allowed actions, eta and progress)'],
  options: { json: { type: 'boolean' } },
  positionals: [1, 1],
};

export const getCommand = clientCommand(getSpec, async ({ client, values, positionals }) => {
  const job = await client.get(positionals[0]!);
  out(values.json ? JSON.stringify(job) : jobDetail(job));
  return 0;
});
