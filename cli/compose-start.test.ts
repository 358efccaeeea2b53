/**
 * How a composed process starts: a data folder another process holds, or a
 * port that cannot be bound, fails the start before any role runs (the
 * folder before any port is bound, the api's port before the store is even
 * migrated), so a second `npm start` on a data folder a running process
 * serves writes nothing into its jobs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compose } from './compose.js';
import { compileConfig } from './config.js';
import type { AtsError } from '../engine/errors.js';
import { HandlerRegistry } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';
import { freePort } from '../tests/helpers/ports.js';

test('a second start on the data folder a running process holds (and on its port) fails before it writes: no re-dispatch, no claim of the running process\'s jobs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-second-start-'));
  const config = (workerId: string, port: number) =>
    compileConfig({ dataDir: dir, port, logLevel: 'silent', advisor: 'off', concurrency: 1, workerId, shutdownGraceMs: 300 }, { hostname: 't', pid: 1 });
  // One handler runs at a time and holds on until stopped: the other jobs stay dispatched, waiting.
  const holding = new HandlerRegistry();
  holding.register('hold', async (_payload, ctx) => {
    await new Promise((r) => ctx.signal.addEventListener('abort', r));
    throw new Error('stopped');
  });
  const first = await compose(config('first', 0), { registry: holding, logger: silentLogger });
  try {
    const { url } = await first.start();
    const submitted = await first.transitions.submitMany(Array.from({ length: 20 }, (_, i) => ({
      type: 'hold', payload: { i }, queue: 'default', maxAttempts: 1, backoff: { kind: 'fixed', delayMs: 1 } as const, timeoutMs: 600_000, priority: 0,
    })));
    const ids = submitted.map((r) => (r.ok ? r.job.id : assert.fail('submit refused')));
    const states = async () => Promise.all(ids.map(async (id) => (await first.store.getJob(id))!.snapshot.value));
    for (let i = 0; i < 100 && (await states()).some((s) => s === 'pending'); i++) await new Promise((r) => setTimeout(r, 50));
    const events = async () => (await Promise.all(ids.map((id) => first.store.getEvents(id, 0)))).flat().length;
    const before = await events();

    // The folder is refused before the api's port is bound, and that before the store is migrated.
    await assert.rejects(compose(config('second', Number(new URL(url!).port)), { registry: holding, logger: silentLogger }), (e: AtsError) =>
      e.code === 'ATS_ERR_CONFIG' && e.message.startsWith(`ATS_DATA_DIR (--data-dir): ${dir} is in use by another scheduler (pid ${process.pid} `));
    assert.equal(await events(), before, 'the failed start wrote events into the running process\'s jobs');
  } finally {
    await first.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a composition that fails after the api port was bound (a plugin that throws) frees the port: a second one starts on it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-failed-compose-'));
  try {
    const port = await freePort();
    const metricsPort = await freePort();
    const config = compileConfig({ dataDir: dir, port, metricsPort, logLevel: 'silent', advisor: 'off' }, { hostname: 't', pid: 1 });
    const broken = async () => {
      throw new Error('the plugin cannot register');
    };
    await assert.rejects(compose(config, { registry: new HandlerRegistry(), logger: silentLogger, plugins: [broken] }), /the plugin cannot register/);
    // Nothing holds the port (nor ATS_METRICS_PORT's, bound before it): a second composition on them starts.
    const again = await compose(config, { registry: new HandlerRegistry(), logger: silentLogger });
    try {
      const { url, metricsUrl } = await again.start();
      assert.equal(new URL(url!).port, String(port));
      assert.equal(new URL(metricsUrl!).port, String(metricsPort));
    } finally {
      await again.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
