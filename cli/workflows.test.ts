/**
 * `ats workflow ...` end to end: a real scheduler in this process (compose:
 * the API, relay, worker and timers on a fresh SQLite file) with a small
 * registered workflow, and the CLI as child processes (`node cli/bin.mjs
 * workflow ...`) talking to it, checked by exit code and output. Then the
 * printing functions on their own, for what a live run cannot easily reach
 * (a dead child, a replay that does not match).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assign, setup } from 'xstate';
import { type AtsClient, type Workflow, type WorkflowEvent } from '../client/index.js';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { runAts, startCliServer, type CliRun } from '../tests/helpers/cli.js';
import { job } from '../machines/workflow.js';
import { UsageError } from './commands/args.js';
import { signalFrom, stateText, verifyText, workflowDetail, workflowHistory } from './commands/workflows.js';

let server: Awaited<ReturnType<typeof startCliServer>> | undefined;
let url = '';
let client: AtsClient;

/** `ats ARGS...` against the test server. */
const ats = (args: string[]): Promise<CliRun> => runAts(url, args);

const until = async (cond: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/** Echoes the document as a job, then waits an hour for APPROVE; HOLD runs a long job first. */
const review = setup({
  types: {
    context: {} as { doc: string; by: string | null },
    input: {} as { doc?: string } | null,
    events: {} as { type: 'APPROVE'; by: string } | { type: 'HOLD' },
  },
  actors: { echo: job<unknown, { doc: string }>('demo.echo'), sleep: job<unknown, { ms: number }>('demo.sleep') },
}).createMachine({
  id: 'cli-review',
  initial: 'echoing',
  context: ({ input }) => ({ doc: input?.doc ?? 'none', by: null }),
  states: {
    echoing: { invoke: { id: 'echo', src: 'echo', input: ({ context }) => ({ doc: context.doc }), onDone: 'review' } },
    review: {
      after: { 3_600_000: 'expired' },
      on: { APPROVE: { target: 'approved', actions: assign({ by: ({ event }) => event.by }) }, HOLD: 'holding' },
    },
    holding: { invoke: { id: 'hold', src: 'sleep', input: { ms: 600_000 }, onDone: 'review' } },
    approved: { type: 'final' },
    expired: { type: 'final' },
  },
  output: ({ context }) => ({ doc: context.doc, by: context.by }),
});

before(async () => {
  const registry = registerDemoHandlers(new HandlerRegistry());
  registry.workflow('cli.review', review);
  server = await startCliServer(registry, { ATS_RELAY_POLL_MS: '20', ATS_TIMERS_POLL_MS: '100' });
  ({ url, client } = server);
});

after(() => server?.stop());

const ULID = /^[0-9A-Z]{26}$/;

/** Starts an instance through the CLI and waits for its echo job's end to move it to `review`. */
async function startReviewing(doc: string): Promise<string> {
  const r = await ats(['workflow', 'start', 'cli.review', '--input', JSON.stringify({ doc })]);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.match(id, ULID);
  await until(async () => (await client.getWorkflow(id)).value === 'review', 'the echo job to end and move the instance on');
  return id;
}

describe('ats workflow against a running scheduler', { timeout: 180_000 }, () => {
  let approved = '';
  let cancelled = '';

  test('start prints the id (the same for the same idempotency key); --json the instance', async () => {
    const first = await ats(['workflow', 'start', 'cli.review', '--input', '{"doc":"k"}', '--idempotency-key', 'cli-wf-1']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout.trim(), ULID);
    const again = await ats(['workflow', 'start', 'cli.review', '--input', '{"doc":"k"}', '--idempotency-key', 'cli-wf-1', '--json']);
    assert.equal(again.code, 0, again.stderr);
    const wf = JSON.parse(again.stdout) as Workflow;
    assert.deepEqual([wf.id, wf.name, wf.status, wf.idempotencyKey, wf.input], [first.stdout.trim(), 'cli.review', 'active', 'cli-wf-1', { doc: 'k' }]);
    const conflict = await ats(['workflow', 'start', 'cli.review', '--input', '{"doc":"other"}', '--idempotency-key', 'cli-wf-1']);
    assert.equal(conflict.code, 1);
    assert.match(conflict.stderr, /^ATS_ERR_IDEMPOTENCY_CONFLICT: /);
  });

  test('show: status, state, context, accepts, the timer; a refused signal names what it accepts; an accepted one ends it', async () => {
    approved = await startReviewing('d-1');
    const shown = await ats(['workflow', 'show', approved]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal((await ats(['workflow', 'get', approved])).stdout, shown.stdout, 'get is show');
    assert.match(shown.stdout, new RegExp(`^id {13}${approved}$`, 'm'));
    assert.match(shown.stdout, /^name {11}cli\.review \(definition 1\)$/m);
    assert.match(shown.stdout, /^status {9}active$/m);
    assert.match(shown.stdout, /^state {10}review$/m);
    assert.match(shown.stdout, /^context {8}\{"doc":"d-1","by":null\}$/m);
    assert.match(shown.stdout, /^accepts {8}APPROVE, HOLD$/m);
    assert.match(shown.stdout, /^children\n {2}none$/m);
    assert.match(shown.stdout, /^timers\n {2}TIMER\s+DUE\n {2}xstate\.after\.3600000\.cli-review\.review\s+\d{4}-\d\d-\d\dT[\d:.]+Z$/m);
    assert.doesNotMatch(shown.stdout, /^output/m);

    const refused = await ats(['workflow', 'signal', approved, 'NOPE']);
    assert.equal(refused.code, 1);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr, /^ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED: .*it takes now: APPROVE, HOLD\n$/);
    // --json: the refusal on stdout, with the list itself.
    const refusedJson = await ats(['workflow', 'signal', approved, 'NOPE', '--json']);
    assert.equal(refusedJson.code, 1);
    assert.deepEqual({ ...JSON.parse(refusedJson.stdout), message: null }, { code: 'ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED', message: null, accepts: ['APPROVE', 'HOLD'] });

    const signalled = await ats(['workflow', 'signal', approved, 'APPROVE', '--data', '{"by":"ann"}', '--idempotency-key', 'approve-1']);
    assert.equal(signalled.code, 0, signalled.stderr);
    assert.equal(signalled.stdout, `${approved} done approved\n`);
    // The same command again (a script's retry): taken before, so it answers the instance and adds nothing.
    const repeated = await ats(['workflow', 'signal', approved, 'APPROVE', '--data', '{"by":"ann"}', '--idempotency-key', 'approve-1']);
    assert.deepEqual([repeated.code, repeated.stdout], [0, `${approved} done approved\n`], repeated.stderr);
    const ended = await ats(['workflow', 'show', approved]);
    assert.match(ended.stdout, /^status {9}done$/m);
    assert.match(ended.stdout, /^output {9}\{"doc":"d-1","by":"ann"\}$/m);
    assert.match(ended.stdout, /^accepts {8}-$/m);
    assert.match(ended.stdout, /^timers\n {2}none$/m);
    // An ended instance accepts nothing: the refusal says so.
    const late = await ats(['workflow', 'signal', approved, 'APPROVE', '--data', '{"by":"bob"}', '--json']);
    assert.equal(late.code, 1);
    assert.deepEqual(JSON.parse(late.stdout).accepts, []);
    assert.equal((JSON.parse((await ats(['workflow', 'show', approved, '--json'])).stdout) as Workflow).status, 'done');
  });

  test('history: one line per event with what entered, the jobs it started and the status after it; verify replays it', async () => {
    const events = await client.workflowEvents(approved);
    const echoJob = (events[0]!.data as { jobIds: string[] }).jobIds[0]!;
    const r = await ats(['workflow', 'history', approved]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 4, r.stdout);
    assert.match(lines[0]!, /^SEQ\s+AT\s+EVENT\s+STATUS\s+WHAT$/);
    const time = '\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z';
    assert.match(lines[1]!, new RegExp(`^1\\s+${time}\\s+START\\s+active\\s+input \\{"doc":"d-1"\\}  -> started demo\\.echo ${echoJob}$`));
    assert.match(lines[2]!, new RegExp(`^2\\s+${time}\\s+CHILD\\s+active\\s+demo\\.echo ${echoJob} done \\{"doc":"d-1"\\}$`));
    assert.match(lines[3]!, new RegExp(`^3\\s+${time}\\s+SIGNAL\\s+done\\s+APPROVE \\{"by":"ann"\\}$`));
    const json = JSON.parse((await ats(['workflow', 'history', approved, '--json'])).stdout) as { events: WorkflowEvent[] };
    assert.deepEqual(json.events.map((e) => [e.seq, e.type, e.status]), [[1, 'START', 'active'], [2, 'CHILD', 'active'], [3, 'SIGNAL', 'done']]);

    const verified = await ats(['workflow', 'verify', approved]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.stdout, 'ok: 3 events replayed\n');
    assert.deepEqual(JSON.parse((await ats(['workflow', 'verify', approved, '--json'])).stdout), { ok: true, events: 3 });
  });

  test('cancel: a running child shows in show; the cancel ends the instance and its history says why; an ended one exits 1', async () => {
    cancelled = await startReviewing('d-2');
    const held = await ats(['workflow', 'signal', cancelled, 'HOLD']);
    assert.equal(held.code, 0, held.stderr);
    assert.equal(held.stdout, `${cancelled} active holding\n`);
    const shown = await ats(['workflow', 'show', cancelled]);
    const hold = (await client.getWorkflow(cancelled)).children[0]!;
    assert.match(shown.stdout, new RegExp(`^children\\n {2}INVOKE\\s+JOB\\s+TYPE\\s+STATE\\n {2}hold\\s+${hold.jobId}\\s+demo\\.sleep\\s+(pending|published|running)$`, 'm'));

    const r = await ats(['workflow', 'cancel', cancelled, '--reason', 'cli test']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${cancelled} cancelled holding\n`);
    await until(async () => (await client.get(hold.jobId)).state === 'cancelled', 'the held job to be cancelled');
    const again = await ats(['workflow', 'cancel', cancelled, '--json']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^ATS_ERR_WORKFLOW_ENDED: /);

    const history = (await ats(['workflow', 'history', cancelled])).stdout.trimEnd().split('\n');
    assert.match(history[3]!, new RegExp(`^3\\s+\\S+\\s+SIGNAL\\s+active\\s+HOLD  -> started demo\\.sleep ${hold.jobId}$`));
    assert.match(history.at(-1)!, /^4\s+\S+\s+CANCEL\s+cancelled\s+reason: cli test$/);
    assert.equal((await ats(['workflow', 'verify', cancelled])).stdout, 'ok: 4 events replayed\n');
  });

  test('ls: a table of instances, newest first, filtered by name and status; --json the page; a full page says how to go on', async () => {
    const r = await ats(['workflow', 'ls', '--name', 'cli.review']);
    assert.equal(r.code, 0, r.stderr);
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    assert.match(header!, /^ID\s+NAME\s+STATUS\s+STATE\s+UPDATED$/);
    assert.equal(rows.length, 3, r.stdout);
    assert.match(rows[0]!, new RegExp(`^${cancelled}\\s+cli\\.review\\s+cancelled\\s+holding\\s+\\S+Z$`));
    assert.match(rows[1]!, new RegExp(`^${approved}\\s+cli\\.review\\s+done\\s+approved\\s+\\S+Z$`));
    const done = JSON.parse((await ats(['workflow', 'ls', '--status', 'done', '--json'])).stdout) as { workflows: Workflow[]; nextCursor: string | null };
    assert.deepEqual(done.workflows.map((w) => w.id), [approved]);
    const page = await ats(['workflow', 'ls', '--limit', '1']);
    assert.equal(page.code, 0, page.stderr);
    assert.equal(page.stdout.trimEnd().split('\n').length, 2);
    assert.match(page.stderr, /^more: ats workflow ls --cursor=\S+ --limit=1$/m);
    const none = await ats(['workflow', 'ls', '--status', 'error']);
    assert.deepEqual([none.code, none.stdout, none.stderr], [0, '', 'no workflows\n']);
  });

  test('a wrong command line prints the usage and exits 2; what the server refuses exits 1 with its code', async () => {
    const usage = async (args: string[], message: RegExp, usageLine: RegExp) => {
      const r = await ats(['workflow', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.match(r.stderr, usageLine);
      assert.equal(r.stdout, '');
    };
    await usage([], /^ats: missing workflow command \(start, ls, show, history, signal, cancel, delete, verify, get\)/, /usage: ats workflow start NAME/);
    await usage(['nope'], /^ats: unknown workflow command "nope"/, /usage: ats workflow verify ID/);
    await usage(['start'], /^ats: missing argument\n/, /^usage: ats workflow start NAME/m);
    await usage(['start', 'cli.review', '--input', '{bad'], /^ats: --input is not valid JSON/, /^usage: ats workflow start/m);
    await usage(['ls', '--status', 'running'], /^ats: --status: unknown value "running" \(one of: active, done, error, cancelled\)/, /^usage: ats workflow ls/m);
    await usage(['ls', '--limit', '0'], /^ats: --limit must be an integer from 1 to 500/, /^usage: ats workflow ls/m);
    await usage(['signal', approved], /^ats: missing argument\n/, /^usage: ats workflow signal ID TYPE/m);
    await usage(['signal', approved, 'APPROVE', '--data', '[1]'], /^ats: --data must be a JSON object/, /^usage: ats workflow signal/m);
    await usage(['show', approved, 'extra'], /^ats: unexpected argument "extra"/, /^usage: ats workflow show ID/m);
    await usage(['history', approved, '--nope'], /^ats: Unknown option '--nope'/, /^usage: ats workflow history ID/m);

    const help = await ats(['workflow', '--help']);
    assert.equal(help.code, 0);
    for (const sub of ['start', 'ls', 'show', 'history', 'signal', 'cancel', 'delete', 'verify']) assert.match(help.stdout, new RegExp(`^usage: ats workflow ${sub} `, 'm'));
    const subHelp = await ats(['workflow', 'signal', '--help']);
    assert.deepEqual([subHelp.code, subHelp.stdout.split('\n')[0]], [0, 'usage: ats workflow signal ID TYPE [--data JSON] [--idempotency-key K] [--json]']);
    assert.match((await ats(['--help'])).stdout, /^ {2}ats workflow start\|ls\|show\|history\|signal\|cancel\|delete\|verify \.\.\. {2}workflow instances/m);

    const unknown = await ats(['workflow', 'start', 'cli.nope']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^ATS_ERR_UNKNOWN_WORKFLOW: /);
    for (const sub of ['show', 'history', 'verify', 'cancel']) {
      const missing = await ats(['workflow', sub, '01ARZ3NDEKTSV4RRFFQ69G5FAV']);
      assert.equal(missing.code, 1, sub);
      assert.match(missing.stderr, /^ATS_ERR_WORKFLOW_NOT_FOUND: /, sub);
    }
    const badId = await ats(['workflow', 'show', 'not-an-id']);
    assert.equal(badId.code, 1);
    assert.match(badId.stderr, /^ATS_ERR_VALIDATION: /);
  });
});

describe('workflow printing', () => {
  const at = '2030-01-01T12:00:00.000Z';
  const ev = (seq: number, type: WorkflowEvent['type'], data: unknown, status: WorkflowEvent['status'] = 'active'): WorkflowEvent =>
    ({ seq, type, at, data, status, value: null });

  test('a state value on one line: names joined by dots, parallel regions in braces', () => {
    assert.equal(stateText('review'), 'review');
    assert.equal(stateText({ fulfilling: { shipping: 'booking' } }), 'fulfilling.shipping.booking');
    assert.equal(stateText({ fulfilling: { stock: 'reserved', shipping: { booking: 'calling' } } }), 'fulfilling.{stock.reserved, shipping.booking.calling}');
    assert.equal(stateText(null), 'null');
  });

  test('history: a dead child with its error, a timer, a migration, a message from another instance, a cancel without a reason; a job of unknown type by its id alone', () => {
    const types = new Map([['J1', 'payment.charge']]);
    const lines = workflowHistory([
      ev(1, 'START', { input: null, jobIds: ['J1'] }),
      ev(2, 'CHILD', { type: 'CHILD', jobId: 'J1', outcome: { state: 'dead', error: { message: 'card declined', attempt: 3 } }, jobIds: ['J2'] }),
      ev(3, 'TIMER', { type: 'TIMER', timerId: 'xstate.after.1000.order.waiting', jobIds: [] }),
      ev(4, 'MIGRATE', { type: 'MIGRATE', from: 1, to: 2, jobIds: [] }),
      ev(5, 'MESSAGE', { type: 'MESSAGE', from: 'W9', messageId: 'W9:3:0', event: { type: 'REPORT', value: 4 }, jobIds: [] }),
      ev(6, 'CANCEL', { type: 'CANCEL', jobIds: [] }, 'cancelled'),
    ], types);
    assert.deepEqual(lines.map((l) => l.split(/ {2,}/).slice(2).join(' | ')), [
      'EVENT | STATUS | WHAT',
      'START | active | input null | -> started payment.charge J1',
      'CHILD | active | payment.charge J1 dead: card declined | -> started J2',
      'TIMER | active | xstate.after.1000.order.waiting fired',
      'MIGRATE | active | definition 1 -> 2',
      'MESSAGE | active | REPORT {"value":4} from workflow W9',
      'CANCEL | cancelled | no reason given',
    ]);
    // Long values are shortened.
    const [, start] = workflowHistory([ev(1, 'START', { input: { text: 'x'.repeat(500) }, jobIds: [] })], new Map());
    assert.ok(start!.endsWith('...'), start);
  });

  test('show: an instance in error shows the error\'s message, no output', () => {
    const text = workflowDetail({
      id: 'W1', name: 'order.fulfil', definitionVersion: 2, version: 3, status: 'error', value: 'charging', context: {}, input: null,
      output: null, error: { message: 'card declined' }, children: [], timers: [], accepts: [], idempotencyKey: null, createdAt: at, updatedAt: at,
    });
    assert.match(text, /^error {10}card declined$/m);
    assert.match(text, /^name {11}order\.fulfil \(definition 2\)$/m);
    assert.doesNotMatch(text, /^output/m);
    // An error without a message is shown as its JSON, whole (README: `error` of `ats workflow show` whole).
    const code = 'E'.repeat(1500);
    const noMessage = workflowDetail({
      id: 'W1', name: 'order.fulfil', definitionVersion: 2, version: 3, status: 'error', value: 'charging', context: {}, input: null,
      output: null, error: { code }, children: [], timers: [], accepts: [], idempotencyKey: null, createdAt: at, updatedAt: at,
    });
    assert.match(noMessage, new RegExp(`^error {10}\\{"code":"${code}"\\}$`, 'm'));
  });

  test('a child\'s error and a cancel reason stay on their line: newlines and control characters escaped, a long error cut in the history', () => {
    const hostile = 'card declined\n\x1b[2Jgateway said: \u009b31mno';
    const escaped = String.raw`card declined\n\u001b[2Jgateway said: \u009b31mno`;
    const lines = workflowHistory([
      ev(1, 'CHILD', { type: 'CHILD', jobId: 'J1', outcome: { state: 'dead', error: { message: hostile } }, jobIds: [] }),
      ev(2, 'CHILD', { type: 'CHILD', jobId: 'J2', outcome: { state: 'dead', error: { message: 'm'.repeat(8000) } }, jobIds: [] }),
      ev(3, 'CANCEL', { type: 'CANCEL', reason: 'ops\nsaid so\x07', jobIds: [] }, 'cancelled'),
    ], new Map());
    assert.equal(lines.length, 4, lines.join('\n'));
    assert.ok(lines[1]!.endsWith(`J1 dead: ${escaped}`), lines[1]);
    assert.ok(lines[2]!.length < 600, `cut: ${lines[2]!.length}`);
    assert.ok(lines[3]!.endsWith(String.raw`reason: ops\nsaid so\u0007`), lines[3]);
    const text = workflowDetail({
      id: 'W1', name: 'order.fulfil', definitionVersion: 2, version: 3, status: 'error', value: 'charging', context: {}, input: null,
      output: null, error: { message: hostile }, children: [], timers: [], accepts: [], idempotencyKey: null, createdAt: at, updatedAt: at,
    });
    assert.match(text, new RegExp(`^error {10}${escaped.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  });

  test('verify: ok with the count, or the problem', () => {
    assert.equal(verifyText({ ok: true, events: 7 }), 'ok: 7 events replayed');
    assert.equal(verifyText({ ok: false, events: 2, problem: 'state value differs' }), 'not ok: state value differs (2 events replayed)');
    // A replay's problem can be the message a definition's own code threw: kept to its line, no terminal sequence run.
    assert.equal(verifyText({ ok: false, events: 3, problem: 'guard threw: a\nb\u001b[2J' }), 'not ok: guard threw: a\\nb\\u001b[2J (3 events replayed)');
  });

  test('signal: TYPE and the --data object make the event; --data must be an object without type', () => {
    assert.deepEqual(signalFrom('APPROVE', {}), { type: 'APPROVE' });
    assert.deepEqual(signalFrom('APPROVE', { data: '{"by":"ann","n":1}' }), { type: 'APPROVE', by: 'ann', n: 1 });
    for (const bad of ['1', 'null', '[]', '"x"']) assert.throws(() => signalFrom('A', { data: bad }), (e: unknown) => e instanceof UsageError && /--data must be a JSON object/.test(e.message));
    assert.throws(() => signalFrom('A', { data: '{"type":"B"}' }), (e: unknown) => e instanceof UsageError && /must not hold "type"/.test(e.message));
  });
});
