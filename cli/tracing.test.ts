/** Which OTEL_* settings turn tracing on, and which a start refuses. */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { diag } from '@opentelemetry/api';
import { startOtlpReceiver } from '../tests/helpers/otlp-receiver.js';
import { DIAGNOSTIC_REPEAT_MS, EARLY_DIAGNOSTICS_KEPT, FLUSH_LIMIT_MS, startTracing, tracingSettings } from './tracing.js';

const roles = ['api', 'worker'];

describe('tracingSettings', () => {
  it('is off without an exporter or an OTLP endpoint', () => {
    assert.deepEqual(tracingSettings({}, roles), { enabled: false });
    assert.deepEqual(tracingSettings({ OTEL_SERVICE_NAME: 'x', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }, roles), { enabled: false });
  });

  it('an OTLP endpoint turns the OTLP exporter on (http/protobuf, service ats-<roles>)', () => {
    assert.deepEqual(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, roles), {
      enabled: true, exporters: ['otlp'], protocol: 'http/protobuf', url: 'http://collector:4318/v1/traces', serviceName: 'ats-api-worker',
    });
    // The signal's own endpoint is used as given, and wins.
    assert.deepEqual(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318/', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://b/traces' }, roles), {
      enabled: true, exporters: ['otlp'], protocol: 'http/protobuf', url: 'https://b/traces', serviceName: 'ats-api-worker',
    });
    assert.equal((tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318/base/' }, roles) as { url: string }).url, 'http://a:4318/base/v1/traces');
  });

  it('OTEL_TRACES_EXPORTER picks the exporters; none turns tracing off', () => {
    assert.deepEqual(tracingSettings({ OTEL_TRACES_EXPORTER: 'otlp' }, ['relay']), {
      enabled: true, exporters: ['otlp'], protocol: 'http/protobuf', url: undefined, serviceName: 'ats-relay',
    });
    assert.deepEqual(tracingSettings({ OTEL_TRACES_EXPORTER: 'console, otlp,console', OTEL_SERVICE_NAME: 'sched', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, roles), {
      enabled: true, exporters: ['console', 'otlp'], protocol: 'http/json', url: undefined, serviceName: 'sched',
    });
    assert.deepEqual(tracingSettings({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, roles), { enabled: false });
  });

  it('OTEL_SDK_DISABLED=true wins over everything', () => {
    assert.deepEqual(tracingSettings({ OTEL_SDK_DISABLED: 'TRUE', OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }, roles), { enabled: false });
    assert.equal(tracingSettings({ OTEL_SDK_DISABLED: 'false', OTEL_TRACES_EXPORTER: 'otlp' }, roles).enabled, true);
  });

  it('an exporter or protocol it cannot serve is ATS_ERR_CONFIG', () => {
    assert.throws(() => tracingSettings({ OTEL_TRACES_EXPORTER: 'zipkin' }, roles), (e: Error & { code?: string }) => e.code === 'ATS_ERR_CONFIG' && /zipkin/.test(e.message));
    assert.throws(() => tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, roles), (e: Error & { code?: string }) => e.code === 'ATS_ERR_CONFIG' && /grpc/.test(e.message));
    assert.throws(() => tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, roles), (e: Error & { code?: string }) => e.code === 'ATS_ERR_CONFIG' && /OTEL_EXPORTER_OTLP_ENDPOINT/.test(e.message));
    assert.throws(() => tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'not a url' }, roles), (e: Error & { code?: string }) => e.code === 'ATS_ERR_CONFIG');
  });

  it('a protocol it cannot serve is refused naming the variable it came from', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    const refusal = (env: Record<string, string>): string => {
      try {
        tracingSettings({ ...endpoint, ...env }, roles);
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    assert.equal(refusal({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }), 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc" is not served (http/protobuf, http/json)');
    assert.equal(refusal({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), 'OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not served (http/protobuf, http/json)');
    // The traces variable wins over the general one, in what is used and in what the error names.
    assert.equal(
      refusal({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }),
      'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc" is not served (http/protobuf, http/json)',
    );
  });

  it('startTracing starts nothing when tracing is off', async () => {
    assert.equal(await startTracing({ OTEL_SERVICE_NAME: 'x' }, roles), null);
    assert.equal(await startTracing({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }, roles), null);
  });
});

describe('startTracing', () => {
  it('exports to the endpoint over OTLP/HTTP: protobuf by default, JSON when asked; shutdown flushes', async () => {
    const receiver = await startOtlpReceiver();
    // Batches wait 10 minutes: only the shutdown's flush sends them. The SDK reads OTEL_BSP_* from
    // process.env itself, not from the variables given to startTracing (`ats start` gives process.env).
    const delay = process.env.OTEL_BSP_SCHEDULE_DELAY;
    process.env.OTEL_BSP_SCHEDULE_DELAY = '600000';
    try {
      const base = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
      for (const [env, contentType] of [[base, 'application/x-protobuf'], [{ ...base, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, 'application/json']] as const) {
        const before = receiver.requests.length;
        const tracing = await startTracing(env, ['relay', 'worker']);
        assert.ok(tracing);
        tracing.tracer.startSpan(`span over ${contentType}`).end();
        assert.equal(receiver.requests.length, before, 'nothing sent before the shutdown');
        await tracing.shutdown();
        const sent = receiver.requests.slice(before);
        assert.equal(sent.length, 1);
        assert.equal(sent[0]!.contentType, contentType);
        // Both encodings carry the strings as they are.
        assert.ok(sent[0]!.body.includes(`span over ${contentType}`));
        assert.ok(sent[0]!.body.includes('ats-relay-worker'), 'service.name defaults to ats-<roles>');
      }
      const [span] = receiver.spans;
      assert.equal(span?.name, 'span over application/json');
      assert.equal(span?.service, 'ats-relay-worker');
      assert.match(span!.traceId, /^[0-9a-f]{32}$/);
    } finally {
      if (delay === undefined) delete process.env.OTEL_BSP_SCHEDULE_DELAY;
      else process.env.OTEL_BSP_SCHEDULE_DELAY = delay;
      await receiver.close();
    }
  });

  it('a collector that refuses the spans is told in the process log (warn), not dropped without a word', async () => {
    // A port nothing listens on: a server opened and closed.
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    // Batches go every 50 ms, while the process runs (not only in the shutdown's flush, which rejects itself).
    const saved = { timeout: process.env.OTEL_EXPORTER_OTLP_TIMEOUT, delay: process.env.OTEL_BSP_SCHEDULE_DELAY };
    process.env.OTEL_EXPORTER_OTLP_TIMEOUT = '1000';
    process.env.OTEL_BSP_SCHEDULE_DELAY = '50';
    const lines: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
    const keep = (msg: string, fields?: Record<string, unknown>) => void lines.push({ msg, ...(fields ? { fields } : {}) });
    try {
      const tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` }, roles);
      assert.ok(tracing);
      tracing.reportTo({ debug: () => {}, info: () => {}, warn: keep, error: keep });
      tracing.tracer.startSpan('lost').end();
      const deadline = Date.now() + 10_000;
      while (!lines.some((l) => l.msg.startsWith('tracing:')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await tracing.shutdown().catch(() => undefined);
      assert.ok(lines.some((l) => l.msg.startsWith('tracing:')), `a tracing line was logged: ${JSON.stringify(lines)}`);
    } finally {
      for (const [name, value] of [['OTEL_EXPORTER_OTLP_TIMEOUT', saved.timeout], ['OTEL_BSP_SCHEDULE_DELAY', saved.delay]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('a collector that refuses every export is one readable warn line a minute (endpoint, error, no stack), the rest at debug', async () => {
    // The receiver answers 404 to any path but /v1/traces: the endpoint of a typo.
    const receiver = await startOtlpReceiver();
    const endpoint = `${receiver.url}/v1/trace`;
    const saved = process.env.OTEL_BSP_SCHEDULE_DELAY;
    process.env.OTEL_BSP_SCHEDULE_DELAY = '20';
    let now = 1_000_000;
    const warns: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
    const debugs: string[] = [];
    const keep = (msg: string, fields?: Record<string, unknown>) => void warns.push({ msg, ...(fields ? { fields } : {}) });
    try {
      const tracing = await startTracing({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: endpoint }, roles, () => now);
      assert.ok(tracing);
      tracing.reportTo({ debug: (m) => void debugs.push(m), info: () => {}, warn: keep, error: keep });
      // What the SDK said while it started (in this test process: its globals registered before) is not this test's.
      warns.length = 0;
      debugs.length = 0;
      // One span a batch; each export is refused. Waits for its line, at whichever level.
      const refused = async (lines: number) => {
        tracing.tracer.startSpan('lost').end();
        const deadline = Date.now() + 10_000;
        while (warns.length + debugs.length < lines && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        assert.equal(warns.length + debugs.length, lines, `lines so far: ${JSON.stringify({ warns, debugs })}`);
      };
      await refused(1);
      await refused(2);
      await refused(3);
      assert.deepEqual(warns, [{ msg: 'tracing: spans not exported: Not Found', fields: { endpoint, code: '404' } }]);
      assert.deepEqual(debugs, ['tracing: spans not exported: Not Found', 'tracing: spans not exported: Not Found']);
      now += DIAGNOSTIC_REPEAT_MS;
      await refused(4);
      assert.deepEqual(warns[1], { msg: 'tracing: spans not exported: Not Found', fields: { endpoint, code: '404', repeated: 2 } });
      await tracing.shutdown().catch(() => undefined);
    } finally {
      if (saved === undefined) delete process.env.OTEL_BSP_SCHEDULE_DELAY;
      else process.env.OTEL_BSP_SCHEDULE_DELAY = saved;
      await receiver.close();
    }
  });

  it('a bad setting the SDK reports while it starts is a tracing: line once the process has a log', async () => {
    // The SDK reads the sampler from process.env itself. "ratio" is a typo for traceidratio: the SDK
    // falls back to sampling everything and says so while the provider is built, before compose()
    // made the log that reportTo gets.
    const saved = process.env.OTEL_TRACES_SAMPLER;
    process.env.OTEL_TRACES_SAMPLER = 'ratio';
    const lines: string[] = [];
    const keep = (msg: string, fields?: Record<string, unknown>) => void lines.push(`${msg} ${JSON.stringify(fields ?? {})}`);
    try {
      const tracing = await startTracing({ OTEL_TRACES_EXPORTER: 'console' }, roles);
      assert.ok(tracing);
      // More than are kept arrive before the log: the first ones are written, the rest counted.
      for (let i = 0; i < EARLY_DIAGNOSTICS_KEPT + 5; i++) diag.warn(`early ${i}`);
      assert.equal(lines.length, 0, 'nothing is written before there is a log');
      tracing.reportTo({ debug: () => {}, info: () => {}, warn: keep, error: keep });
      diag.error('after the log');
      await tracing.shutdown();
      assert.match(lines[0] ?? '', /^tracing: OTEL_TRACES_SAMPLER value "ratio" invalid/);
      // The SDK may say more while it starts (in this test process, that its globals were registered
      // before): the first EARLY_DIAGNOSTICS_KEPT lines of all are kept, whatever said them.
      const kept = lines.slice(0, EARLY_DIAGNOSTICS_KEPT);
      const fromSdk = kept.filter((l) => !l.startsWith('tracing: early ')).length;
      assert.deepEqual(kept.slice(fromSdk), Array.from({ length: EARLY_DIAGNOSTICS_KEPT - fromSdk }, (_, i) => `tracing: early ${i} {}`));
      assert.equal(lines[EARLY_DIAGNOSTICS_KEPT], `tracing: ${fromSdk + 5} more SDK diagnostics before the log was ready were dropped {}`);
      assert.equal(lines.at(-1), 'tracing: after the log {}');
    } finally {
      if (saved === undefined) delete process.env.OTEL_TRACES_SAMPLER;
      else process.env.OTEL_TRACES_SAMPLER = saved;
    }
  });

  it('a collector that never answers holds the shutdown for FLUSH_LIMIT_MS at most, and says the spans were dropped', { timeout: 20_000 }, async () => {
    // Accepts connections and never answers: the exporter would wait out its timeout (10 s), then retry.
    const sockets = new Set<Socket>();
    const silent = createServer((s) => void sockets.add(s.on('error', () => {}))).listen(0, '127.0.0.1');
    await new Promise((r) => silent.once('listening', r));
    const lines: string[] = [];
    try {
      const tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(silent.address() as AddressInfo).port}` }, roles);
      assert.ok(tracing);
      tracing.reportTo({ debug: () => {}, info: () => {}, warn: (m) => void lines.push(m), error: (m) => void lines.push(m) });
      tracing.tracer.startSpan('unsent').end();
      // Without the limit the shutdown waits out the exporter's timeout (10 s) and says nothing.
      await tracing.shutdown();
      assert.ok(lines.some((l) => l.includes(`not sent within ${FLUSH_LIMIT_MS} ms`)), `said so: ${JSON.stringify(lines)}`);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});
