/** Which OTEL_* settings turn tracing on, and which a start refuses. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startOtlpReceiver } from '../tests/helpers/otlp-receiver.js';
import { startTracing, tracingSettings } from './tracing.js';

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

  it('startTracing starts nothing when tracing is off', async () => {
    assert.equal(await startTracing({ OTEL_SERVICE_NAME: 'x' }, roles), null);
    assert.equal(await startTracing({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }, roles), null);
  });
});

describe('startTracing', () => {
  it('exports to the endpoint over OTLP/HTTP: protobuf by default, JSON when asked; shutdown flushes', async () => {
    const receiver = await startOtlpReceiver();
    try {
      // Batches wait 10 minutes: only the shutdown's flush sends them.
      const base = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '600000' };
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
      await receiver.close();
    }
  });
});
