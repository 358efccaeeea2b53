/**
 * The ATS_METRICS_PORT server alone (node:http): /metrics with the source's
 * content type, /healthz, 404 elsewhere, 405 for other methods, 500 when rendering
 * fails, 421 to a Host its check refuses (on every path but /healthz); and the
 * setting itself: empty is off, a port is a port, junk is ATS_ERR_CONFIG. At
 * most METRICS_MAX_CONNECTIONS connections open at once.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { compileConfig } from '../../cli/config.js';
import { METRICS_MAX_CONNECTIONS, serveMetrics } from './http.js';

test('serves GET /metrics and nothing else', async () => {
  let fail = false;
  const server = await serveMetrics({
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    metrics: async () => {
      if (fail) throw new Error('registry broke');
      return 'ats_up 1\n';
    },
  }, 0, '127.0.0.1');
  try {
    const ok = await fetch(`${server.url}/metrics?x=1`);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(await ok.text(), 'ats_up 1\n');
    assert.equal((await fetch(`${server.url}/`)).status, 404);
    // A liveness probe's answer for processes without the API (relay, worker, timers).
    const alive = await fetch(`${server.url}/healthz`);
    assert.deepEqual([alive.status, await alive.json()], [200, { status: 'ok' }]);
    assert.equal((await fetch(`${server.url}/healthz`, { method: 'POST' })).status, 405);
    assert.equal((await fetch(`${server.url}/metrics`, { method: 'DELETE' })).status, 405);
    fail = true;
    const broken = await fetch(`${server.url}/metrics`);
    assert.equal(broken.status, 500);
    assert.match(await broken.text(), /registry broke/);
  } finally {
    await server.close();
  }
  await assert.rejects(fetch(`${server.url}/metrics`), 'closed');
});

test('a Host the check refuses gets 421 ATS_ERR_HOST_NOT_ALLOWED on every path but /healthz (GET and HEAD), and no metric', async () => {
  const seen: (string | undefined)[] = [];
  const server = await serveMetrics({ contentType: 'text/plain', metrics: async () => 'ats_up 1\n' }, 0, '127.0.0.1', (host) => {
    seen.push(host);
    return host === 'good.example' ? null : 'not this host';
  });
  const as = (host: string, path: string, method = 'GET') => new Promise<{ status: number; type: string | undefined; body: string }>((resolve, reject) => {
    request(`${server.url}${path}`, { method, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body }));
    }).on('error', reject).end();
  });
  try {
    assert.deepEqual(await as('good.example', '/metrics'), { status: 200, type: 'text/plain', body: 'ats_up 1\n' });
    const refused = await as('evil.example', '/metrics');
    assert.deepEqual([refused.status, refused.type, JSON.parse(refused.body)], [421, 'application/json; charset=utf-8', { code: 'ATS_ERR_HOST_NOT_ALLOWED', message: 'not this host' }]);
    assert.deepEqual(await as('evil.example', '/metrics', 'HEAD'), { status: 421, type: 'application/json; charset=utf-8', body: '' });
    assert.equal((await as('evil.example', '/other')).status, 421);
    assert.equal((await as('evil.example', '/metrics', 'DELETE')).status, 421);
    assert.deepEqual(await as('10.0.0.7:9464', '/healthz'), { status: 200, type: 'application/json; charset=utf-8', body: '{"status":"ok"}' });
    assert.equal(seen.includes('10.0.0.7:9464'), false, '/healthz is not checked');
  } finally {
    await server.close();
  }
});

test('at most METRICS_MAX_CONNECTIONS open at once: past it a new connection is closed as it comes; a scrape goes through once one closes', async () => {
  const server = await serveMetrics({ contentType: 'text/plain', metrics: async () => 'ats_up 1\n' }, 0, '127.0.0.1');
  const port = Number(new URL(server.url).port);
  const open: Socket[] = [];
  try {
    for (let i = 0; i < METRICS_MAX_CONNECTIONS; i++) {
      open.push(await new Promise<Socket>((resolve, reject) => { const s = connect(port, '127.0.0.1', () => resolve(s)); s.once('error', reject); }));
    }
    const over = connect(port, '127.0.0.1');
    over.on('error', () => undefined);
    const closed = await Promise.race([once(over, 'close').then(() => true), sleep(5000).then(() => false)]);
    assert.equal(closed, true, 'the connection past the cap is closed');
    open.pop()!.destroy();
    await sleep(100);
    const res = await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
  } finally {
    for (const s of open) s.destroy();
    await server.close();
  }
});

test('a port taken by another server fails the start', async () => {
  const first = await serveMetrics({ contentType: 'text/plain', metrics: async () => '' }, 0, '127.0.0.1');
  try {
    const port = Number(new URL(first.url).port);
    await assert.rejects(serveMetrics({ contentType: 'text/plain', metrics: async () => '' }, port, '127.0.0.1'), /EADDRINUSE/);
  } finally {
    await first.close();
  }
});

test('ATS_METRICS_PORT: empty is off, a number is the port, anything else is a config error', () => {
  assert.equal(compileConfig({}).metricsPort, null);
  assert.equal(compileConfig({ metricsPort: '' }).metricsPort, null);
  assert.equal(compileConfig({ metricsPort: '9464' }).metricsPort, 9464);
  assert.throws(() => compileConfig({ metricsPort: 'metrics' }), (e: Error & { code?: string }) => e.code === 'ATS_ERR_CONFIG' && /ATS_METRICS_PORT/.test(e.message));
  assert.throws(() => compileConfig({ metricsPort: '70000' }), /ATS_METRICS_PORT \(--metrics-port\)/);
});
