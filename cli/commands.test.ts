/** The client commands' pure parts: argument readers, the request body, the progress line, the output. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { int, isoTime, json, oneOf, parse, UsageError } from './commands/args.js';
import { AttemptTracker, stateLine, table } from './commands/output.js';
import { Progress } from './commands/progress.js';
import { serverUrl } from './commands/run.js';
import { requestFrom, submitSpec } from './commands/submit.js';

const isUsage = (re: RegExp) => (e: unknown) => e instanceof UsageError && re.test(e.message);

describe('argument parsing', () => {
  test('unknown options, missing values and extra arguments are usage errors', () => {
    assert.throws(() => parse(['--nope'], {}, [0, 0]), isUsage(/Unknown option '--nope'/));
    assert.throws(() => parse(['--limit'], { limit: { type: 'string' } }, [0, 0]), isUsage(/argument missing/));
    assert.throws(() => parse(['a', 'b'], {}, [1, 1]), isUsage(/unexpected argument "b"/));
    assert.throws(() => parse([], {}, [1, 1]), isUsage(/missing argument/));
    const { values, positionals } = parse(['x', '--limit=5'], { limit: { type: 'string' } }, [1, 1]);
    assert.deepEqual({ ...values }, { limit: '5' });
    assert.deepEqual(positionals, ['x']);
  });

  test('typed readers reject bad values and name the option', () => {
    assert.equal(int({ n: '7' }, 'n', 1, 10), 7);
    assert.equal(int({}, 'n', 1, 10), undefined);
    for (const bad of ['0', '11', '1.5', 'x', '']) assert.throws(() => int({ n: bad }, 'n', 1, 10), isUsage(/--n must be an integer from 1 to 10/));
    assert.deepEqual(json({ p: '{"x":[1]}' }, 'p'), { x: [1] });
    assert.throws(() => json({ p: '{x:1}' }, 'p'), isUsage(/--p is not valid JSON/));
    assert.equal(isoTime({ t: '2030-01-01T12:00:00+02:00' }, 't'), '2030-01-01T10:00:00.000Z');
    assert.throws(() => isoTime({ t: 'tomorrow' }, 't'), isUsage(/ISO 8601/));
    assert.deepEqual(oneOf({ s: 'done,dead' }, 's', ['done', 'dead'], { many: true }), ['done', 'dead']);
    assert.throws(() => oneOf({ s: 'done,dead' }, 's', ['done', 'dead']), isUsage(/needs one of/));
    assert.throws(() => oneOf({ s: 'later' }, 's', ['done']), isUsage(/unknown value "later"/));
  });

  test('the submit body holds only what was given', () => {
    const { values } = parse(['demo.echo', '--payload', '{"x":1}', '--max-attempts', '2', '--queue', 'q1'], submitSpec.options, [1, 1]);
    assert.deepEqual(requestFrom('demo.echo', values), { type: 'demo.echo', payload: { x: 1 }, queue: 'q1', maxAttempts: 2 });
    assert.deepEqual(requestFrom('demo.echo', {}), { type: 'demo.echo', payload: null });
  });

  test('the server URL: --url, then ATS_URL, then the default; only http(s)', () => {
    assert.equal(serverUrl({ url: 'http://h:1/' }, { ATS_URL: 'http://other:2' }), 'http://h:1');
    assert.equal(serverUrl({}, { ATS_URL: 'http://other:2' }), 'http://other:2');
    assert.equal(serverUrl({}, {}), 'http://localhost:3000');
    assert.throws(() => serverUrl({ url: 'localhost:3000' }, {}), isUsage(/must be http/));
    assert.throws(() => serverUrl({ url: '::' }, {}), isUsage(/not a URL/));
  });
});

describe('progress', () => {
  const counts = (finished: number) => ({ submitted: 100, done: finished, dead: 0, cancelled: 0 });

  test('not a TTY: one plain line per 10% reached, never a carriage return', () => {
    let written = '';
    const p = new Progress(100, { write: (t: string) => (written += t), isTTY: false }, () => 0);
    for (let i = 0; i <= 100; i++) p.update(counts(i));
    p.finish(counts(100));
    const lines = written.trimEnd().split('\n');
    assert.equal(lines.length, 11);
    assert.match(lines[5]!, /50\/100 50%/);
    assert.ok(!written.includes('\r'));
  });

  test('a TTY: redraws one line in place, at most every 100 ms, and ends it on finish', () => {
    let written = '';
    let now = 0;
    const p = new Progress(10, { write: (t: string) => (written += t), isTTY: true, columns: 200 }, () => now);
    p.update(counts(1));
    p.update(counts(2)); // within 100 ms of the last draw: skipped
    now = 150;
    p.update(counts(3));
    p.finish({ submitted: 10, done: 9, dead: 1, cancelled: 0 });
    assert.equal(written.split('\r').length - 1, 3);
    assert.ok(!written.includes('2/10'));
    assert.match(written, /10\/10 100%  done 9  dead 1/);
    assert.ok(written.endsWith('\n'));
  });
});

describe('output', () => {
  test('the attempt carries over events that do not name it', () => {
    const t = new AttemptTracker(3);
    const ev = (type: string, to: string, data: unknown) => ({ seq: 1, type, from: null, to, at: '2030-01-01T00:00:00.000Z', data });
    assert.equal(t.see(ev('SUBMITTED', 'pending', {})), 'attempt 0/3');
    assert.equal(t.see(ev('STARTED', 'running', { attempt: 1 })), 'attempt 1/3');
    const line = stateLine(ev('FAILED', 'retrying', { attempt: 1, error: { message: 'boom' } }), t.see(ev('RETRY_DUE', 'pending', {})));
    assert.equal(line, '2030-01-01T00:00:00.000Z  retrying   attempt 1/3   FAILED  boom');
  });

  test('tables align columns', () => {
    assert.deepEqual(table(['A', 'BB'], [['xxx', 'y'], ['z', 'w']]), ['A    BB', 'xxx  y', 'z    w']);
  });
});
