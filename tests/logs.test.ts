/**
 * One log for the whole process: a scheduler composed with the embedded
 * backends writes its roles' lines, the handler's `ctx.log` lines and
 * fastify's request lines through one pino logger, with the fields that make
 * them searchable: jobId, type and attempt on a job's lines, fastify's reqId
 * (the `x-request-id` a client sees) on a request's.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compose, type System } from '../cli/compose.js';
import { compileConfig } from '../cli/config.js';
import { HandlerRegistry } from '../engine/handlers.js';
import { createLogger, type LogLevel } from '../engine/logger.js';

type Line = Record<string, unknown>;

async function startLogged(level: LogLevel): Promise<{ system: System; lines: Line[]; done(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-logs-test-'));
  const lines: Line[] = [];
  const config = compileConfig({ dataDir: dir, port: 0, logLevel: level, timersPollMs: 20, relayPollMs: 20 }, { hostname: 'test', pid: process.pid });
  const registry = new HandlerRegistry().register('test.logs', async (payload: { fail?: boolean }, ctx) => {
    ctx.log.info('handler: working', { step: 1 });
    if (payload.fail && ctx.attempt === 1) throw new Error('first attempt fails');
    return { ok: true };
  });
  const logger = createLogger(level, { role: config.roles.join(',') }, (line) => lines.push(JSON.parse(line) as Line));
  const system = await compose(config, { registry, logger });
  await system.start();
  return {
    system, lines,
    async done() {
      await system.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function until<T>(what: string, probe: () => T | undefined, lines: Line[], timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail(`${what} not logged within ${timeoutMs} ms:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('logs at debug: every role through one logger', { timeout: 60_000 }, () => {
  let t: Awaited<ReturnType<typeof startLogged>>;
  before(async () => {
    t = await startLogged('debug');
  });
  after(async () => {
    await t?.done();
  });

  it('a handler\'s ctx.log lines carry jobId, type and attempt (each attempt its own)', async () => {
    const res = await t.system.app!.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'test.logs', payload: { fail: true }, backoff: { kind: 'fixed', delayMs: 10 } } });
    assert.equal(res.statusCode, 201, res.body);
    const id = res.json().id as string;
    const handlerLines = await until('two attempts of the handler', () => {
      const found = t.lines.filter((l) => l.msg === 'handler: working' && l.jobId === id);
      return found.length >= 2 ? found : undefined;
    }, t.lines);
    assert.deepEqual(handlerLines.map((l) => [l.level, l.jobId, l.type, l.attempt, l.step]), [
      ['info', id, 'test.logs', 1, 1],
      ['info', id, 'test.logs', 2, 1],
    ]);
    for (const l of handlerLines) assert.equal(l.role, 'api,relay,worker,timers');
    // The relay's and the timers' lines about the job carry its id and type too.
    const relayed = await until('the relay\'s dispatch line', () => t.lines.find((l) => l.msg === 'relay: dispatch published' && l.jobId === id), t.lines);
    assert.deepEqual([relayed.level, relayed.type, relayed.attempt], ['debug', 'test.logs', 1]);
    const retried = await until('the timers\' retry line', () => t.lines.find((l) => l.msg === 'timers: retry due' && l.jobId === id), t.lines);
    assert.deepEqual([retried.level, retried.type], ['debug', 'test.logs']);
  });

  it('a request is one debug line from fastify with its reqId (the x-request-id the client got), status and time', async () => {
    const res = await t.system.app!.inject({ method: 'GET', url: '/v1/stats' });
    assert.equal(res.statusCode, 200);
    const reqId = res.headers['x-request-id'];
    assert.ok(typeof reqId === 'string' && reqId.length > 0);
    const line = await until('the request line', () => t.lines.find((l) => l.reqId === reqId), t.lines);
    assert.equal(line.msg, 'request completed');
    assert.equal(line.level, 'debug');
    assert.deepEqual([line.method, line.url, line.statusCode], ['GET', '/v1/stats', 200]);
    assert.equal(typeof line.responseTime, 'number');
    assert.equal(line.role, 'api,relay,worker,timers', 'the same logger: base fields included');
    assert.equal(t.lines.filter((l) => l.reqId === reqId).length, 1, 'one line per request (no "incoming request")');
  });
});

describe('logs at info: no line per request', { timeout: 60_000 }, () => {
  it('a successful request and a 4xx write nothing at info; the job still logs its handler lines', async () => {
    const t = await startLogged('info');
    try {
      const ok = await t.system.app!.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'test.logs', payload: {} } });
      assert.equal(ok.statusCode, 201, ok.body);
      const bad = await t.system.app!.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'test.logs', payload: {}, priority: 'high' } });
      assert.equal(bad.statusCode, 400);
      await until('the handler line', () => t.lines.find((l) => l.msg === 'handler: working'), t.lines);
      for (const res of [ok, bad]) {
        const reqId = res.headers['x-request-id'];
        assert.deepEqual(t.lines.filter((l) => l.reqId === reqId), []);
      }
      assert.deepEqual(t.lines.filter((l) => l.level === 'debug'), []);
      assert.ok(!t.lines.some((l) => String(l.msg).startsWith('Server listening')), 'fastify\'s listen line is left out');
    } finally {
      await t.done();
    }
  });
});
