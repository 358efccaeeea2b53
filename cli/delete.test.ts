/**
 * `ats delete ID [ID...]` against a real scheduler (composed in this process,
 * SQLite) and the CLI as child processes: a line per id (deleted, not found,
 * live), exit 0 only when every job was deleted, `--json` one object per id,
 * an id that is no job id refused before anything is sent, a delete whose
 * answer was lost sent again (its 404 counted as deleted), and a key without
 * the operate scope stopping at the first job.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApiError, createClient, type AtsClient } from '../client/index.js';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { runAts, startCliServer, type CliRun } from '../tests/helpers/cli.js';
import { startLostAnswerProxy } from '../tests/helpers/lost-answer-proxy.js';

let server: Awaited<ReturnType<typeof startCliServer>> | undefined;
let url = '';
let client: AtsClient;

const ats = (args: string[], extraEnv: Record<string, string> = {}): Promise<CliRun> => runAts(url, args, extraEnv);

before(async () => {
  server = await startCliServer(registerDemoHandlers(new HandlerRegistry()));
  ({ url, client } = server);
});

after(() => server?.stop());

const later = () => new Date(Date.now() + 86_400_000).toISOString();
/** A job that waits a day: live (pending). */
const liveJob = async () => (await client.submit({ type: 'demo.echo', payload: null, runAt: later() })).id;
/** A job that has ended (cancelled). */
const endedJob = async () => {
  const id = await liveJob();
  await client.cancel(id);
  return id;
};
const gone = async (id: string) => {
  await assert.rejects(client.get(id), (e: unknown) => e instanceof ApiError && e.status === 404, `${id} is still there`);
};
const UNKNOWN = '01J00000000000000000000000';

describe('ats delete', { timeout: 360_000 }, () => {
  test('an ended job: "ID deleted" on stdout, exit 0, nothing on stderr, and the job is gone', async () => {
    const id = await endedJob();
    const r = await ats(['delete', id]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${id} deleted\n`);
    assert.equal(r.stderr, '');
    await gone(id);
  });

  test('an unknown id: "ID not found", the API\'s ATS_ERR_JOB_NOT_FOUND on stderr, exit 1', async () => {
    const r = await ats(['delete', UNKNOWN]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, `${UNKNOWN} not found\n`);
    assert.match(r.stderr, new RegExp(`^ATS_ERR_JOB_NOT_FOUND: No job has id ${UNKNOWN}$`, 'm'));
  });

  test('a live job: "ID live (refused)", ATS_ERR_JOB_LIVE naming its state on stderr, exit 1, and the job stays', async () => {
    const id = await liveJob();
    const r = await ats(['delete', id]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, `${id} live (refused)\n`);
    assert.match(r.stderr, new RegExp(`^ATS_ERR_JOB_LIVE: Job ${id} is pending; .*cancel it first`, 'm'));
    assert.equal((await client.get(id)).state, 'pending');
  });

  test('several ids, some refused: each tried in turn, a line each in order, the others deleted, a count on stderr, exit 1', async () => {
    const [a, live, b] = [await endedJob(), await liveJob(), await endedJob()];
    const r = await ats(['delete', a, UNKNOWN, live, b]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(r.stdout.trimEnd().split('\n'), [`${a} deleted`, `${UNKNOWN} not found`, `${live} live (refused)`, `${b} deleted`]);
    const errors = r.stderr.trimEnd().split('\n');
    assert.deepEqual(errors.map((l) => l.split(':')[0]), ['ATS_ERR_JOB_NOT_FOUND', 'ATS_ERR_JOB_LIVE', 'ats'], r.stderr);
    assert.equal(errors.at(-1), 'ats: 2 of 4 jobs deleted, 2 not');
    await gone(a);
    await gone(b);
    assert.equal((await client.get(live)).state, 'pending');
    // All deleted: exit 0, no count.
    const [c, d] = [await endedJob(), await endedJob()];
    const all = await ats(['delete', c, d]);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(all.stdout.trimEnd().split('\n'), [`${c} deleted`, `${d} deleted`]);
    assert.equal(all.stderr, '');
  });

  test('--json: one JSON object per id, in order; a refusal with the API\'s status, code and message', async () => {
    const [a, live] = [await endedJob(), await liveJob()];
    const r = await ats(['delete', a, UNKNOWN, live, '--json']);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines[0], { id: a, deleted: true });
    assert.deepEqual(lines[1], { id: UNKNOWN, deleted: false, status: 404, code: 'ATS_ERR_JOB_NOT_FOUND', message: `No job has id ${UNKNOWN}` });
    assert.deepEqual({ ...lines[2], message: undefined }, { id: live, deleted: false, status: 409, code: 'ATS_ERR_JOB_LIVE', message: undefined });
    assert.match(String(lines[2]!.message), new RegExp(`^Job ${live} is pending`));
    assert.equal(lines.length, 3);
  });

  test('an id that is no job id, among good ones, or none at all: exit 2 with the usage, nothing deleted', async () => {
    const id = await endedJob();
    for (const args of [[id, 'abc'], [id, id.toLowerCase()], [id, `${id}\u001b[2J`], []]) {
      const r = await ats(['delete', ...args]);
      assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^usage: ats delete ID \[ID\.\.\.\]/m);
      if (args.length > 0) assert.match(r.stderr, /is not a job id/);
      assert.doesNotMatch(r.stderr, /\u001b/, 'a control character is escaped');
    }
    assert.equal((await client.get(id)).state, 'cancelled', 'not deleted');
  });

  test('a delete whose answer was lost is sent again; the 404 to that retry counts as deleted: exit 0', async () => {
    const [a, b] = [await endedJob(), await endedJob()];
    // In front of the scheduler: each job's first DELETE goes through, and its answer is lost (the connection dropped).
    const proxy = await startLostAnswerProxy(url);
    try {
      const r = await ats(['delete', a, b, '--url', proxy.url]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trimEnd().split('\n'), [`${a} deleted`, `${b} deleted`]);
      assert.deepEqual(proxy.seen, [`DELETE /v1/jobs/${a}`, `DELETE /v1/jobs/${a}`, `DELETE /v1/jobs/${b}`, `DELETE /v1/jobs/${b}`], 'each sent twice');
    } finally {
      await proxy.close();
    }
    await gone(a);
    await gone(b);
  });
});

describe('ats delete with API keys', { timeout: 360_000 }, () => {
  test('a key without the operate scope: ATS_ERR_FORBIDDEN naming it, stopped at the first job, the rest named as not tried, nothing deleted', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ats-cli-delete-'));
    const keyed = await startCliServer(registerDemoHandlers(new HandlerRegistry()), { ATS_DATA_DIR: dataDir, ATS_AUTH: 'on' });
    try {
      const key = async (scopes: string) => {
        const made = await runAts(keyed.url, ['keys', 'create', '--scopes', scopes, '--name', scopes.replace(/,/g, '-')], { ATS_DATA_DIR: dataDir });
        assert.equal(made.code, 0, made.stderr);
        return { ATS_API_KEY: made.stdout.trim() };
      };
      const [reader, operator] = [await key('read'), await key('submit,operate')];
      const operating = createClient({ url: keyed.url, apiKey: operator.ATS_API_KEY });
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) {
        const { id } = await operating.submit({ type: 'demo.echo', payload: null, runAt: later() });
        await operating.cancel(id);
        ids.push(id);
      }
      const refused = await runAts(keyed.url, ['delete', ...ids], reader);
      assert.equal(refused.code, 1);
      assert.equal(refused.stdout, '');
      assert.deepEqual(refused.stderr.trimEnd().split('\n'), [
        'ATS_ERR_FORBIDDEN: This route needs the operate scope; the key has read',
        `ats: stopped at ${ids[0]}; not tried: ${ids[1]}`,
      ]);
      const reading = createClient({ url: keyed.url, apiKey: reader.ATS_API_KEY });
      for (const id of ids) assert.equal((await reading.get(id)).state, 'cancelled', 'not deleted');
      const deleted = await runAts(keyed.url, ['delete', ...ids], operator);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.deepEqual(deleted.stdout.trimEnd().split('\n'), ids.map((id) => `${id} deleted`));
    } finally {
      await keyed.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
