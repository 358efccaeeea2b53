/**
 * `ats delete ID [ID...] [--json]`: delete done, dead or cancelled jobs and
 * their events (`DELETE /v1/jobs/:id`, the operate scope), one after the
 * other, in the order given, a line for each.
 */
import { ApiError } from '../client.js';
import { ULID_PATTERN } from '../../server/schemas.js';
import { UsageError } from './args.js';
import { oneLine } from './output.js';
import { clientCommand, err, out, report, type CommandSpec } from './run.js';

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

const ulid = new RegExp(ULID_PATTERN);

/** What `ats delete` and `ats workflow delete` tell apart of one kind of thing they delete. */
export interface DeletedKind {
  spec: CommandSpec;
  /** What one is (`job`) and several are (`jobs`), in lines. */
  noun: string;
  nouns: string;
  /** What prints its id, for an id that is none. */
  printedBy: string;
  /** What a refusal of one prints after its id, by the API's code (a Map: the code is the server's). */
  refused: ReadonlyMap<string, string>;
  /** The delete of one: resolves once it is gone. */
  del(id: string): Promise<unknown>;
}

/**
 * Deletes each of `positionals` in order, a line each; the exit code. An answer about the one (its own
 * refusal codes, or changed meanwhile: 409 ATS_ERR_CONCURRENT_UPDATE) does not stop the others; one that every
 * one would get (a 400 of the request, a 403, a 503, a proxy's 404 or 409) stops there.
 */
export async function deleteEach(kind: DeletedKind, positionals: readonly string[], json: boolean, url: string): Promise<number> {
  const about: ReadonlySet<string> = new Set([...kind.refused.keys(), 'ATS_ERR_CONCURRENT_UPDATE']);
  // An id given twice is deleted once (its second delete would be a 404).
  const ids = [...new Set(positionals)];
  // Checked before anything is sent: a mistyped id among several would leave the others deleted and this one not.
  for (const id of ids) {
    if (!ulid.test(id)) throw new UsageError(`"${oneLine(id, 40)}" is not a ${kind.noun} id (26 characters of 0-9 A-Z: a ULID, as ${kind.printedBy} prints)`);
  }
  let notDeleted = 0;
  for (const [i, id] of ids.entries()) {
    try {
      await kind.del(id);
      out(json ? JSON.stringify({ id, deleted: true }) : `${id} deleted`);
    } catch (e) {
      if (!(e instanceof ApiError && about.has(e.code))) {
        // Told as every command tells it, then what it leaves undone (the ones before stay deleted).
        const code = report(e, kind.spec, url);
        const rest = ids.slice(i + 1);
        if (rest.length > 0) err(`ats: stopped at ${id}; not tried: ${rest.join(' ')}`);
        return code;
      }
      notDeleted++;
      out(json
        ? JSON.stringify({ id, deleted: false, status: e.status, code: e.code, message: e.message })
        : `${id} ${kind.refused.get(e.code) ?? 'refused'}`);
      err(`${e.code}: ${oneLine(e.message)}`);
    }
  }
  if (notDeleted > 0 && ids.length > 1) err(`ats: ${ids.length - notDeleted} of ${ids.length} ${kind.nouns} deleted, ${notDeleted} not`);
  return notDeleted === 0 ? 0 : 1;
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
    del: (id) => client.delete(id),
  }, positionals, values.json === true, client.url));
