/**
 * With no exporter configured, tracing is off: `startTracing` starts nothing,
 * the roles get no tracer, no span is made (an in-memory SDK registered
 * globally here would keep any the engine started through the global API),
 * no trace context is stored with a job and no message carries a trace
 * header, even when the submit arrives with a `traceparent`. On the embedded
 * backends, in process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { SqliteStore } from '../../adapters/sqlite/index.js';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { startTracing } from '../../cli/tracing.js';
import { silentLogger } from '../../engine/logger.js';
import { TRACEPARENT_HEADER, TRACESTATE_HEADER } from '../../engine/messages.js';
import { TOPICS, type LogMessage } from '../../engine/ports.js';
import { FAST, isState, waitForJob } from '../helpers/system.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

let dir: string;
let system: System;
const published: LogMessage[] = [];

before(async () => {
  // The variables of a process with no exporter configured (OTEL_SERVICE_NAME alone turns nothing on).
  const tracing = await startTracing({ OTEL_SERVICE_NAME: 'ats-test', OTEL_TRACES_SAMPLER: 'always_on' }, ['api', 'relay', 'worker', 'timers']);
  assert.equal(tracing, null);
  dir = mkdtempSync(join(tmpdir(), 'ats-tracing-off-'));
  system = await compose(compileConfig({ ...FAST, dataDir: dir }, { hostname: 'test', pid: process.pid }), { logger: silentLogger });
  const publish = system.log.publish.bind(system.log);
  system.log.publish = async (messages) => {
    published.push(...messages);
    return publish(messages);
  };
  await system.start();
});
after(async () => {
  await system?.stop();
  await provider.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

it('no exporter: no spans, no stored context, no trace headers, even for a submit with a traceparent', async () => {
  const ids: string[] = [];
  for (const headers of [{}, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'vendor=1' }]) {
    const res = await system.app!.inject({
      method: 'POST', url: '/v1/jobs', headers,
      payload: { type: 'demo.fail', payload: { failTimes: 1 }, backoff: { kind: 'fixed', delayMs: 10 } },
    });
    assert.equal(res.statusCode, 201, res.body);
    ids.push((res.json() as { id: string }).id);
  }
  const batch = await system.app!.inject({ method: 'POST', url: '/v1/jobs/batch', payload: { jobs: [{ type: 'demo.echo', payload: 1 }] } });
  assert.equal(batch.statusCode, 200, batch.body);
  ids.push((batch.json() as { results: Array<{ id: string }> }).results[0]!.id);
  for (const id of ids) await waitForJob(system.store, id, isState('done'));

  assert.deepEqual(exporter.getFinishedSpans().map((s) => s.name), []);
  const dispatches = published.filter((m) => m.topic === TOPICS.dispatch);
  assert.equal(dispatches.length, 5, 'two attempts of each failing job, one of the batch job');
  for (const m of published) {
    assert.ok(!Object.hasOwn(m.headers, TRACEPARENT_HEADER) && !Object.hasOwn(m.headers, TRACESTATE_HEADER), JSON.stringify(m.headers));
  }
  const db = (system.store as SqliteStore).db;
  for (const id of ids) {
    const job = await system.store.getJob(id);
    assert.ok(job && !('traceContext' in job), 'the job keeps no trace context');
    const row = db.prepare('SELECT trace_context FROM jobs WHERE id = ?').get(id) as { trace_context: unknown };
    assert.equal(row.trace_context, null);
  }
});
