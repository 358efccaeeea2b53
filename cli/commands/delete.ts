/**
 * `ats delete ID [ID...] [--json]`: delete done, dead or cancelled jobs and
 * their events (`DELETE /v1/jobs/:id`, the operate scope), one after the
 * other, in the order given, a line for each.
 */
import { actOnEach, idsOf, type EachKind } from './each.js';
import { clientCommand, type CommandSpec } from './run.js';

export const deleteSpec: CommandSpec = {
  usage: 'ats delete ID [ID...] [--json]',
  details: [
    'Deletes each job and its events (a key needs the operate scope), one after the other, in the order given, a line each:',
    '"ID deleted", "ID not found" (no such job, or another tenant\'s), "ID live (refused)" (not done, dead or cancelled:',
    'cancel it first), "ID awaited (refused)" (a workflow\'s child whose instance has not taken its end yet), with the',
    'API\'s code and message on stderr. A job refused does not stop the others. Exit 0 when every job was deleted, else 1.',
    'A failure that is not about one job (no server, a 401, 403, 429 or 503 after the retries, an answer that is not',
    'the API\'s) stops at that job (deleted only if an answer was lost): the ones before stay deleted, the ones after',
    'are named on stderr as not tried.',
    'A delete whose answer was lost (a timeout, a dropped connection, a 503) is sent again; a 404 to that retry counts',
    'as deleted (the first try may have deleted it), exit 0. An ID that is no job id (a ULID) is exit 2, nothing deleted.',
    'An ID given twice is deleted once. A job changed meanwhile (409 ATS_ERR_CONCURRENT_UPDATE) is "ID refused".',
    '--json  one JSON object per job tried: {"id","deleted":true}, or {"id","deleted":false,"status","code","message"}',
  ],
  options: { json: { type: 'boolean' } },
  positionals: [1, Infinity],
};

/** What `ats delete` and `ats workflow delete` print of one deleted: "ID deleted", or {"id","deleted":true}. */
export const deletedLine = (id: string, _: unknown, json: boolean): string => (json ? JSON.stringify({ id, deleted: true }) : `${id} deleted`);

/**
 * Deletes each of `positionals` (ids, checked first) in order, a line each; the exit code (`actOnEach`). What
 * `ats delete` and `ats workflow delete` share: `kind` tells the one from the other.
 */
export async function deleteEach(kind: Omit<EachKind<unknown>, 'done' | 'doneLine'>, positionals: readonly string[], json: boolean, url: string): Promise<number> {
  return actOnEach({ ...kind, done: 'deleted', doneLine: deletedLine }, idsOf(kind, positionals), json, url);
}

export const deleteCommand = clientCommand(deleteSpec, async ({ client, values, positionals }) =>
  deleteEach({
    spec: deleteSpec,
    noun: 'job',
    nouns: 'jobs',
    printedBy: 'ats submit',
    refused: new Map([
      ['ATS_ERR_JOB_NOT_FOUND', 'not found'],
      ['ATS_ERR_JOB_LIVE', 'live (refused)'],
      ['ATS_ERR_JOB_AWAITED', 'awaited (refused)'],
    ]),
    act: (id) => client.delete(id),
  }, positionals, values.json === true, client.url));
