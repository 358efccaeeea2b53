/**
 * compose()'s stop flushes the spans once the roles stopped, before the log and
 * the store close: the span of an attempt the shutdown interrupted reaches the
 * exporter within the process's shutdown deadline (the grace plus
 * SHUTDOWN_SLACK_MS, cli/start.ts), even when closing the store takes longer
 * than that (a stalled MySQL: its pool ends only once the query in flight has
 * timed out).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { compose, type System } from './compose.js';
import { compileConfig } from './config.js';
import { SHUTDOWN_SLACK_MS } from './start.js';
import { HandlerRegistry } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';
import { ATTR, TRACER_NAME } from '../engine/tracing.js';
import { FAST, isState, waitForJob } from '../tests/helpers/system.js';

/** A system composed with `deps` on a data folder of its own, removed once `run` ends. */
async function withSystem(prefix: string, deps: Parameters<typeof compose>[1], run: (system: System) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    await run(await compose(compileConfig({ ...FAST, dataDir: dir }, { hostname: 'test', pid: process.pid }), deps));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The store's close held until `release()`, as on a database that stopped answering; `closing` once the stop reached it. */
function holdStoreClose(system: System): { closing: boolean; release(): void } {
  const close = system.store.close.bind(system.store);
  let release = () => {};
  const closable = new Promise<void>((resolve) => (release = resolve));
  const held = { closing: false, release: () => release() };
  system.store.close = () => ((held.closing = true), closable.then(close));
  return held;
}

test('an attempt interrupted at shutdown: its span is exported before the shutdown deadline, though the store takes longer to close', async () => {
  // What reached the exporter (the SDK's in-memory exporter forgets its spans when shut down).
  const exported: ReadableSpan[] = [];
  const exporter: SpanExporter = {
    export: (spans, done) => { exported.push(...spans); done({ code: 0 }); },
    shutdown: async () => undefined,
  };
  // Spans wait in the batch until the shutdown flushes them, as with the SDK's 5 s default delay.
  const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 60_000 })] });
  const dir = mkdtempSync(join(tmpdir(), 'ats-shutdown-spans-'));
  const graceMs = 200;
  const config = compileConfig({ ...FAST, dataDir: dir, shutdownGraceMs: graceMs }, { hostname: 'test', pid: process.pid });
  // Runs until aborted: the shutdown interrupts it once the grace ran out.
  const registry = new HandlerRegistry().register('s.long', (_p, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)));
  const system = await compose(config, {
    registry, logger: silentLogger,
    tracing: { tracer: provider.getTracer(TRACER_NAME), reportTo: () => undefined, shutdown: () => provider.shutdown() },
  });
  const { url } = await system.start();
  const r = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 's.long', payload: {} }) });
  assert.equal(r.status, 201);
  const { id } = (await r.json()) as { id: string };
  await waitForJob(system.store, id, isState('running'));
  // The store's close outlasts the process's deadline.
  const store = holdStoreClose(system);
  const stopped = system.stop();
  try {
    const attempt = () => exported.filter((s) => s.attributes[ATTR.jobId] === id && s.name === 'process s.long');
    // The process exits at this deadline however far its stop got (cli/start.ts).
    const deadline = Date.now() + graceMs + SHUTDOWN_SLACK_MS;
    while (attempt().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(attempt().map((s) => s.attributes[ATTR.jobOutcome]), ['shutdown'], 'the attempt\'s span is exported before the process exits');
  } finally {
    store.release();
    await stopped;
    await provider.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a step of the stop that fails: the later steps still run, and the stop rejects naming it (the process exits 1)', async () => {
  await withSystem('ats-shutdown-failed-', {
    logger: silentLogger,
    tracing: { tracer: new NodeTracerProvider().getTracer(TRACER_NAME), reportTo: () => undefined, shutdown: async () => { throw new Error('exporter unreachable'); } },
  }, async (system) => {
    await system.start();
    const close = system.store.close.bind(system.store);
    let storeClosed = false;
    system.store.close = () => close().then(() => void (storeClosed = true));
    await assert.rejects(system.stop(), (err: AggregateError) => {
      assert.ok(err instanceof AggregateError);
      assert.equal(err.message, 'stop: tracing failed');
      assert.deepEqual(err.errors.map((e: Error) => e.message), ['exporter unreachable']);
      return true;
    });
    assert.ok(storeClosed, 'the store was closed after the failed step');
  });
});

test('a second stop gets the first one\'s outcome: nothing is closed twice', async () => {
  await withSystem('ats-shutdown-twice-', { logger: silentLogger }, async (system) => {
    await system.start();
    const close = system.store.close.bind(system.store);
    let closes = 0;
    system.store.close = () => (closes++, close());
    await system.stop();
    await system.stop();
    assert.equal(closes, 1, 'the store was closed once');
  });
});

test('stopProgress() names the part of the stop under way and how long it has waited on it, then each part done and how long it took; nothing before the stop', async () => {
  await withSystem('ats-shutdown-waiting-on-', { logger: silentLogger }, async (system) => {
    await system.start();
    assert.deepEqual(system.stopProgress().waitingOn, [], 'no stop under way');
    // The store's close waits, as on a database that stopped answering.
    const store = holdStoreClose(system);
    const stopped = system.stop();
    for (let i = 0; i < 500 && !store.closing; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(store.closing, 'the stop reached the store');
    await new Promise((r) => setTimeout(r, 50));
    const waiting = system.stopProgress().waitingOn;
    assert.deepEqual(waiting.map((w) => w.part), ['store']);
    assert.ok(waiting[0].ms >= 40, `waited ${waiting[0].ms} ms`);
    store.release();
    await stopped;
    const { waitingOn, took } = system.stopProgress();
    assert.deepEqual(waitingOn, [], 'the stop ended');
    // Every part, in order, the store among the last: no wait for a start, none being under way.
    assert.deepEqual(took.map((t) => t.part).slice(0, 2), ['starting', 'api']);
    assert.deepEqual(took.map((t) => t.part).slice(-2), ['store', 'data folder']);
    assert.ok(took.find((t) => t.part === 'store')!.ms >= 40, 'the store\'s close took as long as it was held');
  });
});
