/**
 * The pino-backed logger: JSON lines with the level's name, ISO time, the base
 * fields (pid, hostname, role), the call's fields and child fields; the level
 * filters; pretty output is for people (not JSON); a Logger without children
 * still gets the fields.
 */
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, errorFields, prettyDestination, silentLogger, withFields } from './logger.js';
import type { Logger } from './ports.js';

function capture(level: Parameters<typeof createLogger>[0], base: Record<string, unknown> = {}) {
  const lines: string[] = [];
  const logger = createLogger(level, base, (line) => lines.push(line));
  return { logger, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('createLogger: JSON lines', () => {
  it('one JSON object a line: level by name, ISO time, pid, hostname, base fields, fields, msg', () => {
    const { logger, lines, parsed } = capture('info', { role: 'api,worker' });
    logger.info('ats ready: open http://localhost:3000/ui', { roles: ['api', 'worker'] });
    assert.equal(lines.length, 1);
    assert.ok(!lines[0]!.includes('\n'), 'the line has no newline of its own');
    const [line] = parsed();
    assert.equal(line!.level, 'info');
    assert.equal(line!.msg, 'ats ready: open http://localhost:3000/ui');
    assert.match(String(line!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(line!.pid, process.pid);
    assert.equal(line!.hostname, hostname());
    assert.equal(line!.role, 'api,worker');
    assert.deepEqual(line!.roles, ['api', 'worker']);
  });

  it('the level filters, and each level is named', () => {
    const { logger, parsed } = capture('warn');
    logger.debug('d');
    logger.info('i');
    logger.warn('w', { n: 1 });
    logger.error('e');
    assert.deepEqual(parsed().map((l) => [l.level, l.msg]), [['warn', 'w'], ['error', 'e']]);
    const all = capture('debug');
    all.logger.debug('d');
    all.logger.info('i');
    assert.deepEqual(all.parsed().map((l) => l.level), ['debug', 'info']);
  });

  it('silent writes nothing', () => {
    const { logger, lines } = capture('silent');
    logger.error('e');
    logger.child({ jobId: 'x' }).error('e');
    assert.deepEqual(lines, []);
  });

  it('a child adds its fields to every line, nested children add theirs', () => {
    const { logger, parsed } = capture('info');
    const job = logger.child({ jobId: '01J', type: 'demo.echo', attempt: 2 });
    job.info('handler says hi', { x: 1 });
    job.child({ step: 'upload' }).warn('slow');
    logger.info('no job here');
    const [a, b, c] = parsed();
    assert.deepEqual([a!.jobId, a!.type, a!.attempt, a!.x, a!.msg], ['01J', 'demo.echo', 2, 1, 'handler says hi']);
    assert.deepEqual([b!.jobId, b!.step, b!.level], ['01J', 'upload', 'warn']);
    assert.equal(c!.jobId, undefined);
  });

  it('a call\'s field named as one the line has (level, time, msg, pid, hostname, a base field, a child\'s field) is written as fields.<name>: each key once, the line\'s own kept', () => {
    const { logger, lines, parsed } = capture('info', { role: 'worker' });
    const job = logger.child({ jobId: '01J', type: 'email.send', attempt: 2 });
    // What a handler may well log through ctx.log: its own `type`, `time` taken, `level` of something.
    job.info('sent', { type: 'invoice', attempt: 1, jobId: 'provider-7', level: 'high', time: 1234, msg: 'm', pid: 1, hostname: 'h', role: 'r', x: 1 });
    for (const key of ['level', 'time', 'msg', 'pid', 'hostname', 'role', 'jobId', 'type', 'attempt']) {
      assert.equal(lines[0]!.split(`"${key}":`).length - 1, 1, `"${key}" once in ${lines[0]}`);
    }
    const [line] = parsed();
    assert.deepEqual(
      [line!.level, line!.msg, line!.pid, line!.hostname, line!.role, line!.jobId, line!.type, line!.attempt, line!.x],
      ['info', 'sent', process.pid, hostname(), 'worker', '01J', 'email.send', 2, 1],
    );
    assert.match(String(line!.time), /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual(
      ['type', 'attempt', 'jobId', 'level', 'time', 'msg', 'pid', 'hostname', 'role'].map((k) => line![`fields.${k}`]),
      ['invoice', 1, 'provider-7', 'high', 1234, 'm', 1, 'h', 'r'],
    );
    // A field no line has is written as it is, and a line without such a field as before.
    logger.info('plain', { type: 'x' });
    assert.equal(parsed()[1]!.type, 'x');
  });

  it('a message is written as given (no printf-style formatting)', () => {
    const { logger, parsed } = capture('info');
    logger.info('100%s done %d %j', { n: 1 });
    logger.info('50%% %o');
    assert.deepEqual(parsed().map((l) => l.msg), ['100%s done %d %j', '50%% %o']);
  });

  it('the pino instance behind it is the same stream (what fastify gets)', () => {
    const { logger, parsed } = capture('info', { role: 'api' });
    logger.pino.child({ reqId: 'req-1' }).info({ statusCode: 200 }, 'request completed');
    const [line] = parsed();
    assert.deepEqual([line!.level, line!.reqId, line!.statusCode, line!.role, line!.msg], ['info', 'req-1', 200, 'api', 'request completed']);
  });
  it('fields that cannot be written (a getter that throws) do not throw into the caller: the line is written without them, saying why', () => {
    const { logger, parsed } = capture('info');
    const hostile = { get total(): number { throw new Error('getter failed'); } };
    assert.doesNotThrow(() => logger.info('handler line', hostile));
    assert.doesNotThrow(() => logger.child({ jobId: 'j1' }).warn('child line', { ok: 1, get total(): number { throw new Error('getter failed'); } }));
    const [first, second] = parsed();
    assert.equal(first!.msg, 'handler line');
    assert.equal(first!.total, undefined);
    assert.match(String(first!.logFieldsError), /getter failed/);
    assert.equal(second!.msg, 'child line');
    assert.equal(second!.jobId, 'j1');
    assert.equal(second!.ok, undefined);
    assert.match(String(second!.logFieldsError), /getter failed/);
  });

  it('a child whose fields cannot be written is made all the same: its lines say why, without them', () => {
    const { logger, parsed } = capture('info');
    let child: ReturnType<typeof logger.child> | undefined;
    assert.doesNotThrow(() => (child = logger.child({ get jobId(): string { throw new Error('binding failed'); } })));
    child!.info('child line', { n: 1 });
    const [line] = parsed();
    assert.equal(line!.msg, 'child line');
    assert.equal(line!.n, 1);
    assert.match(String(line!.logFieldsError), /binding failed/);
  });

  it('a destination that throws loses the line, not the caller\'s work: with fields or without', () => {
    const logger = createLogger('info', {}, () => {
      throw new Error('destination failed');
    });
    assert.doesNotThrow(() => logger.info('with fields', { n: 1 }));
    assert.doesNotThrow(() => logger.warn('without fields'));
    assert.doesNotThrow(() => withFields(logger, { jobId: 'j1' }).error('a handler line'));
  });

  it('a destination that writes the line and then throws has written it once: the line is not written again without the fields (also fields pino writes but JSON cannot: a BigInt, a cycle)', () => {
    const lines: string[] = [];
    const logger = createLogger('info', {}, (line) => {
      lines.push(line);
      throw new Error('destination failed after writing');
    });
    const cycle: Record<string, unknown> = { k: 1 };
    cycle.self = cycle;
    assert.doesNotThrow(() => logger.info('with fields', { n: 1 }));
    assert.doesNotThrow(() => logger.info('a BigInt', { n: 10n }));
    assert.doesNotThrow(() => logger.info('a cycle', { n: 2, cycle }));
    assert.deepEqual(lines.map((l) => JSON.parse(l) as Record<string, unknown>).map((l) => [l.msg, l.n, l.logFieldsError]), [
      ['with fields', 1, undefined], ['a BigInt', 10, undefined], ['a cycle', 2, undefined],
    ]);
  });

  it('an error pino\'s err serializer cannot read (its stack, message or cause a getter that throws) leaves the line, which goes out once without the fields, saying why', () => {
    const { logger, parsed } = capture('info');
    const throwing = (prop: 'stack' | 'message' | 'cause') => {
      const e = new Error('x');
      Object.defineProperty(e, prop, { get() { throw new Error(`${prop} getter failed`); } });
      return e;
    };
    for (const prop of ['stack', 'message', 'cause'] as const) assert.doesNotThrow(() => logger.error(`${prop} line`, { n: 1, err: throwing(prop) }));
    assert.deepEqual(parsed().map((l) => [l.msg, l.n, l.err, l.logFieldsError]), [
      ['stack line', undefined, undefined, 'the fields could not be written: stack getter failed'],
      ['message line', undefined, undefined, 'the fields could not be written: message getter failed'],
      ['cause line', undefined, undefined, 'the fields could not be written: cause getter failed'],
    ]);
  });

  it('a destination that writes a line with an error and then throws has written it once', () => {
    const lines: string[] = [];
    const logger = createLogger('info', {}, (line) => {
      lines.push(line);
      throw new Error('destination failed after writing');
    });
    assert.doesNotThrow(() => logger.error('an error', { err: new Error('boom') }));
    assert.deepEqual(lines.map((l) => JSON.parse(l) as { msg: string; err: { message: string } }).map((l) => [l.msg, l.err.message]), [['an error', 'boom']]);
  });
});

describe('withFields', () => {
  it('uses the logger\'s own child when it has one', () => {
    const { logger, parsed } = capture('info');
    withFields(logger, { jobId: 'j1' }).info('m', { k: 1 });
    assert.deepEqual(parsed().map((l) => [l.jobId, l.k]), [['j1', 1]]);
  });

  it('adds the fields to each call of a Logger without children (a call\'s field of the same name is written as fields.<name>)', () => {
    const calls: Array<[string, string, Record<string, unknown> | undefined]> = [];
    const plain: Logger = {
      debug: (m, f) => calls.push(['debug', m, f]), info: (m, f) => calls.push(['info', m, f]),
      warn: (m, f) => calls.push(['warn', m, f]), error: (m, f) => calls.push(['error', m, f]),
    };
    const log = withFields(plain, { jobId: 'j1', attempt: 1 });
    log.warn('w');
    log.error('e', { attempt: 2, err: 'boom' });
    assert.deepEqual(calls, [
      ['warn', 'w', { jobId: 'j1', attempt: 1 }],
      ['error', 'e', { jobId: 'j1', attempt: 1, 'fields.attempt': 2, err: 'boom' }],
    ]);
  });

  it('a Logger without children: fields that cannot be read (a getter that throws) do not throw into the caller, the line goes out with the attempt\'s fields, saying why', () => {
    const calls: Array<[string, Record<string, unknown> | undefined]> = [];
    const plain: Logger = {
      debug: (m, f) => calls.push([m, f]), info: (m, f) => calls.push([m, f]),
      warn: (m, f) => calls.push([m, f]), error: (m, f) => calls.push([m, f]),
    };
    const log = withFields(plain, { jobId: 'j1', attempt: 1 });
    assert.doesNotThrow(() => log.info('handler line', { ok: 1, get total(): number { throw new Error('getter failed'); } }));
    assert.equal(calls.length, 1);
    const [msg, f] = calls[0]!;
    assert.equal(msg, 'handler line');
    assert.equal(f!.jobId, 'j1');
    assert.equal(f!.attempt, 1);
    assert.equal(f!.ok, undefined);
    assert.match(String(f!.logFieldsError), /getter failed/);
  });

  it('a Logger with children of its own: fields that cannot be read leave the line, which still goes out through the child, saying why', () => {
    const calls: Array<[string, Record<string, unknown>]> = [];
    // A child that reads the call's fields as it writes the line (spreads them), as a logger of one's own may.
    const write = (base: Record<string, unknown>) => (m: string, f?: Record<string, unknown>) => void calls.push([m, { ...base, ...f }]);
    const child = (base: Record<string, unknown>): Logger => ({ debug: write(base), info: write(base), warn: write(base), error: write(base) });
    const own = { ...child({}), child };
    const log = withFields(own, { jobId: 'j1', attempt: 1 });
    assert.doesNotThrow(() => log.info('handler line', { ok: 1, get total(): number { throw new Error('getter failed'); } }));
    assert.equal(calls.length, 1, 'the line goes out');
    const [msg, f] = calls[0]!;
    assert.equal(msg, 'handler line');
    assert.equal(f.jobId, 'j1');
    assert.equal(f.attempt, 1);
    assert.match(String(f.logFieldsError), /getter failed/);
  });

  it('a Logger that throws itself (with or without children) loses the line, not the caller\'s work', () => {
    const boom = () => {
      throw new Error('logger failed');
    };
    const plain: Logger = { debug: boom, info: boom, warn: boom, error: boom };
    assert.doesNotThrow(() => withFields(plain, { jobId: 'j1' }).warn('w'));
    assert.doesNotThrow(() => withFields(plain, { jobId: 'j1' }).error('e', { n: 1 }));
    const withChild = { ...plain, child: boom };
    assert.doesNotThrow(() => withFields(withChild, { jobId: 'j1' }).info('i', { n: 1 }));
    const childLinesThrow = { ...plain, child: () => plain };
    assert.doesNotThrow(() => withFields(childLinesThrow, { jobId: 'j1' }).debug('d'));
  });

  it('a Logger (its own child, or one without children) that writes a line and then throws has written it once: the line is not written again without the fields', () => {
    const calls: Array<[string, Record<string, unknown> | undefined]> = [];
    const writeThenThrow = (m: string, f?: Record<string, unknown>) => {
      calls.push([m, f]);
      throw new Error('logger failed after writing');
    };
    const plain: Logger = { debug: writeThenThrow, info: writeThenThrow, warn: writeThenThrow, error: writeThenThrow };
    assert.doesNotThrow(() => withFields(plain, { jobId: 'j1' }).info('plain line', { n: 1 }));
    assert.deepEqual(calls, [['plain line', { jobId: 'j1', n: 1 }]]);
    calls.length = 0;
    const withChild = { ...plain, child: () => plain };
    assert.doesNotThrow(() => withFields(withChild, { jobId: 'j1' }).warn('child line', { n: 1 }));
    assert.deepEqual(calls, [['child line', { n: 1 }]]);
  });

  it('a Logger that cannot write the fields as JSON (a BigInt) throws before writing: the line goes out once, without them, saying why', () => {
    const lines: Array<Record<string, unknown>> = [];
    const json = (m: string, f?: Record<string, unknown>) => void lines.push(JSON.parse(JSON.stringify({ ...f, msg: m })) as Record<string, unknown>);
    const plain: Logger = { debug: json, info: json, warn: json, error: json };
    assert.doesNotThrow(() => withFields(plain, { jobId: 'j1' }).info('plain line', { n: 10n }));
    const withChild = { ...plain, child: () => plain };
    assert.doesNotThrow(() => withFields(withChild, { jobId: 'j1' }).info('child line', { n: 10n }));
    assert.equal(lines.length, 2);
    assert.deepEqual(lines.map((l) => [l.msg, l.n]), [['plain line', undefined], ['child line', undefined]]);
    assert.equal(lines[0]!.jobId, 'j1');
    for (const l of lines) assert.match(String(l.logFieldsError), /BigInt/);
  });

  it('a test logger spread from silentLogger hears the lines of its children', () => {
    const warnings: Array<Record<string, unknown> | undefined> = [];
    const logger: Logger = { ...silentLogger, warn: (_m, f) => void warnings.push(f) };
    withFields(logger, { jobId: 'x' }).warn('w');
    withFields(silentLogger, { jobId: 'x' }).error('e');
    assert.deepEqual(warnings, [{ jobId: 'x' }]);
  });
});

describe('pretty output (LOG_FORMAT=pretty)', () => {
  it('writes readable lines, not JSON: time, level name, message, fields', async () => {
    let out = '';
    const sink = new Writable({ write(chunk, _enc, done) { out += String(chunk); done(); } });
    const logger = createLogger('info', { role: 'worker' }, await prettyDestination({ colorize: false, destination: sink }));
    logger.child({ jobId: '01J' }).warn('worker: heartbeat failed, will retry', { err: 'timeout' });
    logger.debug('not shown');
    const lines = out.split('\n').filter(Boolean);
    assert.ok(lines.length >= 1, out);
    assert.throws(() => JSON.parse(lines[0]!), 'the first line is not JSON');
    assert.match(lines[0]!, /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: worker: heartbeat failed, will retry$/);
    assert.match(out, /jobId: "01J"/);
    assert.match(out, /role: "worker"/);
    assert.doesNotMatch(out, /not shown/);
    assert.doesNotMatch(out, /hostname|pid/, 'pid and hostname are left out of pretty lines');
  });
});

describe('errorFields', () => {
  /** What Node's connect throws when every address of a host refused (localhost: ::1 and 127.0.0.1): an empty message. */
  const refusedEverywhere = () => Object.assign(new AggregateError([
    Object.assign(new Error('connect ECONNREFUSED ::1:3306'), { code: 'ECONNREFUSED' }),
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:3306'), { code: 'ECONNREFUSED' }),
  ], ''), { code: 'ECONNREFUSED' });

  it('an AggregateError without a message of its own is named by its inner errors\' messages, as its error and as a cause', () => {
    assert.deepEqual(errorFields(refusedEverywhere()), {
      err: 'connect ECONNREFUSED ::1:3306; connect ECONNREFUSED 127.0.0.1:3306', errName: 'AggregateError',
    });
    const wrapped = new Error('The database is not reachable', { cause: refusedEverywhere() });
    assert.equal(errorFields(wrapped).cause, 'connect ECONNREFUSED ::1:3306; connect ECONNREFUSED 127.0.0.1:3306');
  });

  it('any other error as before: its message, its name, its cause\'s message', () => {
    assert.deepEqual(errorFields(new TypeError('x', { cause: new Error('y') })), { err: 'x', errName: 'TypeError', cause: 'y' });
    assert.deepEqual(errorFields(new AggregateError([new Error('a')], 'all failed')), { err: 'all failed', errName: 'AggregateError' });
    assert.deepEqual(errorFields('a string'), { err: 'a string' });
  });
});
