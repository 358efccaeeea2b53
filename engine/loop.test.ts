import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackgroundLoop, pollUntilAborted } from './loop.js';
import { silentLogger } from './logger.js';
import type { Logger } from './ports.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A body that runs until its signal aborts, counting its runs and how many run at once. */
function body() {
  const st = { runs: 0, live: 0, maxLive: 0 };
  const run = async (signal: AbortSignal) => {
    st.runs++;
    st.live++;
    st.maxLive = Math.max(st.maxLive, st.live);
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    await tick(); // some clean-up after the abort
    st.live--;
  };
  return { st, run };
}

describe('BackgroundLoop', () => {
  it('start runs the body once however often it is called; stop aborts it and waits for it to return', async () => {
    const { st, run } = body();
    const loop = new BackgroundLoop(run);
    loop.start();
    loop.start();
    assert.equal(st.runs, 1);
    assert.equal(loop.active, true);
    await loop.stop();
    assert.equal(st.live, 0, 'stop resolved before the body returned');
    assert.equal(loop.active, false);
  });

  it('stop without start resolves; stop twice resolves', async () => {
    const loop = new BackgroundLoop(body().run);
    await loop.stop();
    loop.start();
    await Promise.all([loop.stop(), loop.stop()]);
    assert.equal(loop.active, false);
  });

  it('starts again after a stop, with a fresh signal', async () => {
    const signals: AbortSignal[] = [];
    const loop = new BackgroundLoop(async (signal) => {
      signals.push(signal);
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    });
    loop.start();
    await loop.stop();
    loop.start();
    assert.equal(signals.length, 2);
    assert.equal(signals[1]!.aborted, false);
    await loop.stop();
  });

  it('a start while a stop is in progress runs the body again once the old one has returned (never two at once)', async () => {
    const { st, run } = body();
    const loop = new BackgroundLoop(run);
    loop.start();
    const stopping = loop.stop();
    loop.start();
    await stopping;
    await tick();
    assert.equal(loop.active, true, 'the last call was start, but the loop is not running');
    assert.equal(st.runs, 2);
    assert.equal(st.maxLive, 1);
    await loop.stop();
    assert.equal(st.live, 0);
  });
});

describe('pollUntilAborted', () => {
  it('logs the first failed pass, then one line a minute while passes fail, and once, when a pass works again, that the loop works again', async () => {
    const lines: Array<[string, string, unknown]> = [];
    const logger: Logger = {
      ...silentLogger,
      info: (msg, fields) => void lines.push(['info', msg, fields?.failures]),
      error: (msg, fields) => void lines.push(['error', msg, fields?.failures]),
    };
    const controller = new AbortController();
    let passes = 0;
    let now = 0;
    await pollUntilAborted(controller.signal, {
      // Each pause moves the clock on by itself: 1 s doubling to 10 s.
      clock: { now: () => now, sleep: async (ms) => void (now += ms) },
      logger, failure: 'timers: pass failed', pollMs: 1,
      async pass() {
        passes++;
        // A database down for about two minutes: 14 failed passes, at 0, 1, 3, 7, 15, 25, ... 105 s.
        if (passes <= 14) throw new Error('The database is not reachable');
        if (passes === 17) controller.abort();
        return false;
      },
    });
    assert.deepEqual(lines, [
      ['error', 'timers: pass failed, will retry', 1], // at 0 s
      ['error', 'timers: pass failed, will retry', 10], // at 65 s: a minute on (the 9th came at 55 s)
      ['info', 'timers: pass works again', 14],
    ]);
  });
});
