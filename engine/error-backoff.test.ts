/**
 * OutageLog: a loop retrying at a steady pace through an outage logs its
 * first failure, then at most one line a minute, then its recovery.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OUTAGE_LOG_EVERY_MS, OutageLog } from './error-backoff.js';
import { TailReader } from './event-tail.js';
import type { Clock, Logger } from './ports.js';

function capture(): { logger: Logger; lines: Array<{ level: string; msg: string; fields: Record<string, unknown> | undefined }> } {
  const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> | undefined }> = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

describe('OutageLog', () => {
  it('logs the first failure, then one line per minute with the count, then the recovery once', () => {
    const { logger, lines } = capture();
    const log = new OutageLog(logger, 'relay: batch');
    for (let t = 0; t < OUTAGE_LOG_EVERY_MS; t += 1000) log.failed(new Error('database down'), t);
    assert.deepEqual(lines.map((l) => [l.level, l.msg, l.fields?.failures]), [['error', 'relay: batch failed, will retry', 1]]);
    log.failed(new Error('database down'), OUTAGE_LOG_EVERY_MS);
    assert.deepEqual(lines.at(-1)?.fields?.failures, 61);
    assert.equal(lines.length, 2);
    log.succeeded();
    log.succeeded();
    assert.deepEqual(lines.slice(2).map((l) => [l.level, l.msg, l.fields?.failures]), [['info', 'relay: batch works again', 61]]);
    log.failed(new Error('down again'), OUTAGE_LOG_EVERY_MS + 1000);
    assert.deepEqual(lines.slice(3).map((l) => [l.level, l.fields?.failures, l.fields?.err]), [['error', 1, 'down again']]);
  });

  it('writes the given fields on its line, at the level it was made with', () => {
    const { logger, lines } = capture();
    const log = new OutageLog(logger, 'lane', { level: 'warn' });
    log.failed(new Error('down'), 0, { offset: '7', err: 'overridden by the error' });
    assert.deepEqual(lines.map((l) => [l.level, l.msg, l.fields]), [
      ['warn', 'lane failed, will retry', { offset: '7', err: 'down', errName: 'Error', failures: 1 }],
    ]);
  });

  it('with repeats at debug: each failure not written at its level is at debug with its fields; its own text; fields on the recovery', () => {
    const { logger, lines } = capture();
    const log = new OutageLog(logger, 'api: request', { level: 'warn', failedMessage: 'request failed: unavailable', repeats: 'debug' });
    assert.equal(log.failing, false);
    log.failed(new Error('down'), 0, { reqId: 'a' });
    log.failed(new Error('down'), 1000, { reqId: 'b' });
    assert.equal(log.failing, true);
    log.failed(new Error('down'), OUTAGE_LOG_EVERY_MS, { reqId: 'c' });
    log.succeeded({ code: 'X' });
    assert.equal(log.failing, false);
    assert.deepEqual(lines.map((l) => [l.level, l.msg, l.fields?.reqId ?? l.fields?.code, l.fields?.failures]), [
      ['warn', 'request failed: unavailable', 'a', 1],
      ['debug', 'request failed: unavailable', 'b', 2],
      ['warn', 'request failed: unavailable', 'c', 3],
      ['info', 'api: request works again', 'X', 3],
    ]);
  });

  it('keeps the stream tail\'s log short through an outage while it retries at its steady pace', async () => {
    const { logger, lines } = capture();
    let now = 0;
    // Each pause passes 10 ms of clock time at once: 200 failed reads are 2 s.
    const clock: Clock = { now: () => now, sleep: () => new Promise((resolve) => setImmediate(() => { now += 10; resolve(); })) };
    let reads = 0;
    const reader = new TailReader({
      read: async () => {
        reads++;
        if (reads <= 201) throw new Error('database unreachable'); // the first read is init's
        return [];
      },
      last: async () => (reads === 0 ? (reads++, 0) : 0),
      clock, logger, onEvents: () => undefined,
    }, { tailBatchSize: 100, pollMs: 500, idlePollMs: 5000, gapTimeoutMs: 3000, gapPollMs: 50, startupRewindIds: 0, errorBackoffMs: 10 });
    await reader.start();
    const deadline = Date.now() + 5000;
    while (reads <= 202 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    await reader.stop();
    assert.ok(reads > 200, `reads: ${reads}`);
    const errors = lines.filter((l) => l.level === 'error');
    assert.equal(errors.length, 1, `one error line for 200 failed reads: ${errors.length}`);
    assert.deepEqual(lines.filter((l) => l.level === 'info').map((l) => [l.msg, l.fields?.failures]), [['stream: tail read works again', 200]]);
  });
});
