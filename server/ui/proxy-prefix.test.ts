/**
 * The console and the API docs behind a reverse proxy that serves the server
 * under a path prefix and strips it (tests/helpers/prefix-proxy.ts, as nginx's
 * `location /scheduler/ { proxy_pass http://server/; }`), in Chromium: every
 * request the pages make, the stream's upgrade included, stays under the
 * prefix, and the pages work.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { compose, type System } from '../../cli/compose.js';
import { compileConfig } from '../../cli/config.js';
import { silentLogger } from '../../engine/logger.js';
import { startPrefixProxy, type PrefixProxy } from '../../tests/helpers/prefix-proxy.js';

const CHROMIUM = '/usr/bin/chromium';
const dataDir = mkdtempSync(join(tmpdir(), 'ats-ui-prefix-'));
let system: System;
let proxy: PrefixProxy;
let browser: Browser;

before(async () => {
  const config = compileConfig({ dataDir, port: 0, logLevel: 'silent', timersPollMs: 50, relayPollMs: 20, shutdownGraceMs: 500 }, { hostname: 'test', pid: process.pid });
  system = await compose(config, { logger: silentLogger });
  const { url } = await system.start();
  assert.ok(url);
  proxy = await startPrefixProxy({ host: '127.0.0.1', port: Number(new URL(url).port) }, '/scheduler');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/ensure-chromium.sh`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await system?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

test('under a stripped path prefix: / leads to the console, which reads the API and the stream under the prefix; its docs link and "Try it out" too', async () => {
  const page = await browser.newPage();
  const requests: string[] = [];
  const failed: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('websocket', (ws) => requests.push(ws.url()));
  page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
  page.on('pageerror', (err) => failed.push(`uncaught: ${err.message}`));

  await page.goto(`${proxy.url}/`);
  assert.equal(page.url(), `${proxy.url}/ui`);
  await page.waitForFunction(() => document.querySelectorAll('#machine *').length > 0, null, { timeout: 10_000 });
  // The panels that read their own routes (workers, limits, schedules) answer: no 404 hides them.
  await page.waitForFunction(() => document.querySelector('#live-mode')?.getAttribute('data-mode') === 'stream', null, { timeout: 10_000 });
  await page.waitForLoadState('networkidle');
  for (const path of ['/v1/workers', '/v1/limits', '/v1/schedules', '/v1/stream']) {
    assert.ok(requests.some((u) => new URL(u).pathname === `/scheduler${path}`), `${path}: ${requests.join(' ')}`);
  }

  await page.click('a:text("API docs")');
  const op = page.locator('#operations-health-healthz');
  await op.click();
  await op.locator('.try-out__btn').click();
  await op.locator('.execute').click();
  assert.equal((await op.locator('.live-responses-table tbody .response-col_status').first().textContent())?.trim(), '200');
  assert.equal(new URL(page.url()).pathname, '/scheduler/docs/');

  assert.deepEqual(proxy.outside, []);
  assert.deepEqual(requests.filter((u) => !new URL(u).pathname.startsWith('/scheduler/')), []);
  assert.deepEqual(failed, []);
  await page.close();
});
