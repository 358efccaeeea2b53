/** `ats ls [--state S] [--type T] [--queue Q] [--limit N] [--cursor C] [--json]`: jobs, newest first, as a table. */
import { JOB_STATES, type ListQuery } from '../client.js';
import { int, nameOption, oneOf, str } from './args.js';
import { jobTable, moreHint } from './output.js';
import { clientCommand, err, out, type CommandSpec } from './run.js';

export const lsSpec: CommandSpec = {
  usage: 'ats ls [--state S] [--type T] [--queue Q] [--limit N] [--cursor C] [--json]',
  details: [
    `--state S   one of ${JOB_STATES.join(', ')}`,
    '--limit N   jobs per page (default 50, at most 500)',
    '--cursor C  the next page (printed under a page with more after it: a page may end short, or empty, before the end)',
  ],
  options: {
    state: { type: 'string' }, type: { type: 'string' }, queue: { type: 'string' },
    limit: { type: 'string' }, cursor: { type: 'string' }, json: { type: 'boolean' },
  },
  positionals: [0, 0],
};

export const lsCommand = clientCommand(lsSpec, async ({ client, values }) => {
  const query: ListQuery = {
    state: oneOf(values, 'state', JOB_STATES)?.[0] as ListQuery['state'], type: nameOption(values, 'type'), queue: nameOption(values, 'queue'),
    limit: int(values, 'limit', 1, 500), cursor: str(values, 'cursor'),
  };
  const page = await client.listPage(query);
  if (values.json) {
    out(JSON.stringify(page));
    return 0;
  }
  if (page.jobs.length === 0) err(page.nextCursor ? 'no jobs on this page (it stopped at its read bound; older jobs may match)' : 'no jobs');
  else out(jobTable(page.jobs).join('\n'));
  if (page.nextCursor) {
    err(moreHint('ats ls', [
      ['cursor', page.nextCursor], ['limit', query.limit], ['state', query.state], ['type', query.type], ['queue', query.queue], ['url', str(values, 'url')],
    ]));
  }
  return 0;
});
