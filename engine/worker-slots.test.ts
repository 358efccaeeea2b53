/**
 * A worker's handler slots and handlers that ignore their abort signal: the
 * attempt ends when its signal aborts (a timeout, a cancel), but the slot is
 * given back only once the handler itself returns, so no more handlers run
 * at once than `concurrency`. Meanwhile the handler counts as lingering
 * (`slotUsage`, `ats_worker_handlers_lingering`), and one still running
 * LINGERING_WARN_MS after its abort is logged once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PrometheusMetrics } from '../adapters/metrics/prometheus.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { parseExposition } from '../tests/helpers/exposition.js';
import { isState, waitForJob } from '../tests/helpers/system.js';
import { workerHarness, type WorkerHarness } from '../tests/helpers/worker-harness.js';
import { HandlerRegistry } from './handlers.js';
import { silentLogger } from './logger.js';
import type { Clock, JobSpec, Logger } from './ports.js';
import { systemClock } from './system.js';
import { LINGERING_WARN_MS, type Worker } from './worker.js';

const spec = (type: string, o: Partial<JobSpec> = {}): JobSpec => ({
  type, payload: {}, queue: 'default', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000, priority: 0, ...o,
});

/**
 * The system clock, except that the wait before the lingering warning ends
 * only when the test calls `release()` (or is aborted); `held()`: waits held now.
 */
function warningClock(): { clock: Clock; release(): void; held(): number } {
  const held = new Set<() => void>();
  const clock: Clock = {
    now: () => systemClock.now(),
    sleep: (ms, signal) => {
      if (ms !== LINGERING_WARN_MS) return systemClock.sleep(ms, signal);
      return new Promise<void>((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const end = () => {
          held.delete(end);
          resolve();
        };
        held.add(end);
        signal?.addEventListener('abort', () => {
          held.delete(end);
          reject(signal.reason);
        }, { once: true });
      });
    },
  };
  return { clock, release: () => [...held].forEach((end) => end()), held: () => held.size };
}

async function until(ok: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), `${what} within ${ms} ms`);
}

interface Line {
  level: 'info' | 'warn';
  msg: string;
  fields: Record<string, unknown>;
}

/**
 * A worker of concurrency 1 whose `test.deaf` handler ignores its signal and
 * returns only when the test calls `letGo()`, and whose `test.next` handler
 * returns at once; the handlers started (job ids, in order) and the lines
 * logged; `lingeringGauge()` reads `ats_worker_handlers_lingering` as scraped.
 */
async function deafWorker() {
  const { clock, release, held } = warningClock();
  const lines: Line[] = [];
  const logger: Logger = {
    ...silentLogger,
    info: (msg, fields = {}) => void lines.push({ level: 'info', msg, fields }),
    warn: (msg, fields = {}) => void lines.push({ level: 'warn', msg, fields }),
  };
  let letGo!: () => void;
  const deaf = new Promise<void>((resolve) => (letGo = resolve));
  const started: string[] = [];
  const registry = new HandlerRegistry()
    .register('test.deaf', async (_p, ctx) => {
      started.push(ctx.jobId);
      await deaf; // its signal is never looked at
      return 'late';
    })
    .register('test.next', async (_p, ctx) => void started.push(ctx.jobId));
  const h: WorkerHarness = await workerHarness(registry);
  const worker: Worker = await h.worker('w1', { concurrency: 1, queues: ['default'] }, { clock, logger });
  const metrics = new PrometheusMetrics({ refreshMs: 0, defaultMetrics: false });
  metrics.watchWorker(worker);
  const lingeringGauge = async () =>
    parseExposition(await metrics.metrics()).samples.find((s) => s.name === 'ats_worker_handlers_lingering')?.value;
  const warnings = () => lines.filter((l) => l.level === 'warn' && /ignores its abort signal/.test(l.msg));
  return { h, worker, started, letGo, lines, warnings, releaseWarning: release, warningsHeld: held, lingeringGauge };
}

describe('worker: a handler that ignores its abort signal keeps its slot until it returns', () => {
  it('timed out: its FAILED is recorded at once, but the next handler starts only once it returned; warned once and gauged meanwhile', async () => {
    const t = await deafWorker();
    try {
      const first = await t.h.submit(spec('test.deaf', { timeoutMs: 100 }));
      const next = await t.h.submit(spec('test.next'));
      // The attempt ends at the timeout, as before: its outcome does not wait for the handler.
      const dead = await waitForJob(t.h.store, first, isState('dead'), 5000, 'dead of its timeout');
      assert.equal(dead.snapshot.context.lastError?.timedOut, true);
      assert.deepEqual(t.started, [first]);

      // The next dispatch was read, and waits for the slot the deaf handler still holds.
      await until(() => t.worker.slotUsage().waiting === 1 || t.started.includes(next), 'the next dispatch is read');
      await new Promise((r) => setTimeout(r, 100)); // a moment for it to start, were its slot free
      assert.deepEqual(t.started, [first], 'the next handler has not started beside the deaf one');
      assert.deepEqual(t.worker.slotUsage(), { busy: 1, free: 0, lingering: 1, waiting: 1 });
      assert.equal(await t.lingeringGauge(), 1);
      assert.equal((await t.h.store.getJob(next))?.snapshot.value, 'published', 'not claimed while no slot is free');

      assert.deepEqual(t.warnings(), [], 'not warned before LINGERING_WARN_MS');
      await until(() => t.warningsHeld() === 1, 'the wait before the warning runs');
      t.releaseWarning();
      await until(() => t.warnings().length === 1, 'the warning is logged');
      const [warning] = t.warnings();
      assert.equal(warning!.fields.jobId, first);
      assert.equal(warning!.fields.type, 'test.deaf');
      assert.equal(warning!.fields.attempt, 1);
      assert.equal(warning!.fields.abortedBy, 'timeout');
      assert.match(String(warning!.fields.reason), /timed out after 100 ms/);

      t.letGo();
      await waitForJob(t.h.store, next, isState('done'), 5000, 'done once the deaf handler returned');
      assert.deepEqual(t.started, [first, next]);
      await until(() => t.worker.slotUsage().busy === 0, 'the slot is free again');
      assert.equal(t.worker.slotUsage().lingering, 0);
      assert.equal(await t.lingeringGauge(), 0);
      assert.equal(t.warnings().length, 1, 'warned once');
      assert.ok(t.lines.some((l) => l.level === 'info' && /has returned; its slot is free again/.test(l.msg) && l.fields.jobId === first), 'its return is logged');
      assert.equal((await t.h.store.getJob(first))?.snapshot.value, 'dead', 'its late result changes nothing');
    } finally {
      t.letGo();
      await t.h.stop();
    }
  });

  it('cancelled: the next handler likewise waits for it; the warning names the cancel', async () => {
    const t = await deafWorker();
    try {
      const first = await t.h.submit(spec('test.deaf'));
      await until(() => t.started.includes(first), 'the deaf handler runs');
      assert.ok((await t.h.transitions.apply(first, { type: 'CANCEL', reason: 'not wanted' })).ok);
      await until(() => t.worker.slotUsage().lingering === 1, 'the cancel reached the handler\'s signal');
      assert.equal((await t.h.store.getJob(first))?.snapshot.value, 'cancelled');
      await until(() => t.worker.activeCount === 0, 'the attempt is over here');

      const next = await t.h.submit(spec('test.next'));
      await until(() => t.worker.slotUsage().waiting === 1 || t.started.includes(next), 'the next dispatch is read');
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(t.started, [first], 'the next handler has not started beside the cancelled one');
      assert.equal(await t.lingeringGauge(), 1);

      await until(() => t.warningsHeld() === 1, 'the wait before the warning runs');
      t.releaseWarning();
      await until(() => t.warnings().length === 1, 'the warning is logged');
      assert.equal(t.warnings()[0]!.fields.jobId, first);
      assert.equal(t.warnings()[0]!.fields.abortedBy, 'cancelled');
      assert.match(String(t.warnings()[0]!.fields.reason), /not wanted/);

      t.letGo();
      await waitForJob(t.h.store, next, isState('done'), 5000, 'done once the cancelled handler returned');
      assert.equal(await t.lingeringGauge(), 0);
    } finally {
      t.letGo();
      await t.h.stop();
    }
  });

  it('a handler that returns soon after its abort frees its slot then and is not warned of', async () => {
    const { clock, held } = warningClock();
    const lines: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (msg) => void lines.push(msg) };
    const registry = new HandlerRegistry()
      .register('test.polite', (_p, ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true })));
    const h = await workerHarness(registry);
    try {
      const worker = await h.worker('w1', { concurrency: 1, queues: ['default'] }, { clock, logger });
      const ids = [await h.submit(spec('test.polite', { timeoutMs: 50 })), await h.submit(spec('test.polite', { timeoutMs: 50 }))];
      for (const id of ids) await waitForJob(h.store, id, isState('dead'), 5000, 'dead of its timeout');
      await until(() => worker.slotUsage().busy === 0, 'the slot is free');
      assert.equal(worker.slotUsage().lingering, 0);
      assert.equal(held(), 0, 'no warning pending');
      assert.ok(!lines.some((l) => /ignores its abort signal/.test(l)), `logged: ${lines}`);
    } finally {
      await h.stop();
    }
  });

  it('stop() does not wait for a handler that outlived its attempt, nor does crash(); the slot stays taken while it runs', async () => {
    for (const end of ['stop', 'crash'] as const) {
      const t = await deafWorker();
      try {
        const first = await t.h.submit(spec('test.deaf', { timeoutMs: 50 }));
        await waitForJob(t.h.store, first, isState('dead'), 5000, 'dead of its timeout');
        await until(() => t.worker.slotUsage().lingering === 1, 'the handler lingers');
        const deadline = Date.now() + 5000;
        await (end === 'stop' ? t.worker.stop() : t.worker.crash());
        assert.ok(Date.now() < deadline, `${end}() returned`);
        assert.deepEqual(t.worker.slotUsage(), { busy: 1, free: 0, lingering: 1, waiting: 0 }, `${end}: the handler still runs`);
        if (end === 'crash') assert.equal(t.warningsHeld(), 0, 'a crashed worker warns of nothing more');
        // A stop says which handlers it leaves running (the exit that follows cuts them off); a crash says nothing.
        const left = t.lines.filter((l) => l.level === 'warn' && /stopped with handlers still running/.test(l.msg));
        if (end === 'crash') assert.deepEqual(left, []);
        else {
          assert.equal(left.length, 1, `logged: ${JSON.stringify(t.lines)}`);
          assert.equal(left[0]!.fields.count, 1);
          assert.deepEqual(left[0]!.fields.handlers, [{ jobId: first, type: 'test.deaf', attempt: 1, abortedBy: 'timeout' }]);
        }
      } finally {
        t.letGo();
        await t.h.stop();
      }
    }
  });
});
