/** The client commands' pure parts: argument readers, the request body, the progress line, the output. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cancelSpec } from './commands/actions.js';
import { int, isoTime, json, oneOf, parse, UsageError } from './commands/args.js';
import { ProgressGate } from './commands/follow.js';
import { AttemptTracker, insightsText, jobDetail, limitDetail, limitLine, limitTable, oneLine, progressLine, rateText, stateLine, table } from './commands/output.js';
import { limitSpecFrom, limitsSetSpec, rateFrom } from './commands/limits.js';
import { durationText, parseDurationMs } from './duration.js';
import { Progress } from './commands/progress.js';
import { serverUrl } from './commands/run.js';
import { requestFrom, submitSpec } from './commands/submit.js';

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
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

  test('an empty value is a usage error naming the option, not the option left out; an option marked emptyOk takes one', () => {
    const options = { limit: { type: 'string' }, job: { type: 'string' }, json: { type: 'boolean' } } as const;
    for (const args of [['--limit='], ['--limit', ''], ['--job', ' '], ['--json', '--job=']]) {
      assert.throws(() => parse(args, options, [0, 0]), isUsage(/^--(limit|job) needs a value, got an empty one/), JSON.stringify(args));
    }
    assert.deepEqual({ ...parse(['x', '--reason='], cancelSpec.options, [1, 1]).values }, { reason: '' }, 'a free-text reason may be empty');
    assert.deepEqual({ ...parse(['--mysql-url', ''], { 'mysql-url': { type: 'string', emptyOk: true } }, [0, 0]).values }, { 'mysql-url': '' });
  });

  test('typed readers reject bad values and name the option', () => {
    assert.equal(int({ n: '7' }, 'n', 1, 10), 7);
    assert.equal(int({}, 'n', 1, 10), undefined);
    for (const bad of ['0', '11', '1.5', 'x', '']) assert.throws(() => int({ n: bad }, 'n', 1, 10), isUsage(/--n must be an integer from 1 to 10/));
    assert.deepEqual(json({ p: '{"x":[1]}' }, 'p'), { x: [1] });
    assert.throws(() => json({ p: '{x:1}' }, 'p'), isUsage(/--p is not valid JSON/));
    // A long value is quoted cut, never through the middle of a character (an emoji is two UTF-16 units).
    assert.throws(() => json({ p: `{${'x'.repeat(78)}\u{1F600}}` }, 'p'), (e: unknown) =>
      e instanceof Error && e.message.endsWith(`: {${'x'.repeat(78)}...`) && !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(e.message));
    // JSON.parse would send 9007199254740992 on: the id the handler got would not be the one typed.
    assert.throws(() => json({ p: '{"id":9007199254740993}' }, 'p'), isUsage(/--p: the integer 9007199254740993 \(at position 6, as JSON.parse counts\) .*Send it as a string/));
    assert.deepEqual(json({ p: '{"id":"9007199254740993","n":9007199254740991}' }, 'p'), { id: '9007199254740993', n: 9007199254740991 });
    // JSON.parse reads 1e400 as Infinity, which JSON.stringify would send as null: the server refuses 1e400 itself.
    for (const text of ['1e400', '{"a":[1,-1e400]}', '[{"b":{"c":1.8e308}}]']) {
      assert.throws(() => json({ p: text }, 'p'), isUsage(/^--p holds a number out of range: JSON\.parse reads it as -?Infinity/), text);
    }
    assert.deepEqual(json({ p: '[1e308,-1e-400]' }, 'p'), [1e308, -0]);
    assert.equal(isoTime({ t: '2030-01-01T12:00:00+02:00' }, 't'), '2030-01-01T10:00:00.000Z');
    assert.throws(() => isoTime({ t: 'tomorrow' }, 't'), isUsage(/--t must be a date-time with Z or an offset/));
    assert.deepEqual(oneOf({ s: 'done,dead' }, 's', ['done', 'dead'], { many: true }), ['done', 'dead']);
    assert.throws(() => oneOf({ s: 'done,dead' }, 's', ['done', 'dead']), isUsage(/needs one of/));
    assert.throws(() => oneOf({ s: 'later' }, 's', ['done']), isUsage(/unknown value "later"/));
  });

  test('the submit body holds only what was given', () => {
    const { values } = parse(['demo.echo', '--payload', '{"x":1}', '--max-attempts', '2', '--queue', 'q1'], submitSpec.options, [1, 1]);
    assert.deepEqual(requestFrom('demo.echo', values), { type: 'demo.echo', payload: { x: 1 }, queue: 'q1', maxAttempts: 2 });
    assert.deepEqual(requestFrom('demo.echo', {}), { type: 'demo.echo', payload: null });
  });

  test('--concurrency-key goes into the submit body as concurrencyKey', () => {
    const { values } = parse(['demo.echo', '--concurrency-key', 'tenant:42'], submitSpec.options, [1, 1]);
    assert.deepEqual(requestFrom('demo.echo', values), { type: 'demo.echo', payload: null, concurrencyKey: 'tenant:42' });
  });

  test('limits set: --concurrency and --rate MAX/DURATION make the whole limit; what is not given is null; neither is a usage error', () => {
    const spec = (...args: string[]) => limitSpecFrom(parse(['k', ...args], limitsSetSpec.options, [1, 1]).values);
    assert.deepEqual(spec('--concurrency', '5', '--rate', '100/1m'), { concurrency: 5, rate: { max: 100, intervalMs: 60_000 } });
    assert.deepEqual(spec('--rate', '5/s'), { concurrency: null, rate: { max: 5, intervalMs: 1000 } });
    assert.deepEqual(spec('--concurrency', '1'), { concurrency: 1, rate: null });
    assert.throws(() => spec(), isUsage(/--concurrency or --rate is required/));
    assert.deepEqual(spec('--concurrency', '0'), { concurrency: 0, rate: null }, 'a pause');
    assert.throws(() => spec('--concurrency=-1'), isUsage(/--concurrency must be an integer from 0 to 100000/));
    assert.throws(() => spec('--concurrency', '100001'), isUsage(/--concurrency/));
  });

  test('--rate: MAX/DURATION with the settings\' durations; a missing number means one of the unit', () => {
    assert.deepEqual(rateFrom('100/1m'), { max: 100, intervalMs: 60_000 });
    assert.deepEqual(rateFrom('10/500ms'), { max: 10, intervalMs: 500 });
    assert.deepEqual(rateFrom('1/1h'), { max: 1, intervalMs: 3_600_000 });
    assert.deepEqual(rateFrom('3/d'), { max: 3, intervalMs: 86_400_000 });
    assert.deepEqual(rateFrom('7/250'), { max: 7, intervalMs: 250 });
    assert.deepEqual(rateFrom(' 2 / 1s '), { max: 2, intervalMs: 1000 });
    for (const bad of ['100', '/1s', '100/', '100/1y', 'x/1s', '1.5/1s', '100/0ms', '100/-1s', '100/1s/2', '']) {
      assert.throws(() => rateFrom(bad), isUsage(/--rate must be MAX\/DURATION/), bad);
    }
  });

  test('--rate of a form it does not read names forms it takes, and its bound: no 7d, which is then refused', () => {
    assert.throws(() => rateFrom('1/1.5s'), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.doesNotMatch(e.message, /7d/);
      assert.match(e.message, /at most 1d/);
      for (const form of ['1d', '12h', '30m', '60s', '500ms']) assert.doesNotThrow(() => rateFrom(`1/${form}`), form);
      return true;
    });
  });

  test('--rate beyond the API\'s bounds (MAX 1 to 1000000, DURATION at most 1d) is a usage error, not a request the server refuses', () => {
    assert.deepEqual(rateFrom('1000000/1d'), { max: 1_000_000, intervalMs: 86_400_000 });
    assert.deepEqual(rateFrom('1/86400000'), { max: 1, intervalMs: 86_400_000 });
    for (const bad of ['1/2d', '1/25h', '1/86400001', '1/1441m']) assert.throws(() => rateFrom(bad), isUsage(/--rate: DURATION must be at most 1d/), bad);
    for (const bad of ['0/1s', '1000001/1s', '2000000/1m']) assert.throws(() => rateFrom(bad), isUsage(/--rate: MAX must be from 1 to 1000000/), bad);
  });

  test('durations: what the settings read, and the shortest text of a number of ms', () => {
    assert.equal(parseDurationMs('7d'), 7 * 86_400_000);
    assert.equal(parseDurationMs('500ms'), 500);
    assert.equal(parseDurationMs('42'), 42);
    assert.ok(Number.isNaN(parseDurationMs('1y')));
    assert.ok(Number.isNaN(parseDurationMs('-1s')));
    for (const [ms, text] of [[60_000, '1m'], [1000, '1s'], [1500, '1500ms'], [90_000, '90s'], [86_400_000, '1d'], [7_200_000, '2h'], [1, '1ms']] as const) {
      assert.equal(durationText(ms), text);
      assert.equal(parseDurationMs(text), ms);
    }
  });

  test('the server URL: --url, then ATS_URL, then the default; only http(s)', () => {
    assert.equal(serverUrl({ url: 'http://h:1/' }, { ATS_URL: 'http://other:2' }), 'http://h:1');
    assert.equal(serverUrl({}, { ATS_URL: 'http://other:2' }), 'http://other:2');
    assert.equal(serverUrl({}, {}), 'http://localhost:3000');
    assert.throws(() => serverUrl({ url: 'localhost:3000' }, {}), isUsage(/must be http/));
    // fetch sends no credentials in a URL; the password is never echoed.
    assert.throws(() => serverUrl({ url: 'http://ann:s3cret@h:1' }, {}), (e: unknown) => isUsage(/must not hold a user or password \(http:\/\/h:1 with credentials\)/)(e) && !(e as Error).message.includes('s3cret'));
    assert.throws(() => serverUrl({}, { ATS_URL: 'ftp://ann:s3cret@h:1' }), (e: unknown) => !(e as Error).message.includes('s3cret'));
    assert.throws(() => serverUrl({ url: '::' }, {}), isUsage(/not a URL/));
  });

  test('the server URL without the spaces around it (a URL read from a file ends in a newline); ATS_URL of only spaces is unset', () => {
    // new URL() drops them, fetch does not: `http://h:1 /v1/jobs` is no URL, reported as an unreachable server.
    assert.equal(serverUrl({}, { ATS_URL: 'http://other:2 ' }), 'http://other:2');
    assert.equal(serverUrl({}, { ATS_URL: ' http://other:2/\n' }), 'http://other:2');
    assert.equal(serverUrl({ url: ' http://h:1 ' }, {}), 'http://h:1');
    assert.equal(serverUrl({}, { ATS_URL: '  ' }), 'http://localhost:3000');
    assert.throws(() => serverUrl({ url: '  ' }, {}), isUsage(/not a URL/));
  });

  test('the server URL with a query or a fragment is a usage error: the API\'s paths would be sent after it (GET /?x=1/v1/jobs)', () => {
    assert.throws(() => serverUrl({ url: 'http://h:1/?x=1' }, {}), isUsage(/must not hold a query or a fragment \(\?x=1\)/));
    assert.throws(() => serverUrl({}, { ATS_URL: 'http://h:1/ats#top' }), isUsage(/must not hold a query or a fragment \(#top\)/));
    assert.throws(() => serverUrl({ url: 'http://h:1?' }, {}), isUsage(/must not hold a query or a fragment/));
    // A path is the server's prefix (behind a proxy): kept.
    assert.equal(serverUrl({ url: 'http://h:1/ats/' }, {}), 'http://h:1/ats');
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

  test('a handler\'s error is printed on its line: its newlines and control characters escaped (no terminal sequence runs), a long one cut on the stream\'s lines', () => {
    const at = '2030-01-01T00:00:00.000Z';
    const ev = (type: string, to: string, data: unknown, seq = 1) => ({ seq, type, from: 'running', to, at, data });
    const hostile = 'Converting circular structure to JSON\n    --> starting at object\x1b[2J\x1b]0;owned\x07 \u009b31m\r\tend';
    const escaped = String.raw`Converting circular structure to JSON\n    --> starting at object\u001b[2J\u001b]0;owned\u0007 \u009b31m\r\tend`;
    const failed = ev('FAILED', 'retrying', { attempt: 1, error: { message: hostile } });
    assert.equal(stateLine(failed, 'attempt 1/3'), `${at}  retrying   attempt 1/3   FAILED  ${escaped}`);
    const long = stateLine(ev('FAILED', 'dead', { attempt: 1, error: { message: 'm'.repeat(8000) } }), 'attempt 1/3');
    assert.ok(long.length < 600 && long.endsWith('…'), `cut: ${long.length}`);
    // The cut is of what is printed: a message of control characters is no longer than one of letters, and no
    // escape or character outside the BMP is split.
    const controls = stateLine(ev('FAILED', 'dead', { attempt: 1, error: { message: '\x1b'.repeat(8000) } }), 'attempt 1/3');
    assert.ok(controls.length < 600 && /(\\u001b)+…$/.test(controls), `cut: ${controls.length}`);
    assert.equal(oneLine('ab😀', 3), 'ab…');
    assert.equal(oneLine('a\nb', 2), 'a…');
    assert.equal(oneLine('a\nb', 3), String.raw`a\n…`);
    assert.equal(oneLine('a\nb', 4), String.raw`a\nb`);
    // A right-to-left override (or an isolate) would show the rest of the line reversed: escaped; the letters of any script are not.
    assert.equal(oneLine('paid \u202egnp.exe\u2066x\u2069 שלום'), String.raw`paid \u202egnp.exe\u2066x\u2069 שלום`);
    const job = {
      id: 'j1', type: 'orders.sync', queue: 'default', state: 'dead', attempt: 2, maxAttempts: 2, payload: {}, result: '\u009b31m',
      lastError: { message: hostile, retryable: true, attempt: 2 }, runAt: at, createdAt: at, updatedAt: at, cancelReason: 'a\nb',
      events: [
        { seq: 1, type: 'SUBMITTED', from: null, to: 'pending', at, data: {} },
        { seq: 2, type: 'STARTED', from: 'pending', to: 'running', at, data: { attempt: 1 } },
        { ...ev('FAILED', 'retrying', { attempt: 1, error: { message: 'first: boom' } }), seq: 3 },
        { seq: 4, type: 'RETRY_DUE', from: 'retrying', to: 'pending', at, data: {} },
        { seq: 5, type: 'STARTED', from: 'pending', to: 'running', at, data: { attempt: 2 } },
        { ...failed, seq: 6, to: 'dead', data: { attempt: 2, error: { message: hostile } } },
      ],
    };
    const text = jobDetail(job);
    assert.doesNotMatch(text, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'no control character but the newlines between lines');
    assert.match(text, new RegExp(`^lastError {4}${escape(escaped)} \\(attempt 2\\)$`, 'm'));
    assert.match(text, /^cancelReason a\\nb$/m);
    assert.match(text, /^result {7}"\\u009b31m"$/m);
    // Each attempt's error is in the history, not only the last one.
    assert.match(text, /^ {2}3 .*FAILED .* 1 +first: boom$/m);
    assert.match(text, new RegExp(`^  6 .*FAILED .* 2 +${escape(escaped)}$`, 'm'));
    assert.equal(text.split('\n').length, 13 + 2 + 7, 'one line per field and per event');
  });

  test('limits: a row per limit (- for no cap), the detail with the rate\'s spacing, the line set prints', () => {
    const at = '2030-01-01T00:00:00.000Z';
    const email = { key: 'email', concurrency: null, rate: { max: 3, intervalMs: 1000 }, running: 0, createdAt: at, updatedAt: at };
    const tenant = { key: 'tenant:42', concurrency: 12, rate: null, running: 7, createdAt: at, updatedAt: at };
    assert.deepEqual(limitTable([email, tenant]), [
      'KEY        CONCURRENCY  RUNNING  RATE  UPDATED',
      `email      -            0        3/1s  ${at}`,
      `tenant:42  12           7        -     ${at}`,
    ]);
    assert.equal(rateText(null), '-');
    assert.equal(rateText({ max: 100, intervalMs: 60_000 }), '100/1m');
    const detail = limitDetail(email);
    assert.match(detail, /^concurrency\s+- \(no cap\)$/m);
    assert.match(detail, /^rate\s+3\/1s \(one start every 334 ms at most\)$/m);
    assert.match(limitDetail(tenant), /^running\s+7$/m);
    assert.equal(limitLine(email), 'email: rate 3/1s');
    assert.equal(limitLine({ ...tenant, rate: { max: 1, intervalMs: 1500 } }), 'tenant:42: concurrency 12, rate 1/1500ms');
  });

  test('limits: a paused key (concurrency 0) says so in the row, the detail and the line', () => {
    const at = '2030-01-01T00:00:00.000Z';
    const paused = { key: 'smtp', concurrency: 0, rate: { max: 3, intervalMs: 1000 }, running: 2, createdAt: at, updatedAt: at };
    assert.deepEqual(limitTable([paused]), [
      'KEY   CONCURRENCY  RUNNING  RATE  UPDATED',
      `smtp  0 (paused)   2        3/1s  ${at}`,
    ]);
    assert.match(limitDetail(paused), /^concurrency\s+0 \(paused: none of its jobs starts\)$/m);
    assert.equal(limitLine(paused), 'smtp: concurrency 0 (paused), rate 3/1s');
  });

  test('tables align columns', () => {
    assert.deepEqual(table(['A', 'BB'], [['xxx', 'y'], ['z', 'w']]), ['A    BB', 'xxx  y', 'z    w']);
  });

  test('a job shows its ETA, and a failure the advisor stopped says so with its reason', () => {
    const at = '2030-01-01T00:00:00.000Z';
    const job = {
      id: 'j1', type: 'orders.sync', queue: 'default', state: 'pending', attempt: 0, maxAttempts: 3, payload: {}, result: null,
      lastError: null, runAt: at, createdAt: at, updatedAt: at, events: [],
      eta: { start: '2030-01-01T00:00:05.000Z', finish: '2030-01-01T00:00:06.000Z', basis: { ahead: 12, startsPerSecond: 2.5, medianRunMs: 800.4, startLatencyMs: 35.2 } },
    };
    assert.match(jobDetail(job), /^eta {10}start 2030-01-01T00:00:05.000Z, finish 2030-01-01T00:00:06.000Z \(12 ahead, 2.5 starts\/s, started 35 ms after due, median run 800 ms\)$/m);
    // A label longer than the column's 12 characters (concurrencyKey, 14) moves every value on to one column past it.
    const keyed = jobDetail({ ...job, concurrencyKey: 'tenant:42' }).split('\n');
    assert.ok(keyed.includes('concurrencyKey tenant:42') && keyed.includes('id             j1'), keyed.join('\n'));
    // The count of the jobs ahead stopped at its bound: the times are the earliest.
    assert.match(jobDetail({ ...job, eta: { ...job.eta, lowerBound: true } }),
      /^eta {10}earliest start 2030-01-01T00:00:05.000Z, finish 2030-01-01T00:00:06.000Z \(at least 12 ahead, 2.5 starts\/s, started 35 ms after due, median run 800 ms\)$/m);
    const dead = {
      ...job, state: 'dead', eta: null,
      lastError: { message: 'order 7 not found', retryable: false, decidedBy: 'advisor' as const, advice: 'no retry recovered in 0 of 58 runs', attempt: 1 },
    };
    const text = jobDetail(dead);
    assert.match(text, /^lastError {4}order 7 not found \(attempt 1, not retried: advisor: no retry recovered in 0 of 58 runs\)$/m);
    assert.doesNotMatch(text, /^eta/m);
    assert.match(jobDetail({ ...dead, lastError: { message: 'bad', retryable: false, attempt: 2 } }), /\(attempt 2, not retryable\)/);
  });

  test('a job\'s progress: a number as a percentage, an object as its whole JSON, with its attempt and time', () => {
    const at = '2030-01-01T00:00:00.000Z';
    const job = {
      id: 'j1', type: 'files.upload', queue: 'default', state: 'running', attempt: 2, maxAttempts: 3, payload: {}, result: null,
      lastError: null, runAt: at, createdAt: at, updatedAt: at, events: [], cancelReason: 'x',
    };
    const lines = jobDetail({ ...job, progress: { value: 42.5, attempt: 2, at } }).split('\n');
    assert.equal(lines[5], `progress     42.5% (attempt 2, ${at})`, 'right after the attempt');
    assert.equal(lines[9], 'cancelReason x', 'after lastError');
    const big = { step: 'upload', files: Array.from({ length: 40 }, (_, i) => `file-${i}.bin`) };
    assert.ok(JSON.stringify(big).length > 200);
    assert.match(jobDetail({ ...job, progress: { value: big, attempt: 1, at } }), new RegExp(`^progress {5}${escape(JSON.stringify(big))} \\(attempt 1, ${at}\\)$`, 'm'));
    for (const progress of [null, undefined]) assert.doesNotMatch(jobDetail({ ...job, progress }), /^progress/m);
    assert.equal(progressLine({ value: 40, attempt: 1, at }, 3), `${at}  progress   attempt 1/3   40%`);
    assert.equal(progressLine({ value: { step: 'b' }, attempt: 2, at }), `${at}  progress   attempt 2     {"step":"b"}`);
    const long = progressLine({ value: big, attempt: 1, at }, 3);
    assert.ok(long.endsWith('...') && long.length < 300, long);
  });

  test('ProgressGate: later values once each, none of an attempt before its start was shown', () => {
    const shown: string[] = [];
    const gate = new ProgressGate((p) => shown.push(`${String(p.value)}@${p.attempt}`));
    const at = (ms: number) => new Date(ms).toISOString();
    gate.push({ value: 10, attempt: 1, at: at(10) });
    gate.push({ value: 20, attempt: 1, at: at(20) });
    assert.deepEqual(shown, [], 'attempt 1 has not been shown to start');
    gate.started(1);
    gate.push({ value: 20, attempt: 1, at: at(20) });
    gate.push({ value: 15, attempt: 1, at: at(15) });
    gate.push(null);
    gate.push({ value: 5, attempt: 2, at: at(5) });
    gate.started(2);
    gate.push({ value: 90, attempt: 1, at: at(90) });
    assert.deepEqual(shown, ['20@1', '5@2']);
  });

  test('insights: a table per type and queue, the failure signatures with their verdict, and what would change', () => {
    const text = insightsText({
      mode: 'advise', events: 1234,
      types: [{
        type: 'orders.sync', queue: 'default', timeoutMs: 60_000, attempts: 400, failures: 90,
        runMs: { count: 400, p50: 120.4, p90: 300, p99: 610.6 }, lease: { leaseMs: 5000, heartbeatMs: 1666, p99Ms: 610.6, samples: 400 },
        signatures: [{ signature: 'Error: order # not found', failures: 90, recovered: 0, hopeless: 60, pRecover: 0.016, verdict: 'hopeless', recoveryMs: null }],
        anomalies: [], changes: ['stop retrying `Error: order # not found`'],
      }],
    });
    const lines = text.split('\n');
    assert.equal(lines[0], 'advisor: advise, 1234 events learned from');
    assert.ok(lines.some((l) => /^orders\.sync\s+default\s+400\s+90\s+120 ms\s+611 ms\s+5000 ms\s+0$/.test(l)), text);
    assert.ok(lines.some((l) => /^ {2}orders\.sync\s+hopeless\s+0\/60\s+Error: order # not found$/.test(l)), text);
    assert.ok(lines.includes('would change (ATS_ADVISOR=enforce to apply)'), text);
    assert.ok(lines.includes('  orders.sync (default): stop retrying `Error: order # not found`'), text);
    assert.equal(insightsText({ mode: 'off', events: 0, types: [] }), 'advisor: off, 0 events learned from');
  });
});
