/** `ats workers [--json]`: the worker processes as they registered themselves (`GET /v1/workers`), live or not. */
import { workerTable } from './output.js';
import { clientCommand, err, out, type CommandSpec } from './run.js';

export const workersSpec: CommandSpec = {
  usage: 'ats workers [--json]',
  details: [
    'Every registered worker by id: host, pid, the queues it serves (* for every queue), the job types it handles,',
    'its concurrency, when it was last seen,',
    'and whether it is live (seen within the last 15 s; a worker unseen for an hour is removed).',
    '--json  print the API\'s JSON (GET /v1/workers)',
  ],
  options: { json: { type: 'boolean' } },
  positionals: [0, 0],
};

export const workersCommand = clientCommand(workersSpec, async ({ client, values }) => {
  const workers = await client.listWorkers();
  if (values.json) out(JSON.stringify({ workers }));
  else if (workers.length === 0) err('no workers');
  else out(workerTable(workers).join('\n'));
  return 0;
});
