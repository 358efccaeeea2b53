/**
 * The visualizer in a real browser: Debian's Chromium driven by playwright-core
 * against the real app on the embedded SQLite store. No worker runs, so
 * submitted jobs stay `pending` until the test moves them through the API.
 * Leaves a screenshot in test-artifacts/ui.png.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import websocket from '@fastify/websocket';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { machineGraph } from '../../machines/lifecycle.js';
import type { AppPlugin } from '../app.js';
import { startUiServer, type UiServer as Server } from '../../tests/helpers/ui-server.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCREENSHOT = join(ROOT, 'test-artifacts', 'ui.png');
const WAIT_MS = 10_000;

const startServer = (plugins: AppPlugin[]) => startUiServer({ listen: true, plugins });

async function launch(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/ensure-chromium.sh`);
  const profile = mkdtempSync(join(tmpdir(), 'ats-ui-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 960 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

async function rest<T = { id: string; state: string }>(server: Server, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(server.url + path, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`);
  return (await res.json()) as T;
}

const countOf = (page: Page, state: string) => page.locator(`[data-state="${state}"] [data-count]`);

/** Wait until the page shows `n` jobs in `state`. */
async function waitForCount(page: Page, state: string, n: number): Promise<void> {
  await page.waitForFunction(
    ([s, want]) => document.querySelector(`[data-state="${s}"] [data-count]`)?.textContent === String(want),
    [state, n] as const, { timeout: WAIT_MS },
  );
}

/** The state and edge the time-travel slider marks on the machine. */
async function highlighted(page: Page): Promise<{ state: string | null; edge: string | null }> {
  return page.evaluate(() => ({
    state: document.querySelector('[data-state].is-current')?.getAttribute('data-state') ?? null,
    edge: document.querySelector('[data-edge].is-taken')?.getAttribute('data-edge') ?? null,
  }));
}

// One browser for the file; each suite opens its own pages.
let browser: Awaited<ReturnType<typeof launch>>;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

describe('the visualizer at /ui, in Chromium', () => {
  let server: Server;
  let page: Page;
  const pageErrors: string[] = [];
  const jobs: string[] = [];

  before(async () => {
    server = await startServer([]);
    page = await browser.context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async () => {
    await page?.close();
    await server?.close();
  });

  test('GET / redirects to the page, which draws every state and edge of the machine', async () => {
    await page.goto(server.url + '/');
    assert.equal(new URL(page.url()).pathname, '/ui');
    const graph = machineGraph();
    await page.locator('[data-state]').first().waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('[data-state]').count(), graph.states.length);
    for (const st of graph.states) {
      await page.locator(`[data-state="${st.id}"]`).waitFor({ state: 'visible' });
      assert.equal(await page.locator(`[data-state="${st.id}"] .state-name`).textContent(), st.id);
    }
    for (const e of graph.edges) {
      assert.ok(await page.locator(`[data-edge="${e.from}-${e.event}-${e.to}"]`).count() >= 1, `edge ${e.from}-${e.event}-${e.to}`);
    }
    // A real layout: no two states overlap.
    const boxes = await page.locator('[data-state] .state-box').evaluateAll((els) => els.map((el) => el.getBoundingClientRect().toJSON()));
    for (const [i, a] of boxes.entries()) {
      for (const b of boxes.slice(i + 1)) {
        const apart = a.right <= b.left || b.right <= a.left || a.bottom <= b.top || b.bottom <= a.top;
        assert.ok(apart, `states overlap: ${JSON.stringify(a)} ${JSON.stringify(b)}`);
      }
    }
  });

  test('counts follow jobs submitted and cancelled through the API', async () => {
    await waitForCount(page, 'pending', 0);
    for (let i = 0; i < 3; i++) jobs.push((await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', payload: { n: i } })).id);
    await waitForCount(page, 'pending', 3);
    await rest(server, 'POST', `/v1/jobs/${jobs[0]}/cancel`);
    await waitForCount(page, 'cancelled', 1);
    await waitForCount(page, 'pending', 2);
    assert.equal(await countOf(page, 'done').textContent(), '0');
  });

  test('a job opened from the recent list shows its timeline; the slider walks it on the machine', async () => {
    const item = page.locator(`#recent-jobs li[data-job-id="${jobs[0]}"]`);
    await item.waitFor({ timeout: WAIT_MS });
    await item.click();
    const timeline = page.locator('#timeline li');
    await page.waitForFunction(() => document.querySelectorAll('#timeline li').length === 2, null, { timeout: WAIT_MS });
    assert.match((await timeline.nth(0).textContent()) ?? '', /SUBMITTED.*∅ → pending/);
    assert.match((await timeline.nth(1).textContent()) ?? '', /CANCEL.*pending → cancelled/);
    assert.equal(await page.locator('#cancel-btn').isDisabled(), true, 'a cancelled job cannot be cancelled');
    assert.equal(await page.locator('#redrive-btn').isEnabled(), true, 'a cancelled job can be redriven');

    // The slider starts at the last step.
    assert.deepEqual(await highlighted(page), { state: 'cancelled', edge: 'pending-CANCEL-cancelled' });
    await page.locator('#time-travel').focus();
    await page.keyboard.press('ArrowLeft');
    assert.deepEqual(await highlighted(page), { state: 'pending', edge: 'start-SUBMITTED-pending' });
    assert.match((await page.locator('#step-label').textContent()) ?? '', /step 1 of 2/);
    await page.keyboard.press('ArrowRight');
    assert.deepEqual(await highlighted(page), { state: 'cancelled', edge: 'pending-CANCEL-cancelled' });

    // Redrive from the page: a new run, back in pending.
    await page.locator('#redrive-btn').click();
    await page.waitForFunction(() => document.querySelectorAll('#timeline li').length === 3, null, { timeout: WAIT_MS });
    assert.deepEqual(await highlighted(page), { state: 'pending', edge: 'cancelled-REDRIVE-pending' });
    assert.equal(await page.locator('#cancel-btn').isEnabled(), true);
    assert.equal(await page.locator('#redrive-btn').isDisabled(), true);
    await waitForCount(page, 'cancelled', 0);
    await waitForCount(page, 'pending', 3);
  });

  test('the form submits a job and its payload shows as text, never as markup', async () => {
    await page.locator('#submit-type').fill('demo.echo');
    await page.locator('#submit-payload').fill('{"note": "<img src=x id=injected><b>bold</b>"}');
    await page.locator('#submit-form button[type=submit]').click();
    await waitForCount(page, 'pending', 4);
    await page.waitForFunction(() => document.querySelector('#job-payload')?.textContent?.includes('<b>bold</b>'), null, { timeout: WAIT_MS });
    assert.equal(await page.locator('#injected, #job-payload b').count(), 0);
    assert.match((await page.locator('#submit-status').textContent()) ?? '', /^Submitted [0-9A-Z]{26}$/);

    await page.locator('#submit-payload').fill('{not json');
    await page.locator('#submit-form button[type=submit]').click();
    await page.locator('#submit-status.error-note').waitFor({ timeout: WAIT_MS });
    assert.match((await page.locator('#submit-status').textContent()) ?? '', /not valid JSON/);
  });

  test('a job can be found by id; an unknown id says so', async () => {
    await page.locator('#job-search').fill(jobs[1]!);
    await page.locator('#job-search').press('Enter');
    await page.waitForFunction((id) => document.querySelector('#job-facts')?.textContent?.includes(id), jobs[1], { timeout: WAIT_MS });
    assert.equal(await page.locator('#timeline li').count(), 1);

    await page.locator('#job-search').fill('7ZZZZZZZZZZZZZZZZZZZZZZZZZ');
    await page.locator('#job-search').press('Enter');
    await page.locator('#inspector-error').getByText('ATS_ERR_JOB_NOT_FOUND').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#job-detail').isHidden(), true);
  });

  test('a link to /ui#<id> opens that job (screenshot: stepped back one step)', async () => {
    const fresh = await browser.context.newPage();
    fresh.on('pageerror', (err) => pageErrors.push(err.message));
    await fresh.goto(`${server.url}/ui#${jobs[0]}`);
    await fresh.waitForFunction(() => document.querySelectorAll('#timeline li').length === 3, null, { timeout: WAIT_MS });
    await fresh.locator(`#recent-jobs li[data-job-id="${jobs[0]}"][aria-current="true"]`).waitFor({ timeout: WAIT_MS });
    await fresh.locator('#time-travel').focus();
    await fresh.keyboard.press('ArrowLeft');
    await fresh.locator('#time-travel').blur();
    assert.deepEqual(await highlighted(fresh), { state: 'cancelled', edge: 'pending-CANCEL-cancelled' });
    assert.equal(await fresh.locator('#timeline li[aria-current="step"]').getAttribute('data-step'), '2');
    mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
    await fresh.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`screenshot: ${SCREENSHOT}`);
    await fresh.close();
  });

  test('no script error happened on the page', () => {
    assert.deepEqual(pageErrors, []);
  });
});

/**
 * A stand-in for `/v1/stream` speaking the stream protocol (README.md, "The stream"): answers `stats`
 * from the store every `everyMs`, and lets the test push `event` messages.
 */
function fakeStream(sockets: Set<{ send(data: string): void }>): AppPlugin {
  return async (app) => {
    await app.register(websocket);
    app.get('/v1/stream', { websocket: true }, (socket) => {
      let timer: NodeJS.Timeout | undefined;
      sockets.add(socket);
      socket.on('message', (raw: Buffer) => {
        const msg = JSON.parse(raw.toString()) as { op: string; everyMs?: number };
        if (msg.op === 'subscribe') socket.send(JSON.stringify({ kind: 'subscribed', cursor: 'c0' }));
        if (msg.op !== 'stats') return;
        const send = async () => {
          const res = await app.inject({ method: 'GET', url: '/v1/stats' });
          socket.send(JSON.stringify({ kind: 'stats', ...res.json(), at: new Date().toISOString() }));
        };
        clearInterval(timer);
        void send();
        if (msg.everyMs) timer = setInterval(() => void send(), Math.max(250, msg.everyMs));
      });
      socket.on('close', () => {
        clearInterval(timer);
        sockets.delete(socket);
      });
    });
  };
}

describe('the visualizer with the stream', () => {
  test('counts come over the stream and an event lights up its edge', async () => {
    const sockets = new Set<{ send(data: string): void }>();
    const server = await startServer([fakeStream(sockets)]);
    const page = await browser.context.newPage();
    try {
      await page.goto(server.url + '/ui');
      await page.locator('#live-mode[data-mode="stream"]').waitFor({ timeout: WAIT_MS });
      const job = await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', payload: {} });
      await waitForCount(page, 'pending', 1);

      const event = {
        kind: 'event', cursor: 'c1', jobId: job.id, seq: 2, type: 'PUBLISHED', from: 'pending', to: 'published',
        at: new Date().toISOString(), data: { attempt: 1 }, jobType: 'demo.echo', queue: 'default',
      };
      for (const s of sockets) s.send(JSON.stringify(event));
      await page.locator('[data-edge="pending-PUBLISHED-published"].flash').waitFor({ state: 'attached', timeout: WAIT_MS });
      // The highlight is brief.
      await page.locator('[data-edge="pending-PUBLISHED-published"].flash').waitFor({ state: 'detached', timeout: WAIT_MS });
    } finally {
      await page.close();
      await server.close();
    }
  });
});

describe('the visualizer with queues and types named after Object.prototype members', () => {
  test('counts them, and the page keeps submitting after its stats polls', async () => {
    const server = await startServer([]);
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    try {
      for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
        await rest(server, 'POST', '/v1/jobs', { type: name, queue: name, payload: {} });
      }
      await page.goto(server.url + '/ui');
      await waitForCount(page, 'pending', 4);
      // Polls of GET /v1/stats went on meanwhile; a submit from the page must still be accepted.
      await page.locator('#submit-type').fill('demo.echo');
      await page.locator('#submit-payload').fill('{}');
      await page.locator('#submit-form button[type=submit]').click();
      await waitForCount(page, 'pending', 5);
      assert.match((await page.locator('#submit-status').textContent()) ?? '', /^Submitted [0-9A-Z]{26}$/);
      assert.equal(await page.locator('#total-jobs').textContent(), '5 jobs');
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
      await server.close();
    }
  });
});
