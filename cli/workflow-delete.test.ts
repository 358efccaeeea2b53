/**
 * `ats workflow delete ID [ID...]` against a real scheduler (composed in this
 * process, SQLite) and the CLI as child processes, as `ats delete` is tested
 * (cli/delete.test.ts): a line per id (deleted, not found, active), exit 0
 * only when every instance was deleted, an id given twice deleted once,
 * `--json` one object per id, an id that is no instance id refused before
 * anything is sent, and a delete whose answer was lost sent again (its 404
 * counted as deleted).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createMachine } from 'xstate';
import { ApiError, type AtsClient } from '../client/index.js';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { runAts, startCliServer, type CliRun } from '../tests/helpers/cli.js';
import { startLostAnswerProxy } from '../tests/helpers/lost-answer-proxy.js';

let server: Awaited<ReturnType<typeof startCliServer>> | undefined;
let url = '';
let client: AtsClient;

const ats = (args: string[]): Promise<CliRun> => runAts(url, args);

/** Waits for GO, then ends done: no jobs. */
const WAITING = createMachine({ id: 'cli-wait', initial: 'waiting', states: { waiting: { on: { GO: 'over' } }, over: { type: 'final' } } });

before(async () => {
  server = await startCliServer(registerDemoHandlers(new HandlerRegistry()).workflow('cli.wait', WAITING));
  ({ url, client } = server);
});

after(() => server?.stop());

/** An active instance. */
const activeInstance = async () => (await client.startWorkflow({ name: 'cli.wait', input: { email: 'ann@ats.invalid' } })).id;
/** An ended one (done). */
const endedInstance = async () => {
  const id = await activeInstance();
  assert.equal((await client.signalWorkflow(id, { type: 'GO' })).status, 'done');
  return id;
};
const gone = async (id: string) => {
  await assert.rejects(client.getWorkflow(id), (e: unknown) => e instanceof ApiError && e.status === 404, `${id} is still there`);
};
const UNKNOWN = '01J00000000000000000000000';

describe('ats workflow delete', { timeout: 360_000 }, () => {
  test('an ended instance: "ID deleted" on stdout, exit 0, nothing on stderr, and the instance is gone', async () => {
    const id = await endedInstance();
    const r = await ats(['workflow', 'delete', id]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${id} deleted\n`);
    assert.equal(r.stderr, '');
    await gone(id);
  });

  test('several ids, some refused, one twice: each tried once in turn, a line each in order, the others deleted, a count on stderr, exit 1', async () => {
    const [a, active, b] = [await endedInstance(), await activeInstance(), await endedInstance()];
    const r = await ats(['workflow', 'delete', a, UNKNOWN, active, b, a]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(r.stdout.trimEnd().split('\n'), [`${a} deleted`, `${UNKNOWN} not found`, `${active} active (refused)`, `${b} deleted`]);
    const errors = r.stderr.trimEnd().split('\n');
    assert.deepEqual(errors.map((l) => l.split(':')[0]), ['ATS_ERR_WORKFLOW_NOT_FOUND', 'ATS_ERR_WORKFLOW_ACTIVE', 'ats'], r.stderr);
    assert.match(errors[1]!, new RegExp(`^ATS_ERR_WORKFLOW_ACTIVE: Workflow instance ${active} is active; .*cancel it first`));
    assert.equal(errors.at(-1), 'ats: 2 of 4 instances deleted, 2 not');
    await gone(a);
    await gone(b);
    assert.equal((await client.getWorkflow(active)).status, 'active');
    // Cancelled, it deletes: exit 0, no count.
    await client.cancelWorkflow(active);
    const all = await ats(['workflow', 'delete', active]);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout, `${active} deleted\n`);
    assert.equal(all.stderr, '');
  });

  test('--json: one JSON object per id, in order; a refusal with the API\'s status, code and message', async () => {
    const [a, active] = [await endedInstance(), await activeInstance()];
    const r = await ats(['workflow', 'delete', a, UNKNOWN, active, '--json']);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines[0], { id: a, deleted: true });
    assert.deepEqual(lines[1], { id: UNKNOWN, deleted: false, status: 404, code: 'ATS_ERR_WORKFLOW_NOT_FOUND', message: `No workflow instance has id ${UNKNOWN}` });
    assert.deepEqual({ ...lines[2], message: undefined }, { id: active, deleted: false, status: 409, code: 'ATS_ERR_WORKFLOW_ACTIVE', message: undefined });
    assert.equal(lines.length, 3);
  });

  test('an id that is no instance id, among good ones, or none at all: exit 2 with the usage, nothing deleted', async () => {
    const id = await endedInstance();
    for (const args of [[id, 'abc'], [id, id.toLowerCase()], [id, `${id}\u001b[2J`], []]) {
      const r = await ats(['workflow', 'delete', ...args]);
      assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^usage: ats workflow delete ID \[ID\.\.\.\]/m);
      if (args.length > 0) assert.match(r.stderr, /is not a workflow instance id/);
      assert.doesNotMatch(r.stderr, /\u001b/, 'a control character is escaped');
    }
    assert.equal((await client.getWorkflow(id)).status, 'done', 'not deleted');
  });

  test('a delete whose answer was lost is sent again; the 404 to that retry counts as deleted: exit 0', async () => {
    const [a, b] = [await endedInstance(), await endedInstance()];
    // In front of the scheduler: each instance's first DELETE goes through, and its answer is lost (the connection dropped).
    const proxy = await startLostAnswerProxy(url);
    try {
      const r = await ats(['workflow', 'delete', a, b, '--url', proxy.url]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trimEnd().split('\n'), [`${a} deleted`, `${b} deleted`]);
      assert.deepEqual(proxy.seen, [`DELETE /v1/workflows/${a}`, `DELETE /v1/workflows/${a}`, `DELETE /v1/workflows/${b}`, `DELETE /v1/workflows/${b}`], 'each sent twice');
    } finally {
      await proxy.close();
    }
    await gone(a);
    await gone(b);
  });
});
