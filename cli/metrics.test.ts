/**
 * The ATS_METRICS_PORT server of a composed process keeps the API's Host
 * rule (docs/security.md, "The Host check"): `/metrics` answers only the
 * names the API port answers (ATS_ALLOWED_HOSTS; on loopback without them,
 * localhost and the loopback addresses), anything else is 421
 * ATS_ERR_HOST_NOT_ALLOWED, so a page rebinding its name to 127.0.0.1 reads
 * the queue names and counts on neither port. `/metrics` answers an IP-literal
 * Host too (Prometheus scrapes a pod by its IP; rebinding always names a
 * host name). `/healthz` answers any Host on both (orchestrators probe a pod
 * by its IP).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compose } from './compose.js';
import { compileConfig, type RawConfig } from './config.js';
import { HandlerRegistry } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';

/** GET `path` of `base` naming `host` in the Host header (fetch sends the URL's own). */
function getAs(base: string, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { headers: { host }, signal: AbortSignal.timeout(5000) }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject).end();
  });
}

/** Starts a composition (SQLite, every role, both ports random) with `settings`, and hands its two URLs to `check`. */
async function withPorts(settings: RawConfig, check: (api: string, metrics: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-metrics-host-'));
  try {
    const config = compileConfig({ dataDir: dir, port: '0', metricsPort: '0', logLevel: 'silent', advisor: 'off', ...settings }, { hostname: 't', pid: 1 });
    const system = await compose(config, { registry: new HandlerRegistry(), logger: silentLogger });
    try {
      const { url, metricsUrl } = await system.start();
      await check(url!, metricsUrl!);
    } finally {
      await system.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What each port answers `GET path` naming `host`: [status on the API port, status on the metrics port]. */
async function both(api: string, metrics: string, path: string, host: string): Promise<[number, number, string]> {
  const [a, m] = [await getAs(api, path, host), await getAs(metrics, path, host)];
  return [a.status, m.status, m.body];
}

test('on loopback without ATS_ALLOWED_HOSTS: the metrics port answers /metrics to localhost and IP addresses only, as the API port; /healthz to any Host', async () => {
  await withPorts({}, async (api, metrics) => {
    const port = new URL(metrics).port;
    for (const host of ['localhost', `localhost:${port}`, `127.0.0.1:${port}`, '[::1]']) {
      const [onApi, onMetrics, text] = await both(api, metrics, '/metrics', host);
      assert.deepEqual([onApi, onMetrics], [200, 200], host);
      assert.match(text, /^ats_/m, host);
    }
    for (const host of ['evil.example', `evil.example:${port}`, 'localhost.evil.example']) {
      const [onApi, onMetrics, body] = await both(api, metrics, '/metrics', host);
      assert.deepEqual([onApi, onMetrics], [421, 421], host);
      assert.equal(JSON.parse(body).code, 'ATS_ERR_HOST_NOT_ALLOWED', host);
      assert.doesNotMatch(body, /ats_|evil/, `${host}: no metric, and the Host is not echoed`);
    }
    // An IP-literal Host is a scrape by address, which rebinding cannot produce.
    assert.deepEqual((await both(api, metrics, '/metrics', '10.1.2.3:9464')).slice(0, 2), [200, 200]);
    // Any path but /healthz: a foreign Host learns nothing of what this port serves.
    assert.equal((await getAs(metrics, '/nothing', 'evil.example')).status, 421);
    const alive = await getAs(metrics, '/healthz', '10.1.2.3:9464');
    assert.deepEqual([alive.status, JSON.parse(alive.body)], [200, { status: 'ok' }]);
    assert.deepEqual((await both(api, metrics, '/healthz', 'evil.example')).slice(0, 2), [200, 200]);
  });
});

test('with ATS_ALLOWED_HOSTS: the metrics port answers /metrics to the listed names only, the same list as the API port', async () => {
  await withPorts({ allowedHosts: 'ats.example.com, [::1]', auth: 'off' }, async (api, metrics) => {
    for (const host of ['ats.example.com', 'ATS.example.com:9464', '[::1]:80']) {
      assert.deepEqual((await both(api, metrics, '/metrics', host)).slice(0, 2), [200, 200], host);
    }
    for (const host of ['localhost', 'evil.example']) {
      assert.deepEqual((await both(api, metrics, '/metrics', host)).slice(0, 2), [421, 421], host);
    }
    assert.deepEqual((await both(api, metrics, '/healthz', 'evil.example')).slice(0, 2), [200, 200]);
  });
});

test('with ATS_ALLOWED_HOSTS: /metrics on both ports answers any IP-literal Host too (Prometheus scrapes a pod by its IP); a name that is not listed, or only looks like an address, is still 421', async () => {
  await withPorts({ allowedHosts: 'ats.example.com', auth: 'off' }, async (api, metrics) => {
    for (const host of ['10.1.2.3:9464', '10.1.2.3', '[fd00::1]:9464', '[FD00::1]', '127.0.0.1']) {
      const [onApi, onMetrics, text] = await both(api, metrics, '/metrics', host);
      assert.deepEqual([onApi, onMetrics], [200, 200], host);
      assert.match(text, /^ats_/m, host);
    }
    for (const host of ['evil.example', 'evil.example:9464', '10.1.2.3.evil.example', '10.1.2.3.evil.example:9464', '1.2.3', '1.2.3:9464', '010.1.2.3', '256.1.2.3', '[10.1.2.3]:9464', 'fd00::1', '[fd00::g]']) {
      const [onApi, onMetrics, body] = await both(api, metrics, '/metrics', host);
      assert.deepEqual([onApi, onMetrics], [421, 421], host);
      assert.equal(JSON.parse(body).code, 'ATS_ERR_HOST_NOT_ALLOWED', host);
    }
    // The API's other routes keep their rule: an address that is not listed is refused there.
    assert.equal((await getAs(api, '/v1/jobs', '10.1.2.3:3000')).status, 421);
    assert.equal((await getAs(api, '/v1/jobs', '[fd00::1]:3000')).status, 421);
  });
});
