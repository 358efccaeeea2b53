/**
 * Command lines against a real scheduler (composed in this process, SQLite)
 * and the CLI as child processes: a full page's "more:" hint keeps the
 * filters; negative values after their option; the job policy and a limit's
 * rate held to the API's bounds (exit 2, not the server's refusal); an empty
 * value refused (exit 2), not read as the option left out; `--help` of a command
 * with arguments; `ats` alone; `--run-at` refusing a date that does not exist
 * or has no offset; a server that accepts connections and never answers is
 * told as unreachable by `watch`, not polled as one without a stream route.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setup } from 'xstate';
import { type AtsClient } from '../client/index.js';
import { HandlerRegistry, registerDemoHandlers } from '../engine/handlers.js';
import { runAts, startCliServer, type CliRun } from '../tests/helpers/cli.js';
import { isoTime, parse, UsageError } from './commands/args.js';
import { lsSpec } from './commands/ls.js';
import { moreHint } from './commands/output.js';
import { requestFrom, submitSpec } from './commands/submit.js';

let server: Awaited<ReturnType<typeof startCliServer>> | undefined;
let url = '';
let client: AtsClient;

/** `ats ARGS...` against the test server (`extraEnv` on top), killed after `killAfterMs`. */
const ats = (args: string[], extraEnv: Record<string, string> = {}, killAfterMs = 60_000): Promise<CliRun> => runAts(url, args, extraEnv, killAfterMs);

const waiting = (id: string) => setup({}).createMachine({ id, initial: 'waiting', states: { waiting: { on: { GO: 'done' } }, done: { type: 'final' } } });

before(async () => {
  const registry = registerDemoHandlers(new HandlerRegistry());
  registry.workflow('rev.a', waiting('rev-a'));
  registry.workflow('rev.b', waiting('rev-b'));
  server = await startCliServer(registry);
  ({ url, client } = server);
});

after(() => server?.stop());

const later = new Date(Date.now() + 86_400_000).toISOString();

/** Runs `args` (a first page), then the command its `more:` hint names: that page must not list `foreign` (`what`), which the filters leave out. */
async function followingTheHint(args: string[], foreign: string, what: string): Promise<void> {
  const first = await ats(args);
  assert.equal(first.code, 0, first.stderr);
  const hint = /^more: ats (.*)$/m.exec(first.stderr)?.[1];
  assert.ok(hint, first.stderr);
  const next = await ats(hint.split(' ').map((a) => a.replace(/^(--[a-z-]+=)'(.*)'$/, '$1$2')));
  assert.equal(next.code, 0, next.stderr);
  assert.ok(!next.stdout.includes(foreign), `following the hint "${hint}" lists ${what}:\n${next.stdout}`);
}

// Each test spawns `ats` processes (a tsx start each): on a loaded machine a test takes 30 s or more.
describe('command lines', { timeout: 360_000 }, () => {
  test('the more: hint writes --flag=value: a name starting with - is read as the value', () => {
    const hint = moreHint('ats ls', [['cursor', 'C1'], ['limit', 1], ['queue', '-x'], ['type', 'a b']]);
    assert.equal(hint, "more: ats ls --cursor=C1 --limit=1 --queue=-x --type='a b'");
    const { values } = parse(['--cursor=C1', '--limit=1', '--queue=-x'], lsSpec.options, [0, 0]);
    assert.deepEqual([values.cursor, values.limit, values.queue], ['C1', '1', '-x']);
  });

  test('ats ls: the "more:" hint keeps the filters (the cursor holds only the last id)', async () => {
    await client.submit({ type: 'demo.echo', payload: null, runAt: later });
    const b = await client.submit({ type: 'demo.fail', payload: null, runAt: later });
    await client.submit({ type: 'demo.echo', payload: null, runAt: later });
    await followingTheHint(['ls', '--type', 'demo.echo', '--limit', '1'], b.id, 'a demo.fail job');
  });

  test('ats workflow ls: the "more:" hint keeps --name / --status', async () => {
    await client.startWorkflow({ name: 'rev.a' });
    const b = await client.startWorkflow({ name: 'rev.b' });
    await client.startWorkflow({ name: 'rev.a' });
    await followingTheHint(['workflow', 'ls', '--name', 'rev.a', '--limit', '1'], b.id, 'a rev.b instance');
  });

  test('submit --priority -5 (a documented negative value) is taken, as --priority=-5 is', async () => {
    const r = await ats(['submit', 'demo.echo', '--run-at', later, '--priority', '-5', '--json']);
    assert.equal(r.code, 0, r.stderr.split('\n').slice(0, 3).join('\n'));
  });

  test('submit --max-attempts 500 / --priority=5000 / --timeout-ms 100000000: beyond the API\'s bounds is a usage error (exit 2), not the server\'s refusal (exit 1)', async () => {
    for (const flag of ['--max-attempts=500', '--priority=5000', '--timeout-ms=100000000']) {
      const r = await ats(['submit', 'demo.echo', '--run-at', later, flag]);
      assert.equal(r.code, 2, `${flag}: exit ${r.code}: ${r.stderr.trim()}`);
    }
  });

  test('limits set --rate 1/2d / 0/1s / 2000000/1s, --concurrency -1: beyond the API\'s bounds is a usage error (exit 2), not the server\'s refusal (exit 1)', async () => {
    for (const [flags, why] of [
      [['--rate', '1/2d'], /--rate: DURATION must be at most 1d, got "1\/2d"/], [['--rate=0/1s'], /--rate: MAX must be from 1/],
      [['--rate', '2000000/1s'], /--rate: MAX must be from 1 to 1000000/], [['--concurrency=-1'], /--concurrency must be an integer from 0 to 100000/],
    ] as const) {
      const r = await ats(['limits', 'set', 'email', ...flags]);
      assert.equal(r.code, 2, `${flags.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
      assert.match(r.stderr, why);
      assert.match(r.stderr, /usage: ats limits set KEY/);
    }
    assert.deepEqual(await client.listLimits(), [], 'nothing was set');
  });

  test('an option given an empty value (--job=, --type \'\', --limit=) is a usage error (exit 2), not the option left out; cancel --reason \'\' is taken', async () => {
    for (const args of [['watch', '--job='], ['ls', '--type', ''], ['ls', '--limit='], ['submit', 'demo.echo', '--queue=', '--run-at', later]]) {
      const r = await ats(args, {}, 20_000);
      assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
      assert.match(r.stderr, /^ats: --(job|type|limit|queue) needs a value, got an empty one/, args.join(' '));
    }
    const job = await client.submit({ type: 'demo.echo', payload: null, runAt: later });
    const r = await ats(['cancel', job.id, '--reason', '']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await client.get(job.id)).state, 'cancelled');
  });

  test('ats keys revoke --help prints the usage, exit 0', async () => {
    const r = await ats(['keys', 'revoke', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /usage: ats keys revoke ID/);
  });

  test('ats with no command: the usage goes to stderr when it exits 2', async () => {
    const r = await ats([]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '', 'usage printed on stdout for an exit-2 wrong command line');
    assert.match(r.stderr, /usage/);
  });

  test('a server that accepts connections and never answers: watch says it cannot be reached, and does not poll', { timeout: 60_000 }, async () => {
    const sockets = new Set<net.Socket>();
    const hung = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    try {
      const r = await ats(['watch', '--url', `http://127.0.0.1:${(hung.address() as net.AddressInfo).port}`], {}, 40_000);
      assert.equal(r.code, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /has no stream route|polling/, r.stderr);
      assert.match(r.stderr, /cannot reach the ats server at http:\/\/127\.0\.0\.1:\d+ \(timed out\)/);
    } finally {
      for (const s of sockets) s.destroy();
      hung.close();
    }
  });
});

describe('--run-at and the job policy', () => {
  test('an impossible date (Feb 31) is a usage error, not silently another day', () => {
    assert.throws(() => isoTime({ t: '2030-02-31T00:00:00Z' }, 't'), (e) => e instanceof UsageError, `got ${(() => { try { return isoTime({ t: '2030-02-31T00:00:00Z' }, 't'); } catch { return 'throw'; } })()}`);
  });
  test('a date-time without an offset (which the API refuses) is a usage error, not read in the local time zone', () => {
    assert.throws(() => isoTime({ t: '2030-01-01T12:00:00' }, 't'), (e) => e instanceof UsageError);
  });
  test('requestFrom: --max-attempts beyond the server\'s 100 is a usage error; the bounds themselves are taken', () => {
    const { values } = parse(['x', '--max-attempts', '500'], submitSpec.options, [1, 1]);
    assert.throws(() => requestFrom('x', values), (e) => e instanceof UsageError);
    const edge = parse(['x', '--max-attempts', '100', '--priority', '-1000', '--timeout-ms', '86400000'], submitSpec.options, [1, 1]).values;
    assert.deepEqual(requestFrom('x', edge), { type: 'x', payload: null, maxAttempts: 100, timeoutMs: 86_400_000, priority: -1000 });
  });
  test('a --run-at whose instant the API does not take (past 9999-12-31T23:59:59.999Z, or before 1970) is a usage error, not the server\'s 400', () => {
    // An offset moves the last day of 9999 past it: the instant would be written +010000-..., which no date-time is.
    for (const bad of ['9999-12-31T23:59:59.999-01:00', '1969-12-31T23:59:59Z', '1000-01-01T00:00:00Z']) {
      assert.throws(() => isoTime({ t: bad }, 't'), (e) => e instanceof UsageError && /9999-12-31T23:59:59\.999Z/.test(e.message), bad);
    }
    assert.equal(isoTime({ t: '9999-12-31T23:59:59.999Z' }, 't'), '9999-12-31T23:59:59.999Z');
    assert.equal(isoTime({ t: '1970-01-01T01:00:00+01:00' }, 't'), '1970-01-01T00:00:00.000Z');
  });
  test('date-times with Z or an offset are taken as the instant they name, in each form the API takes', () => {
    assert.equal(isoTime({ t: '2030-01-01T12:00:00+02:00' }, 't'), '2030-01-01T10:00:00.000Z');
    assert.equal(isoTime({ t: '2030-01-01T12:00:00+0200' }, 't'), '2030-01-01T10:00:00.000Z');
    assert.equal(isoTime({ t: '2030-01-01T12:00:00-02' }, 't'), '2030-01-01T14:00:00.000Z');
    assert.equal(isoTime({ t: '2030-01-01t12:00:00.1234567890z' }, 't'), '2030-01-01T12:00:00.123Z');
    assert.equal(isoTime({ t: '2030-02-28T23:59:59.5z' }, 't'), '2030-02-28T23:59:59.500Z');
    assert.equal(isoTime({ t: '2032-02-29T00:00:00Z' }, 't'), '2032-02-29T00:00:00.000Z');
    for (const bad of ['2031-02-29T00:00:00Z', '2030-01-01T24:00:00Z', '2030-01-01 12:00:00Z', '2030-01-01', 'tomorrow']) {
      assert.throws(() => isoTime({ t: bad }, 't'), (e) => e instanceof UsageError, bad);
    }
  });
});
