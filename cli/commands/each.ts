/**
 * What the commands that act on many jobs or instances share: `ats delete`,
 * `ats cancel`, `ats redrive` (ids, or every job a filter lists) and
 * `ats workflow delete`. Each one is acted on in turn, a line each; an answer
 * about the one (its own refusal) does not stop the others, one that every
 * one would get stops there.
 */
import { ApiError, outcomeWasUnknown, type AtsClient, type Job, type ListQuery } from '../client.js';
import { ULID_PATTERN } from '../../server/schemas.js';
import { UsageError } from './args.js';
import { oneLine } from './output.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitOut } from './follow.js';
import { err, out, report, type CommandSpec } from './run.js';

/** What a command that acts on many tells apart of its kind of thing and its action. */
export interface EachKind<T> {
  spec: CommandSpec;
  /** What one is (`job`) and several are (`jobs`), in lines. */
  noun: string;
  nouns: string;
  /** What prints its id, for an id that is none. */
  printedBy: string;
  /** What one acted on is, in the count and as the `--json` field of one not (`deleted`, `cancelled`, `redriven`). */
  done: string;
  /** What a refusal of one prints after its id, by the API's code (a Map: the code is the server's). */
  refused: ReadonlyMap<string, string>;
  /** The action on one: resolves with what the line of one done shows. */
  act(id: string): Promise<T>;
  /** The line of one done (with `json`, its JSON object). */
  doneLine(id: string, result: T, json: boolean): string;
}

const ulid = new RegExp(ULID_PATTERN);

/**
 * `positionals` as ids to act on, in order, an id given twice once (its second action would be refused or
 * repeated); each checked to be an id before anything is sent: a mistyped id among several would leave the
 * others done and this one not.
 */
export function idsOf(kind: Pick<EachKind<unknown>, 'noun' | 'printedBy'>, positionals: readonly string[]): string[] {
  const ids = [...new Set(positionals)];
  for (const id of ids) {
    if (!ulid.test(id)) throw new UsageError(`"${oneLine(id, 40)}" is not a ${kind.noun} id (26 characters of 0-9 A-Z: a ULID, as ${kind.printedBy} prints)`);
  }
  return ids;
}

/** How one action ended: done, refused (an answer about the one: `e`), or skipped (refused as `skipped` codes say). */
type Outcome = { done: true } | { done: false; skipped: boolean };

/**
 * Acts on one, printing its line; an answer that is not about the one (`about`) is thrown. `skipped`: the codes
 * that say the one changed meanwhile (the filter form), by what its line says after "skipped".
 */
async function actOnOne<T>(
  kind: EachKind<T>, id: string, json: boolean, about: ReadonlySet<string>, skipped: ReadonlyMap<string, string> = new Map(),
): Promise<Outcome> {
  try {
    out(kind.doneLine(id, await kind.act(id), json));
    return { done: true };
  } catch (e) {
    if (!(e instanceof ApiError && (about.has(e.code) || skipped.has(e.code)))) throw e;
    const skip = skipped.get(e.code);
    out(json
      ? JSON.stringify({ id, [kind.done]: false, ...(skip === undefined ? {} : { skipped: true }), status: e.status, code: e.code, message: e.message })
      : `${id} ${skip === undefined ? kind.refused.get(e.code) ?? 'refused' : `skipped (${skip})`}`);
    err(`${e.code}: ${oneLine(e.message)}`);
    return { done: false, skipped: skip !== undefined };
  }
}

/** The codes an answer about one of `kind` has: its own refusals, and changed meanwhile (409 ATS_ERR_CONCURRENT_UPDATE). */
const aboutOne = (kind: EachKind<unknown>): ReadonlySet<string> => new Set([...kind.refused.keys(), 'ATS_ERR_CONCURRENT_UPDATE']);

/**
 * Acts on each of `ids` (from `idsOf`) in order, a line each; the exit code: 0 when every one was done, else 1.
 * An answer about the one (its own refusal codes, or changed meanwhile: 409 ATS_ERR_CONCURRENT_UPDATE) does not
 * stop the others; one that every one would get (a 400 of the request, a 403, a 503, a proxy's 404 or 409) stops
 * there, naming the ones not tried.
 */
export async function actOnEach<T>(kind: EachKind<T>, ids: readonly string[], json: boolean, url: string): Promise<number> {
  const about = aboutOne(kind as EachKind<unknown>);
  let notDone = 0;
  for (const [i, id] of ids.entries()) {
    try {
      if (!(await actOnOne(kind, id, json, about)).done) notDone++;
    } catch (e) {
      // Told as every command tells it, then what it leaves undone (the ones before stay done).
      const code = report(e, kind.spec, url);
      const rest = ids.slice(i + 1);
      if (rest.length > 0) err(`ats: stopped at ${id}; not tried: ${rest.join(' ')}`);
      return code;
    }
  }
  if (notDone > 0 && ids.length > 1) err(`ats: ${ids.length - notDone} of ${ids.length} ${kind.nouns} ${kind.done}, ${notDone} not`);
  return notDone === 0 ? 0 : 1;
}

/** `GET /v1/jobs`'s filter as the filter form takes it: a state always. */
export type JobsFilter = Required<Pick<ListQuery, 'state'>> & Pick<ListQuery, 'type' | 'queue' | 'limit'>;

/**
 * Every job `GET /v1/jobs` lists with `filter`, one page at a time (the next read only once the jobs of the
 * one before were acted on), newest first. A cursor is a position (after the last id a page read), so acting
 * on a job (which takes it out of the filter) moves no other job in or out of a page to come: no job is
 * listed twice, none that matched throughout is missed. The walk goes down the ids from the newest at its
 * start to the tenant's oldest, so it ends however many jobs arrive meanwhile: a job submitted once the
 * walk began is newer than the pages read and is not listed. A list of another shape (a job out of id
 * order, or outside the filter) is no answer of the API's: thrown, before anything is done to that job.
 */
export async function* jobsMatching(client: AtsClient, filter: JobsFilter, onLimited: (notice: string) => void = () => {}): AsyncGenerator<Job, void, undefined> {
  let before: string | undefined;
  let cursor: string | undefined;
  // Each cursor a page answered: one again (another service's answer) would page for ever.
  const sent = new Set<string>();
  do {
    if (cursor !== undefined) sent.add(cursor);
    const query = { ...filter, ...(cursor === undefined ? {} : { cursor }) };
    const page = await outwaitingLimits(() => client.listPage(query), onLimited);
    for (const job of page.jobs) {
      // Printed and sent back in a path: an id is a ULID, or this is no answer of the API's.
      if (typeof job.id !== 'string' || !ulid.test(job.id)) throw new Error(`GET /v1/jobs listed a job whose id is ${oneLine(JSON.stringify(job.id) ?? 'missing', 40)}, not a ULID (not an ats server?)`);
      if (before !== undefined && !(job.id < before)) {
        throw new Error(`GET /v1/jobs listed ${oneLine(String(job.id), 40)} after ${before}, not newest first (not an ats server?)`);
      }
      const off = ([['state', job.state], ['type', job.type], ['queue', job.queue]] as const)
        .find(([name, value]) => filter[name] !== undefined && value !== filter[name]);
      if (off) {
        throw new Error(`GET /v1/jobs listed ${oneLine(String(job.id), 40)} of ${off[0]} ${oneLine(String(off[1]), 80)}, asked for ${filter[off[0]]} (not an ats server?)`);
      }
      before = job.id;
      yield job;
    }
    const next: unknown = page.nextCursor ?? undefined;
    if (next !== undefined && (typeof next !== 'string' || sent.has(next))) {
      throw new Error(`GET /v1/jobs answered the next cursor ${oneLine(JSON.stringify(next), 60)}, ${typeof next === 'string' ? 'one it was sent already' : 'not a string'} (not an ats server?)`);
    }
    cursor = next as string | undefined;
  } while (cursor !== undefined);
}

/** Waits in a row for the server's rate limit before the walk gives up and stops. */
const MAX_LIMITED_WAITS = 20;

/**
 * `call`, again after a 429 of the server's rate limit once its Retry-After is over (`waitOut`), each wait
 * told to `onLimited`, at most MAX_LIMITED_WAITS in a row. Such a 429 is refused before anything is done, so
 * asking again does nothing twice (a redrive too); not when a try before it in the same call may have gone
 * through (the client sent it again after a timeout or a 503): that, a 429 without a Retry-After (not the
 * scheduler's own limit: it may never pass) and any other failure are thrown.
 */
async function outwaitingLimits<T>(call: () => Promise<T>, onLimited: (notice: string) => void): Promise<T> {
  for (let limited = 0; ; limited++) {
    try {
      return await call();
    } catch (e) {
      const waitable = e instanceof ApiError && e.code === 'ATS_ERR_RATE_LIMITED' && e.retryAfterMs !== undefined
        && !outcomeWasUnknown(e) && limited < MAX_LIMITED_WAITS;
      const wait = waitable ? waitOut(e, 1000, limited) : null;
      if (!wait) throw e;
      onLimited(wait.notice);
      await sleep(wait.ms);
    }
  }
}

/** `1 job`, `3 jobs`. */
const count = (n: number, kind: Pick<EachKind<unknown>, 'noun' | 'nouns'>): string => `${n} ${n === 1 ? kind.noun : kind.nouns}`;

/**
 * Acts on each job of `jobs` (from `jobsMatching`) in turn, a line each, then a count on stderr
 * (`ats: 120 jobs redriven, 3 skipped`); the exit code. A job listed that changed before it was acted on
 * (the API answers one of the `skipped` codes: it moved on, or was deleted) is "ID skipped (...)" and
 * leaves the exit code 0; another refusal of one (`kind.refused`, a 409 ATS_ERR_CONCURRENT_UPDATE) is
 * exit 1; a failure that every job would get (or of the list itself) stops there, with the count so far.
 * `dryRun`: the ids only (with `json`, the jobs as listed), and nothing else is sent.
 */
export async function actOnMatching<T>(
  kind: EachKind<T>, skipped: ReadonlyMap<string, string>, jobs: AsyncIterable<Job>, { json, dryRun, url }: { json: boolean; dryRun: boolean; url: string },
): Promise<number> {
  const about = aboutOne(kind as EachKind<unknown>);
  let [done, skips, refused] = [0, 0, 0];
  const counts = () => `${count(done, kind)} ${kind.done}, ${skips} skipped${refused > 0 ? `, ${refused} refused` : ''}`;
  /** Told as every command tells it, then how far it went: the jobs before stay as they were made. */
  const stopped = (e: unknown, where: string): number => {
    const code = report(e, kind.spec, url);
    err(dryRun ? `ats: stopped ${where}; ${count(done, kind)} listed by then` : `ats: stopped ${where}; ${counts()} by then, the rest not tried`);
    return code;
  };
  const walk = jobs[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<Job>;
    try {
      next = await walk.next();
    } catch (e) {
      return stopped(e, `reading the ${kind.nouns}`);
    }
    if (next.done) break;
    const { id } = next.value;
    if (dryRun) {
      out(json ? JSON.stringify(next.value) : id);
      done++;
      continue;
    }
    let outcome: Outcome;
    try {
      outcome = await outwaitingLimits(() => actOnOne(kind, id, json, about, skipped), (notice) => err(`ats: ${notice}`));
    } catch (e) {
      return stopped(e, `at ${id}`);
    }
    if (outcome.done) done++;
    else if (outcome.skipped) skips++;
    else refused++;
  }
  err(dryRun ? `ats: ${count(done, kind)} would be ${kind.done} (--dry-run: nothing sent)` : `ats: ${counts()}`);
  return refused === 0 ? 0 : 1;
}
