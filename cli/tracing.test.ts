/** Which OTEL_* settings turn tracing on, and which a start refuses. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startTracing, tracingSettings } from './tracing.js';

const roles = ['api', 'worker'];

describe('tracingSettings', () => {
  it('is off without an exporter or an OTLP endpoint', () => {
    assert.deepEqual(tracingSettings({}, roles), { enabled: false });
    assert.deepEqual(tracingSettings({ OTEL_SERVICE_NAME: 'x', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }, roles), { enabled: false });
  });

  it('an OTLP endpoint turns the OTLP exporter on (http/protobuf, service ats-<roles>)', () => {
    for (const name of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) {
      assert.deepEqual(tracingSettings({ [name]: 'http://collector:4318' }, roles), {
        enabled: true, exporters: ['otlp'], protocol: 'http/protobuf', serviceName: 'ats-api-worker',
      });
    }
  });

  it('OTEL_TRACES_EXPORTER picks the exporters; none turns tracing off', () => {
    assert.deepEqual(tracingSettings({ OTEL_TRACES_EXPORTER: 'otlp' }, ['relay']), {
      enabled: true, exporters: ['otlp'], protocol: 'http/protobuf', serviceName: 'ats-relay',
    });
    assert.deepEqual(tracingSettings({ OTEL_TRACES_EXPORTER: 'console, otlp,console', OTEL_SERVICE_NAME: 'sched', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, roles), {
      enabled: true, exporters: ['console', 'otlp'], protocol: 'http/json', serviceName: 'sched',
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
  });

  it('startTracing starts nothing when tracing is off', async () => {
    assert.equal(await startTracing({ OTEL_SERVICE_NAME: 'x' }, roles), null);
    assert.equal(await startTracing({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }, roles), null);
  });
});
