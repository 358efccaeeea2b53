// Dev helper: serve the app with some jobs and screenshot the graph at a given clip.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { createSqliteStore } from '/work/main/adapters/sqlite/index.ts';
import { mathRandom, systemClock, ulidIds } from '/work/main/engine/system.ts';
import { TransitionService } from '/work/main/engine/transitions.ts';
import { DEFAULT_BACKOFF } from '/work/main/machines/backoff.ts';
import { buildApp } from '/work/main/server/app.ts';
import { createUiPlugin } from '/work/main/server/ui/index.ts';
const dir = mkdtempSync(join(tmpdir(), 'uiw-'));
const store = createSqliteStore({ file: join(dir, 'a.sqlite') });
await store.migrate();
const transitions = new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds() });
const app = await buildApp({ transitions, store, clock: systemClock, checks: { database: () => store.ping() }, limits: { bodyLimitBytes: 1 << 20 },
  defaults: { queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30000, priority: 0 }, plugins: [createUiPlugin({ minify: false })] });
await app.listen({ host: '127.0.0.1', port: 0 });
const url = `http://127.0.0.1:${(app.server.address() as any).port}`;
for (let i = 0; i < 3; i++) await fetch(url + '/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'demo.fail', payload: { failTimes: i } }) });
const ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'uiw-p-')), { executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'], viewport: { width: Number(process.env.W ?? 1440), height: Number(process.env.H ?? 960) } });
const page = await ctx.newPage();
page.on('console', (m) => console.log('console:', m.type(), m.text()));
await page.goto(url + '/ui');
await page.locator('[data-state]').first().waitFor();
await page.waitForTimeout(1500);
if (process.env.CLICK) { await page.locator('#recent-jobs li[data-job-id]').first().click(); await page.waitForTimeout(500); }
await page.screenshot({ path: '/tmp/uiw/full.png', fullPage: true });
await page.locator('#machine').screenshot({ path: '/tmp/uiw/graph.png' });
await ctx.close(); await app.close(); await store.close();
