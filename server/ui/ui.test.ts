/**
 * The visualizer in a real browser: Debian's Chromium driven by playwright-core.
 * The first suites run the app on the embedded SQLite store with no worker, so
 * submitted jobs stay `pending` until the test moves them through the API; the
 * operator console's suite runs a whole embedded scheduler (every role in this
 * process, the demo handlers) so jobs really run, fail, die and are redriven;
 * the progress suite another one, with a handler that reports progress when
 * the test says so.
 * Every page must log no console error and throw nothing, except the HTTP
 * errors a test provokes on purpose (a 409, a 404), which it names.
 * Screenshots go to test-artifacts/ui/*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import websocket from '@fastify/websocket';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ulid } from 'ulid';
import { compose, type System } from '../../cli/compose.js';
import { newApiKey } from '../../engine/auth.js';
import { compileConfig } from '../../cli/config.js';
import { HandlerRegistry, registerDemoHandlers } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import { machineGraph } from '../../machines/lifecycle.js';
import type { AppPlugin } from '../app.js';
import type { JobDetail, WorkflowView } from '../schemas.js';
import * as saga from '../../examples/order-saga.js';
import { startUiServer, type UiServer as Server } from '../../tests/helpers/ui-server.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHOTS = join(ROOT, 'test-artifacts', 'ui');
const WAIT_MS = 10_000;

async function screenshot(page: Page, name: string, opts: { fullPage?: boolean; selector?: string } = {}): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  const path = join(SHOTS, `${name}.png`);
  if (opts.selector) await page.locator(opts.selector).screenshot({ path });
  else await page.screenshot({ path, fullPage: opts.fullPage ?? true });
  console.log(`screenshot: ${path}`);
}

/**
 * Console errors and uncaught exceptions of a page. Chromium logs every HTTP
 * error answer as a console error ("Failed to load resource: ... 409"): a test
 * that provokes one names it with `allow`; `GET /v1/stats/edges`,
 * `GET /v1/schedules`, `GET /v1/workers`, `GET /v1/limits` and `GET /v1/workflows` answering 404 (a
 * server without the metrics, an app built without the schedules, the worker
 * registry, the limits or workflows) are always allowed, and on a server without
 * the stream (`withoutStream`) the failed WebSocket handshakes.
 */
function watchConsole(page: Page, opts: { withoutStream?: boolean } = {}): { errors: string[]; allow(pattern: RegExp): void } {
  const errors: string[] = [];
  const allowed: RegExp[] = [
    /404 \(Not Found\) @ \S+\/v1\/stats\/edges$/, /404 \(Not Found\) @ \S+\/v1\/schedules$/, /404 \(Not Found\) @ \S+\/v1\/workers$/,
    /404 \(Not Found\) @ \S+\/v1\/limits$/, /404 \(Not Found\) @ \S+\/v1\/workflows\?limit=\d+$/,
  ];
  // A server without the stream: the page's tries to open it fail (and it polls instead).
  if (opts.withoutStream) allowed.push(/^WebSocket connection to '\S+\/v1\/stream' failed: .*Unexpected response code: 404 @ /);
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = `${msg.text()} @ ${msg.location().url}`;
    if (!allowed.some((r) => r.test(text))) errors.push(text);
  });
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  return { errors, allow: (pattern) => allowed.push(pattern) };
}

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
  let consoleOf: ReturnType<typeof watchConsole>;
  const freshErrors: string[] = [];
  const jobs: string[] = [];

  before(async () => {
    server = await startServer([]);
    page = await browser.context.newPage();
    consoleOf = watchConsole(page, { withoutStream: true });
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

  test('a job opened from the job list shows its timeline; the slider walks it on the machine', async () => {
    const item = page.locator(`#job-rows tr[data-job-id="${jobs[0]}"]`);
    await item.waitFor({ timeout: WAIT_MS });
    // Full ids, and dates as well as times.
    assert.equal(await item.locator('.job-id').textContent(), jobs[0]);
    assert.match((await item.locator('time').first().textContent()) ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);
    await item.locator('.job-id').click();
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

  test('the schedules panel says so when the server has no GET /v1/schedules', async () => {
    await page.locator('#schedules-note').getByText('Not available').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#schedule-rows tr').count(), 0);
  });

  test('the limits panel says so when the server has no GET /v1/limits', async () => {
    await page.locator('#limits-note').getByText('Not available').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#limit-rows tr').count(), 0);
  });

  test('the workers panel says so when the server has no GET /v1/workers; no unserved warning shows', async () => {
    await page.locator('#presence-note').getByText('Not available').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#presence-rows tr').count(), 0);
    assert.equal(await page.locator('#unserved-banner').isHidden(), true);
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

    // JSON.parse would have sent 9007199254740992: the form refuses it before sending ("In the payload";
    // the server's refusal would say "In the request body"), naming the number.
    await page.locator('#submit-payload').fill('{"orderId": 9007199254740993}');
    await page.locator('#submit-form button[type=submit]').click();
    await page.waitForFunction(() => document.querySelector('#submit-status')?.textContent?.includes('9007199254740993'), null, { timeout: WAIT_MS });
    assert.match((await page.locator('#submit-status').textContent()) ?? '', /^In the payload, the integer 9007199254740993 .*Send it as a string$/);

    // JSON.parse reads 1e400 as Infinity, which JSON.stringify would send as null: refused before sending too.
    const before = (await rest<{ total: number }>(server, 'GET', '/v1/stats')).total;
    await page.locator('#submit-payload').fill('{"amount": 1e400}');
    await page.locator('#submit-form button[type=submit]').click();
    await page.waitForFunction(() => document.querySelector('#submit-status')?.textContent?.includes('out of range'), null, { timeout: WAIT_MS });
    assert.match((await page.locator('#submit-status').textContent()) ?? '', /^The payload holds a number out of range: JSON\.parse reads it as Infinity/);
    assert.equal((await rest<{ total: number }>(server, 'GET', '/v1/stats')).total, before, 'no job written');
  });

  test('a job can be found by id; an unknown id says so', async () => {
    await page.locator('#job-search').fill(jobs[1]!);
    await page.locator('#job-search').press('Enter');
    await page.waitForFunction((id) => document.querySelector('#job-facts')?.textContent?.includes(id), jobs[1], { timeout: WAIT_MS });
    assert.equal(await page.locator('#timeline li').count(), 1);

    consoleOf.allow(/404 \(Not Found\) @ \S+\/v1\/jobs\/7Z{25}$/);
    await page.locator('#job-search').fill('7ZZZZZZZZZZZZZZZZZZZZZZZZZ');
    await page.locator('#job-search').press('Enter');
    await page.locator('#inspector-error').getByText('ATS_ERR_JOB_NOT_FOUND').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#job-detail').isHidden(), true);
  });

  test('a job list that cannot be read says so in place of the rows of other filters, and comes back by itself', async () => {
    const fresh = await browser.context.newPage();
    const freshConsole = watchConsole(fresh, { withoutStream: true });
    freshConsole.allow(/400 \(Bad Request\) @ \S+\/v1\/jobs\?/);
    freshConsole.allow(/503 \(Service Unavailable\) @ \S+\/v1\/jobs\?/);
    await fresh.goto(`${server.url}/ui`);
    await fresh.locator('#job-rows tr[data-job-id]').first().waitFor({ timeout: WAIT_MS });
    const shown = () => fresh.evaluate(() => ({
      rows: document.querySelectorAll('#job-rows tr[data-job-id]').length,
      note: document.querySelector('#job-rows .empty-note')?.textContent ?? '',
      status: document.querySelector('#job-list-status')?.textContent ?? '',
    }));

    // Filters the server refuses (400): the rows of the filters before are not left under them.
    await fresh.locator('#filter-type').fill('a b');
    await fresh.locator('#job-filters button[type=submit]').click();
    await fresh.locator('#job-list-status').getByText('ATS_ERR_VALIDATION').waitFor({ timeout: WAIT_MS });
    let now = await shown();
    assert.equal(now.rows, 0, 'no row of the filters before');
    assert.doesNotMatch(now.note, /No job matches/, 'a list not read is not said empty');

    // The database gone (503) when the filters are cleared; then back: the list is read again without a click.
    let down = true;
    await fresh.route((url) => url.pathname === '/v1/jobs', (route) => (down
      ? route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' }) })
      : route.continue()));
    await fresh.locator('#filter-type').fill('');
    await fresh.locator('#job-filters button[type=submit]').click();
    await fresh.locator('#job-list-status').getByText('ATS_ERR_STORE_UNAVAILABLE').waitFor({ timeout: WAIT_MS });
    now = await shown();
    assert.equal(now.rows, 0);
    down = false;
    await fresh.locator('#job-rows tr[data-job-id]').first().waitFor({ timeout: WAIT_MS });
    now = await shown();
    assert.equal(now.status, '', 'the error goes once the list is read');
    assert.ok(now.rows >= 4);
    freshErrors.push(...freshConsole.errors);
    await fresh.close();
  });

  test('the relay backlog says a failed read of GET /v1/stats/outbox as such, not as a server without it', async () => {
    const fresh = await browser.context.newPage();
    const freshConsole = watchConsole(fresh, { withoutStream: true });
    freshConsole.allow(/503 \(Service Unavailable\) @ \S+\/v1\/stats\/outbox$/);
    let down = true;
    await fresh.route((url) => url.pathname === '/v1/stats/outbox', (route) => (down
      ? route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' }) })
      : route.continue()));
    await fresh.goto(`${server.url}/ui`);
    // The first read failed: the rows stay unknown, and the error says why.
    await fresh.waitForFunction(() => document.querySelector('[data-backlog="outbox"]')?.textContent !== '…'
      || document.querySelector('[data-backlog="outbox-error"]'), null, { timeout: WAIT_MS });
    assert.equal(await fresh.locator('[data-backlog="outbox"]').textContent(), '…', 'not "not available"');
    assert.match((await fresh.locator('[data-backlog="outbox-error"]').textContent()) ?? '', /ATS_ERR_STORE_UNAVAILABLE/);
    down = false;
    await fresh.waitForFunction(() => /^\d+$/.test(document.querySelector('[data-backlog="outbox"]')?.textContent ?? ''), null, { timeout: 15_000 });
    assert.equal(await fresh.locator('[data-backlog="outbox-error"]').count(), 0, 'the error goes at the next read that answers');
    freshErrors.push(...freshConsole.errors);
    await fresh.close();
  });

  test('a workflow instance that waits: its row\'s "last step" moves on every second, though the list is the same', async () => {
    const fresh = await browser.context.newPage();
    const freshConsole = watchConsole(fresh, { withoutStream: true });
    const at = (ms: number) => new Date(Date.now() - ms).toISOString();
    const instance = {
      id: '01M91YEDV5XZ8B9B6M9ED4MZKN', name: 'order.fulfil', definitionVersion: 1, version: 2, status: 'active', value: { fulfilling: { stock: 'reserving' } },
      context: {}, input: {}, output: null, error: null, children: [], timers: [], accepts: [], idempotencyKey: null,
      createdAt: at(4000), updatedAt: at(3000),
    };
    // GET /v1/workflows answering the same page at each read (the stand-in's; this app has no workflows).
    await fresh.route((url) => url.pathname === '/v1/workflows', (route) => route.fulfill({
      status: 200, contentType: 'application/json', body: JSON.stringify({ workflows: [instance], nextCursor: null }),
    }));
    await fresh.goto(`${server.url}/ui`);
    const time = fresh.locator(`#workflow-rows tr[data-workflow-id="${instance.id}"] time`);
    await time.waitFor({ timeout: WAIT_MS });
    const first = (await time.textContent()) ?? '';
    assert.match(first, /^\d(\.\d)? s ago$/);
    const seconds = (text: string) => Number(/^([\d.]+) s ago$/.exec(text)?.[1]);
    await fresh.waitForFunction(([sel, was]) => {
      const m = /^([\d.]+) s ago$/.exec(document.querySelector(sel)?.textContent ?? '');
      return m !== null && Number(m[1]) >= was + 2;
    }, [`#workflow-rows tr[data-workflow-id="${instance.id}"] time`, seconds(first)] as const, { timeout: WAIT_MS });
    freshErrors.push(...freshConsole.errors);
    await fresh.close();
  });

  test('a delayed job\'s due time counts down in the inspector, though the job does not change', async () => {
    const delayed = await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', payload: {}, runAt: new Date(Date.now() + 30_000).toISOString() });
    const fresh = await browser.context.newPage();
    const freshConsole = watchConsole(fresh, { withoutStream: true });
    await fresh.goto(`${server.url}/ui#${delayed.id}`);
    const due = fresh.locator('#job-facts [data-fact="due"] dd');
    await due.waitFor({ timeout: WAIT_MS });
    const left = async () => Number(/\(in ([\d.]+) s\)$/.exec((await due.textContent()) ?? '')?.[1]);
    const first = await left();
    assert.ok(first > 20 && first <= 30, `due in ${first} s`);
    await fresh.waitForFunction((was) => {
      const m = /\(in ([\d.]+) s\)$/.exec(document.querySelector('#job-facts [data-fact="due"] dd')?.textContent ?? '');
      return m !== null && Number(m[1]) <= was - 2;
    }, first, { timeout: WAIT_MS });
    await rest(server, 'POST', `/v1/jobs/${delayed.id}/cancel`); // out of the later tests' counts
    freshErrors.push(...freshConsole.errors);
    await fresh.close();
  });

  test('a job deleted while it is open: the inspector says it is gone and offers no action on it', async () => {
    const gone = await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', payload: {} });
    await rest(server, 'POST', `/v1/jobs/${gone.id}/cancel`);
    const fresh = await browser.context.newPage();
    const freshConsole = watchConsole(fresh, { withoutStream: true });
    freshConsole.allow(new RegExp(`404 \\(Not Found\\) @ \\S+/v1/jobs/${gone.id}$`));
    await fresh.goto(`${server.url}/ui#${gone.id}`);
    await fresh.locator('#redrive-btn:enabled').waitFor({ timeout: WAIT_MS });
    const res = await fetch(`${server.url}/v1/jobs/${gone.id}`, { method: 'DELETE' });
    assert.equal(res.status, 204);
    // The counts move (polling): the job is read again, and is not found.
    await fresh.locator('#inspector-error').getByText('ATS_ERR_JOB_NOT_FOUND').waitFor({ timeout: WAIT_MS });
    assert.equal(await fresh.locator('#job-detail').isHidden(), true, 'no picture of a job that is gone, nor its Redrive button');
    assert.equal(await fresh.locator('[data-state].is-current').count(), 0, 'nor its step on the machine');
    freshErrors.push(...freshConsole.errors);
    await fresh.close();
  });

  test('a Cancel the server refuses: its error stays while other jobs move the counts and the job is read again', async () => {
    const job = await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', payload: {} });
    const fresh = await browser.context.newPage();
    const freshConsole = watchConsole(fresh, { withoutStream: true });
    freshConsole.allow(new RegExp(`409 \\(Conflict\\) @ \\S+/v1/jobs/${job.id}/cancel$`));
    // The job moved on between the page's read and the press (a stand-in answer: the race is too quick to provoke).
    await fresh.route(`**/v1/jobs/${job.id}/cancel`, (route) => route.fulfill({
      status: 409, json: { code: 'ATS_ERR_TRANSITION_NOT_ALLOWED', message: 'CANCEL is not allowed in state done; allowed now: none' },
    }));
    await fresh.goto(`${server.url}/ui#${job.id}`);
    await fresh.locator('#cancel-btn:enabled').click({ timeout: WAIT_MS });
    const error = fresh.locator('#inspector-error');
    await error.getByText('CANCEL is not allowed in state done; allowed now: none (ATS_ERR_TRANSITION_NOT_ALLOWED)').waitFor({ timeout: WAIT_MS });
    // Other jobs move the counts (polling, once a second): each time the page reads the open job again.
    for (let i = 0; i < 3; i++) {
      const before = fresh.waitForResponse((res) => res.url().endsWith(`/v1/jobs/${job.id}`) && res.request().method() === 'GET', { timeout: WAIT_MS });
      await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', payload: {} });
      await before;
    }
    assert.match(await error.textContent() ?? '', /ATS_ERR_TRANSITION_NOT_ALLOWED/, 'the refusal is still said');
    // Another job opened: the refusal was not its.
    const other = await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', payload: {} });
    await fresh.locator('#job-search').fill(other.id);
    await fresh.locator('#job-search').press('Enter');
    await fresh.waitForFunction(() => document.querySelector('#inspector-error')?.textContent === '', null, { timeout: WAIT_MS });
    freshErrors.push(...freshConsole.errors);
    await fresh.close();
  });

  test('a panel\'s failed read says the server\'s message with its code (a 429: when to retry)', async () => {
    const fresh = await browser.context.newPage();
    const freshConsole = watchConsole(fresh, { withoutStream: true });
    freshConsole.allow(/429 \(Too Many Requests\) @ \S+\/v1\/schedules$/);
    const message = 'Too many requests: at most 6000 a minute per API key (per address without one); retry in 30 s';
    await fresh.route((url) => url.pathname === '/v1/schedules', (route) => route.fulfill({
      status: 429, contentType: 'application/json', body: JSON.stringify({ code: 'ATS_ERR_RATE_LIMITED', message }),
    }));
    await fresh.goto(`${server.url}/ui`);
    await fresh.locator('#schedules-note').getByText('ATS_ERR_RATE_LIMITED').waitFor({ timeout: WAIT_MS });
    assert.equal(await fresh.locator('#schedules-note').textContent(), `Could not read GET /v1/schedules: ${message} (ATS_ERR_RATE_LIMITED)`);
    freshErrors.push(...freshConsole.errors);
    await fresh.close();
  });

  test('a link to /ui#<id> opens that job (screenshot: stepped back one step)', async () => {
    const fresh = await browser.context.newPage();
    const freshConsole = watchConsole(fresh, { withoutStream: true });
    await fresh.goto(`${server.url}/ui#${jobs[0]}`);
    await fresh.waitForFunction(() => document.querySelectorAll('#timeline li').length === 3, null, { timeout: WAIT_MS });
    await fresh.locator(`#job-rows tr[data-job-id="${jobs[0]}"][aria-current="true"]`).waitFor({ timeout: WAIT_MS });
    await fresh.locator('#time-travel').focus();
    await fresh.keyboard.press('ArrowLeft');
    await fresh.locator('#time-travel').blur();
    assert.deepEqual(await highlighted(fresh), { state: 'cancelled', edge: 'pending-CANCEL-cancelled' });
    assert.equal(await fresh.locator('#timeline li[aria-current="step"]').getAttribute('data-step'), '2');
    await screenshot(fresh, 'machine-time-travel', { fullPage: false });
    // The section links of the top bar move on the page; they open no job.
    await fresh.locator('.sections a[href="#jobs-section"]').click();
    await fresh.waitForTimeout(300);
    assert.equal(await fresh.locator('#inspector-error').textContent(), '');
    assert.equal(await fresh.locator('#job-facts [data-fact="id"] dd').textContent(), jobs[0]);
    freshErrors.push(...freshConsole.errors);
    await fresh.close();
  });

  test('a link with a stray % opens no job and the page starts; a job id put in the address then opens it', async () => {
    const fresh = await browser.context.newPage();
    const freshConsole = watchConsole(fresh, { withoutStream: true });
    await fresh.goto(`${server.url}/ui#%E0`);
    await fresh.locator('#job-rows tr').first().waitFor({ timeout: WAIT_MS });
    assert.equal(await fresh.locator('#job-detail').isHidden(), true);
    await fresh.evaluate((id) => { location.hash = id; }, jobs[0]);
    await fresh.locator(`#job-rows tr[data-job-id="${jobs[0]}"][aria-current="true"]`).waitFor({ timeout: WAIT_MS });
    assert.equal(await fresh.locator('#job-facts [data-fact="id"] dd').textContent(), jobs[0]);
    freshErrors.push(...freshConsole.errors);
    await fresh.close();
  });

  test('no console error and no script error happened on the pages', () => {
    assert.deepEqual([...consoleOf.errors, ...freshErrors], []);
  });
});

/**
 * A stand-in for `/v1/stream` speaking the stream protocol (docs/stream.md): answers `stats`
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

/**
 * `GET /v1/stats/edges` as its contract says (`{edges: [{from, to, event, count, medianDwellMs}], windowMs}`),
 * for a server that does not have the real one.
 */
const EDGES = {
  edges: [
    { from: null, to: 'pending', event: 'SUBMITTED', count: 12, medianDwellMs: null },
    { from: 'pending', to: 'published', event: 'PUBLISHED', count: 12, medianDwellMs: 45.2 },
    { from: 'published', to: 'running', event: 'STARTED', count: 10, medianDwellMs: 1500 },
  ],
  windowMs: 900_000,
};
const fakeEdges: AppPlugin = async (app) => {
  if (!app.hasRoute({ method: 'GET', url: '/v1/stats/edges' })) app.get('/v1/stats/edges', async () => EDGES);
};

/** A stream event message as the server sends it. */
function eventMessage(jobId: string, type: string, from: string | null, to: string, seq: number, data: object = {}): string {
  return JSON.stringify({
    kind: 'event', cursor: `c${seq}`, jobId, seq, type, from, to, at: new Date().toISOString(), data, jobType: 'demo.echo', queue: 'default',
  });
}

describe('the visualizer when its first read of the machine is refused', () => {
  test('it reads the machine again, saying so, and comes up by itself', async () => {
    let refused = 0;
    const refuseFirst: AppPlugin = async (app) => {
      app.addHook('onRequest', async (request, reply) => {
        if (request.url !== '/v1/machine' || refused >= 1) return;
        refused++;
        // 429: an answer the client does not retry itself, so the page's own reading again is what is tested.
        await reply.code(429).send({ code: 'ATS_ERR_RATE_LIMITED', message: 'Too many requests' });
      });
    };
    (refuseFirst as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true; // the hook sees every route
    const server = await startServer([refuseFirst]);
    const page = await browser.context.newPage();
    try {
      await page.goto(server.url + '/ui');
      await page.waitForFunction(() => /trying again in \d+ s/.test(document.querySelector('#graph-error')?.textContent ?? ''), null, { timeout: WAIT_MS });
      await page.locator('[data-edge="pending-PUBLISHED-published"]').waitFor({ state: 'attached', timeout: WAIT_MS });
      assert.equal(await page.locator('#graph-error').textContent(), '');
      assert.equal(refused, 1);
    } finally {
      await page.close();
      await server.close();
    }
  });
});

describe('the visualizer with the stream', () => {
  let server: Server;
  let page: Page;
  let consoleOf: ReturnType<typeof watchConsole>;
  const sockets = new Set<{ send(data: string): void }>();
  const push = (msg: string) => {
    for (const s of sockets) s.send(msg);
  };

  before(async () => {
    server = await startServer([fakeStream(sockets), fakeEdges]);
    page = await browser.context.newPage();
    consoleOf = watchConsole(page);
  });
  after(async () => {
    await page?.close();
    await server?.close();
  });

  test('counts come over the stream and an event lights up its edge', async () => {
    await page.goto(server.url + '/ui');
    await page.locator('#live-mode[data-mode="stream"]').waitFor({ timeout: WAIT_MS });
    const job = await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', payload: {} });
    await waitForCount(page, 'pending', 1);

    push(eventMessage(job.id, 'PUBLISHED', 'pending', 'published', 2, { attempt: 1 }));
    await page.locator('[data-edge="pending-PUBLISHED-published"].flash').waitFor({ state: 'attached', timeout: WAIT_MS });
    // The highlight is brief.
    await page.locator('[data-edge="pending-PUBLISHED-published"].flash').waitFor({ state: 'detached', timeout: WAIT_MS });
  });

  test('while a job is time-travelled, other jobs\' flashes are held, then shown when it ends', async () => {
    const open = await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', payload: { open: true } });
    await rest(server, 'POST', `/v1/jobs/${open.id}/cancel`);
    const other = await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', payload: {} });
    await page.locator('#job-search').fill(open.id);
    await page.locator('#job-search').press('Enter');
    await page.waitForFunction(() => document.querySelectorAll('#timeline li').length === 2, null, { timeout: WAIT_MS });
    const machine = page.locator('#machine');
    assert.equal(await machine.getAttribute('data-flashes'), 'live', 'at the last step the job is live, not time-travelled');

    await page.locator('#time-travel').focus();
    await page.keyboard.press('ArrowLeft');
    assert.equal(await machine.getAttribute('data-flashes'), 'paused');
    push(eventMessage(other.id, 'PUBLISHED', 'pending', 'published', 3, { attempt: 1 }));
    await page.locator('#flash-note').getByText('1 edge waiting').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('[data-edge="pending-PUBLISHED-published"].flash').count(), 0, 'held while time-travelling');
    await screenshot(page, 'flashes-held', { fullPage: false });

    // Back at the last step: the held flash is shown once, and flashes are live again.
    await page.keyboard.press('End');
    await page.locator('[data-edge="pending-PUBLISHED-published"].flash').waitFor({ state: 'attached', timeout: WAIT_MS });
    assert.equal(await machine.getAttribute('data-flashes'), 'live');
    assert.equal(await page.locator('#flash-note').textContent(), '');
    push(eventMessage(other.id, 'STARTED', 'published', 'running', 4, { attempt: 1, workerId: 'w-test' }));
    await page.locator('[data-edge="published-STARTED-running"].flash').waitFor({ state: 'attached', timeout: WAIT_MS });
  });

  test('each edge\'s count and median dwell from GET /v1/stats/edges, in the table, the tooltips and the wait chart', async () => {
    const body = (await rest<typeof EDGES>(server, 'GET', '/v1/stats/edges'));
    assert.ok(body.edges.length > 0);
    for (const e of body.edges) {
      const key = `${e.from ?? 'start'}-${e.event}-${e.to}`;
      const row = page.locator(`#edge-rows tr[data-edge-stat="${key}"]`);
      await row.waitFor({ timeout: 15_000 });
      assert.equal(await row.locator('td').nth(3).textContent(), String(e.count), key);
      assert.equal(await page.locator(`#machine [data-edge="${key}"]`).first().getAttribute('data-edge-count'), String(e.count), key);
    }
    const dwell = body.edges.find((e) => e.event === 'PUBLISHED' && e.medianDwellMs !== null);
    if (dwell) {
      const title = await page.locator('#machine [data-edge="pending-PUBLISHED-published"] title').textContent();
      assert.match(title ?? '', new RegExp(`${dwell.count} taken in the last 15 min; median time in pending before: `));
    }
    const started = body.edges.filter((e) => e.event === 'STARTED' && e.medianDwellMs !== null);
    if (started.length) await page.locator('#wait-chart [data-reference]').waitFor({ state: 'attached', timeout: WAIT_MS });
    assert.match((await page.locator('#edge-note').textContent()) ?? '', /from GET \/v1\/stats\/edges/);
  });

  test('no console error and no script error happened on the page', () => {
    assert.deepEqual(consoleOf.errors, []);
  });
});

/** A schedule as `GET /v1/schedules` lists it (docs/scheduling.md). */
function scheduleOf(over: Record<string, unknown>): Record<string, unknown> {
  const now = Date.now();
  return {
    name: 'nightly-report', cron: '0 2 * * *', timezone: 'Europe/Berlin', overlap: 'skip', catchUp: 'none', paused: false,
    job: { type: 'reports.build', payload: {}, queue: 'reports', maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 1000 }, timeoutMs: 30_000, priority: 0 },
    nextRunAt: new Date(now + 3_600_000).toISOString(), lastTickAt: null, lastJobId: null, submitted: 0, skipped: 0, missed: 0,
    createdAt: new Date(now - 86_400_000).toISOString(), updatedAt: new Date(now - 60_000).toISOString(), ...over,
  };
}

describe('the schedules panel, from a GET /v1/schedules answer', () => {
  const list: { schedules: Record<string, unknown>[] } = { schedules: [] };
  /** `GET /v1/schedules` answering `list` as it is at each request. */
  const fakeSchedules: AppPlugin = async (app) => {
    app.get('/v1/schedules', async () => list);
  };
  let server: Server;
  let page: Page;
  let consoleOf: ReturnType<typeof watchConsole>;

  before(async () => {
    server = await startServer([fakeSchedules]);
    page = await browser.context.newPage();
    consoleOf = watchConsole(page, { withoutStream: true });
  });
  after(async () => {
    await page?.close();
    await server?.close();
  });

  test('a row per schedule: cron, time zone, job, next run local and relative, last tick with its job, paused, counters', async () => {
    const job = await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', payload: { from: 'a tick' } });
    const tickAt = new Date(Date.now() - 90_000).toISOString();
    list.schedules = [
      scheduleOf({ name: 'a-paused', cron: '*/5 * * * *', timezone: 'UTC', paused: true, nextRunAt: null, overlap: 'allow', catchUp: 'all' }),
      scheduleOf({ lastTickAt: tickAt, lastJobId: job.id, submitted: 7, skipped: 2, missed: 1 }),
    ];
    await page.goto(server.url + '/ui');
    const rows = page.locator('#schedule-rows tr[data-schedule]');
    await rows.nth(1).waitFor({ timeout: WAIT_MS });
    assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-schedule'))), ['a-paused', 'nightly-report']);
    assert.equal(await page.locator('#schedules-count').textContent(), '· 2 schedules · 1 paused');

    const nightly = page.locator('#schedule-rows tr[data-schedule="nightly-report"]');
    const cell = (col: string) => nightly.locator(`td[data-col="${col}"]`).textContent();
    assert.equal(await cell('cron'), '0 2 * * *');
    assert.equal(await cell('timezone'), 'Europe/Berlin');
    assert.equal(await cell('job'), 'reports.build · reports');
    assert.match((await cell('next')) ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \(in (59 min( \d+ s)?|1 h)\)$/);
    assert.match((await cell('last')) ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \(1 min 3\d s ago\)job$/);
    assert.equal(await nightly.locator('td[data-col="last"] time').getAttribute('datetime'), tickAt);
    assert.equal(await cell('status'), 'active');
    assert.deepEqual([await cell('submitted'), await cell('skipped'), await cell('missed')], ['7', '2', '1']);
    assert.equal(await nightly.locator('td[data-col="missed"]').getAttribute('class'), 'num warn');

    const paused = page.locator('#schedule-rows tr[data-schedule="a-paused"]');
    assert.equal(await paused.getAttribute('data-paused'), 'true');
    assert.equal(await paused.locator('td[data-col="next"]').textContent(), 'paused');
    assert.equal(await paused.locator('td[data-col="last"]').textContent(), 'no tick yet');
    assert.equal(await paused.locator('td[data-col="status"]').textContent(), 'paused');
    assert.equal(await paused.locator('td[data-col="cron"] code').getAttribute('title'), 'overlap allow · catch-up all');
    await screenshot(page, 'schedules', { selector: '#schedules-section' });

    // The last tick's job opens in the inspector.
    await nightly.locator('a.schedule-job').click();
    await page.locator('#job-facts').getByText(job.id).waitFor({ timeout: WAIT_MS });
  });

  test('refreshed like the other panels: a schedule created, resumed and ticking shows at the next read', async () => {
    list.schedules = [
      scheduleOf({ name: 'a-paused', paused: false, lastTickAt: new Date().toISOString(), submitted: 1 }),
      scheduleOf({ name: 'b-new', cron: '* * * * * *', timezone: 'UTC' }),
    ];
    // Every 5 s while the page is visible.
    await page.locator('#schedule-rows tr[data-schedule="b-new"]').waitFor({ timeout: 15_000 });
    await page.locator('#schedule-rows tr[data-schedule="nightly-report"]').waitFor({ state: 'detached', timeout: WAIT_MS });
    const resumed = page.locator('#schedule-rows tr[data-schedule="a-paused"]');
    assert.equal(await resumed.getAttribute('data-paused'), 'false');
    assert.equal(await resumed.locator('td[data-col="submitted"]').textContent(), '1');
    assert.match((await page.locator('#schedules-note').textContent()) ?? '', /^From GET \/v1\/schedules, every 5 s/);

    list.schedules = [];
    await page.locator('#schedule-rows tr.empty-note').getByText('No schedule yet').waitFor({ timeout: 15_000 });
    assert.equal(await page.locator('#schedules-count').textContent(), '· no schedule');
  });

  test('no console error and no script error happened on the page', () => {
    assert.deepEqual(consoleOf.errors, []);
  });
});

/** A worker as `GET /v1/workers` lists it. */
function workerOf(over: Record<string, unknown>): Record<string, unknown> {
  const now = Date.now();
  return {
    id: 'worker-b', host: 'node-2', pid: 4242, queues: ['*'], types: ['email.send', 'demo.echo'], concurrency: 8,
    startedAt: new Date(now - 3_600_000).toISOString(), lastSeenAt: new Date(now - 2000).toISOString(), live: true, ...over,
  };
}

describe('the workers panel and the unserved warnings, from stand-in answers', () => {
  const list: { workers: Record<string, unknown>[] } = { workers: [] };
  let unserved: { type: string; queue: string; waiting: number }[] = [];
  /** `GET /v1/workers` answering `list` as it is at each request. */
  const fakeWorkers: AppPlugin = async (app) => {
    app.get('/v1/workers', async () => list);
  };
  let server: Server;
  let page: Page;
  let consoleOf: ReturnType<typeof watchConsole>;

  before(async () => {
    server = await startServer([fakeWorkers]);
    page = await browser.context.newPage();
    consoleOf = watchConsole(page, { withoutStream: true });
    // The app's GET /v1/stats, with the `unserved` of a server that knows its workers.
    await page.route('**/v1/stats', async (route) => {
      const res = await route.fetch();
      await route.fulfill({ status: res.status(), json: { ...((await res.json()) as object), unserved } });
    });
  });
  after(async () => {
    await page?.close();
    await server?.close();
  });

  test('a row per worker: host, pid, types, queues, concurrency, last seen, live or stale; a warning line per unserved type', async () => {
    list.workers = [
      workerOf({ id: 'worker-a', host: 'node-1', pid: 17, types: ['reports.build'], queues: ['reports', 'email'], concurrency: 2, lastSeenAt: new Date(Date.now() - 95_000).toISOString(), live: false }),
      workerOf({}),
    ];
    unserved = [{ type: 'reports.build', queue: 'reports', waiting: 3 }, { type: '__proto__', queue: 'constructor', waiting: 12 }];
    await page.goto(server.url + '/ui');
    const rows = page.locator('#presence-rows tr[data-worker-id]');
    await rows.nth(1).waitFor({ timeout: WAIT_MS });
    assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-worker-id'))), ['worker-a', 'worker-b']);
    assert.equal(await page.locator('#presence-count').textContent(), '· 2 workers · 1 stale');

    const b = page.locator('#presence-rows tr[data-worker-id="worker-b"]');
    const cell = (col: string) => b.locator(`td[data-col="${col}"]`).textContent();
    assert.equal(await b.getAttribute('data-live'), 'true');
    assert.equal(await cell('host'), 'node-2');
    assert.equal(await cell('pid'), '4242');
    assert.deepEqual(await b.locator('td[data-col="types"] code').allTextContents(), ['demo.echo', 'email.send']);
    assert.equal(await cell('queues'), 'every queue');
    assert.equal(await cell('concurrency'), '8');
    assert.match((await cell('last-seen')) ?? '', /^\d+(\.\d)? s ago$/);
    assert.equal(await cell('status'), 'live');

    const a = page.locator('#presence-rows tr[data-worker-id="worker-a"]');
    assert.equal(await a.getAttribute('data-live'), 'false');
    assert.equal(await a.locator('td[data-col="queues"]').textContent(), 'email, reports');
    assert.match((await a.locator('td[data-col="last-seen"]').textContent()) ?? '', /^1 min 3\d s ago$/);
    assert.equal(await a.locator('td[data-col="status"]').textContent(), 'stale');

    // The warnings, above the page: most waiting first, names as text.
    const lines = page.locator('#unserved-list li');
    await lines.nth(1).waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#unserved-banner').isVisible(), true);
    assert.deepEqual((await lines.allTextContents()).map((t) => t.replace(/^\S+\s+/, '')), [
      'no live worker handles __proto__ in queue constructor (12 waiting)',
      'no live worker handles reports.build in queue reports (3 waiting)',
    ]);
    assert.equal(await lines.nth(1).getAttribute('data-type'), 'reports.build');
    assert.equal(await lines.nth(1).getAttribute('data-queue'), 'reports');
    await screenshot(page, 'unserved', { selector: '#unserved-banner' });
    await page.locator('#workers-section').scrollIntoViewIfNeeded();
    await screenshot(page, 'workers', { selector: '#workers-section' });
  });

  test('refreshed like the other panels: a worker gone, one come back live; the warning gone once served', async () => {
    list.workers = [workerOf({ id: 'worker-a', host: 'node-1', types: ['reports.build'], live: true })];
    unserved = [];
    // Every 5 s while the page is visible (the warnings with the stats).
    await page.locator('#presence-rows tr[data-worker-id="worker-b"]').waitFor({ state: 'detached', timeout: 15_000 });
    const a = page.locator('#presence-rows tr[data-worker-id="worker-a"]');
    assert.equal(await a.getAttribute('data-live'), 'true');
    assert.equal(await page.locator('#presence-count').textContent(), '· 1 worker');
    assert.match((await page.locator('#presence-note').textContent()) ?? '', /^From GET \/v1\/workers, every 5 s/);
    await page.locator('#unserved-banner').waitFor({ state: 'hidden', timeout: WAIT_MS });
    assert.equal(await page.locator('#unserved-list li').count(), 0);

    list.workers = [];
    await page.locator('#presence-rows tr.empty-note').getByText('No worker registered').waitFor({ timeout: 15_000 });
    assert.equal(await page.locator('#presence-count').textContent(), '· no worker');
  });

  test('no console error and no script error happened on the page', () => {
    assert.deepEqual(consoleOf.errors, []);
  });
});

describe('long names, in Chromium', () => {
  // Names as long as the API takes them, without a break: each wraps in its cell (the job list's, the counts',
  // the schedules', the limits') rather than widen its table past the panel, which would push the columns after
  // it (attempts and times, counts, next run and counters, running) out of sight behind a horizontal scroll.
  const type = `t.${'x'.repeat(190)}`;
  const queue = `q.${'y'.repeat(150)}`;
  const limitKey = `k.${'z'.repeat(190)}`;
  const fakes: AppPlugin = async (app) => {
    app.get('/v1/schedules', async () => ({ schedules: [scheduleOf({ name: `s.${'n'.repeat(98)}`, job: { ...(scheduleOf({}).job as object), type, queue } })] }));
    app.get('/v1/limits', async () => {
      const at = new Date().toISOString();
      return { limits: [{ key: limitKey, concurrency: 2, rate: null, running: 1, createdAt: at, updatedAt: at }] };
    });
  };

  test('wrap in their cells: no table is wider than its panel', async () => {
    const server = await startServer([fakes]);
    const page = await browser.context.newPage();
    const consoleOf = watchConsole(page, { withoutStream: true });
    try {
      await rest(server, 'POST', '/v1/jobs', { type, queue, payload: {} });
      await page.goto(server.url + '/ui');
      for (const body of ['#job-rows', '#counts-type-rows', '#counts-queue-rows', '#schedule-rows', '#limit-rows']) {
        await page.locator(`${body} tr th, ${body} tr td`).first().waitFor({ timeout: WAIT_MS });
      }
      await page.locator('#job-rows tr[data-job-id]').waitFor({ timeout: WAIT_MS });
      await page.locator('#counts-queue-rows th', { hasText: queue }).waitFor({ timeout: WAIT_MS });
      await page.locator('#limit-rows th', { hasText: limitKey }).waitFor({ timeout: WAIT_MS });
      const overflow = await page.evaluate(() => ['#job-rows', '#counts-type-rows', '#counts-queue-rows', '#schedule-rows', '#limit-rows']
        .map((body) => {
          const table = document.querySelector(body)!.closest('table')!;
          return { body, table: table.scrollWidth, panel: table.parentElement!.clientWidth };
        })
        .filter((t) => t.table > t.panel));
      assert.deepEqual(overflow, []);
      await page.locator('#jobs-section').scrollIntoViewIfNeeded();
      await screenshot(page, 'long-names', { selector: '#jobs-section' });
      assert.deepEqual(consoleOf.errors, []);
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
    const consoleOf = watchConsole(page, { withoutStream: true });
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
      // The submit form's type field suggests the types the server has seen, beside the demo handlers'.
      const typeOptions = await page.locator('#job-types option').evaluateAll((os) => os.map((o) => o.getAttribute('value')));
      assert.deepEqual(typeOptions, ['__proto__', 'constructor', 'demo.echo', 'demo.fail', 'demo.sleep', 'hasOwnProperty', 'toString']);
      // The per-type and per-queue tables list each name once, with its own count.
      for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
        for (const table of ['#counts-type-rows', '#counts-queue-rows']) {
          const row = page.locator(`${table} tr[data-name="${name}"]`);
          await row.waitFor({ timeout: WAIT_MS });
          assert.equal(await row.locator('[data-state-count="pending"]').textContent(), '1', `${table} ${name}`);
        }
      }
      assert.deepEqual(consoleOf.errors, []);
    } finally {
      await page.close();
      await server.close();
    }
  });
});

/** A whole embedded scheduler in this process (SQLite, the in-process log, every role, the demo handlers or `registry`). */
async function startScheduler(registry?: HandlerRegistry): Promise<{ system: System; url: string; workerId: string; close(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ats-ui-console-'));
  const config = compileConfig({
    dataDir, port: 0, logLevel: 'silent', timersPollMs: 50, relayPollMs: 20, heartbeatMs: 500, leaseMs: 5000,
    shutdownGraceMs: 500, workerId: 'ui-test-worker',
  }, { hostname: 'test', pid: process.pid });
  const system = await compose(config, { logger: silentLogger, ...(registry ? { registry } : {}) });
  try {
    const started = await system.start();
    assert.ok(started.url);
    // start() names the host localhost; the api listens on 127.0.0.1 only.
    const url = started.url.replace('//localhost:', '//127.0.0.1:');
    return {
      system, url, workerId: config.worker.workerId,
      async close() {
        try {
          await system.stop();
        } finally {
          rmSync(dataDir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    await system.stop().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

describe('the operator console on a running scheduler', () => {
  let sched: Awaited<ReturnType<typeof startScheduler>>;
  let server: Server;
  let page: Page;
  let consoleOf: ReturnType<typeof watchConsole>;
  const ids = { echo: [] as string[], dead: [] as string[], sleeper: '', delayed: '', paged: [] as string[] };

  const get = (id: string) => rest<JobDetail>(server, 'GET', `/v1/jobs/${id}`);
  async function until(id: string, ok: (j: JobDetail) => boolean, what: string): Promise<JobDetail> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const j = await get(id);
      if (ok(j)) return j;
      assert.ok(Date.now() < deadline, `job ${id} did not become ${what} (it is ${j.state}, attempt ${j.attempt})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  /** Set the filters and apply them. */
  async function filter(f: { state?: string; type?: string; queue?: string; after?: string; before?: string; limit?: string }): Promise<void> {
    await page.locator('#filter-state').selectOption(f.state ?? '');
    await page.locator('#filter-type').fill(f.type ?? '');
    await page.locator('#filter-queue').fill(f.queue ?? '');
    await page.locator('#filter-after').fill(f.after ?? '');
    await page.locator('#filter-before').fill(f.before ?? '');
    await page.locator('#filter-limit').selectOption(f.limit ?? '50');
    await page.locator('#job-filters button[type=submit]').click();
  }
  const shownIds = () => page.locator('#job-rows tr[data-job-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job-id') ?? ''));
  /** Wait until the list shows exactly these jobs, in this order (or in any order: `anyOrder`). */
  async function expectRows(want: readonly string[], anyOrder = false): Promise<void> {
    const norm = (ids: readonly string[]) => (anyOrder ? [...ids].sort() : [...ids]);
    const deadline = Date.now() + WAIT_MS;
    let shown: string[] = [];
    while (Date.now() < deadline) {
      shown = await shownIds();
      if (JSON.stringify(norm(shown)) === JSON.stringify(norm(want))) return;
      await page.waitForTimeout(50);
    }
    assert.deepEqual(norm(shown), norm(want));
  }
  /** A `datetime-local` value (local time, seconds) for an ISO instant, shifted by `ms`. */
  const localInput = (iso: string, ms = 0) => {
    const d = new Date(Date.parse(iso) + ms);
    const pad = (n: number) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  };

  before(async () => {
    sched = await startScheduler();
    server = { app: sched.system.app!, url: sched.url, close: () => sched.close() };
    for (let i = 0; i < 3; i++) ids.echo.push((await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', queue: 'ops-a', payload: { i } })).id);
    for (let i = 0; i < 2; i++) {
      ids.dead.push((await rest(server, 'POST', '/v1/jobs', {
        type: 'demo.fail', queue: 'ops-b', payload: { always: true }, maxAttempts: 2, backoff: { kind: 'fixed', delayMs: 50 },
      })).id);
    }
    ids.sleeper = (await rest(server, 'POST', '/v1/jobs', { type: 'demo.sleep', queue: 'ops-a', payload: { ms: 60_000 }, priority: 7, timeoutMs: 90_000 })).id;
    ids.delayed = (await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', queue: 'ops-a', payload: {}, runAt: Date.now() + 3_600_000 })).id;
    const batch = await rest<{ results: { id: string }[] }>(server, 'POST', '/v1/jobs/batch', {
      jobs: Array.from({ length: 23 }, (_, i) => ({ type: 'demo.echo', queue: 'ops-page', payload: { i } })),
    });
    ids.paged = batch.results.map((r) => r.id);
    for (const id of [...ids.echo, ...ids.paged]) await until(id, (j) => j.state === 'done', 'done');
    for (const id of ids.dead) await until(id, (j) => j.state === 'dead', 'dead');
    await until(ids.sleeper, (j) => j.state === 'running', 'running');

    page = await browser.context.newPage();
    consoleOf = watchConsole(page);
    await page.goto(server.url + '/ui');
    await page.locator('#live-mode[data-mode="stream"]').waitFor({ timeout: WAIT_MS });
    await page.locator('#job-rows tr[data-job-id]').first().waitFor({ timeout: WAIT_MS });
  });
  after(async () => {
    await page?.close();
    await sched?.close();
  });

  test('the job list filters by state, type, queue and submit time, and pages with the cursor', async () => {
    await filter({ state: 'dead' });
    await expectRows(ids.dead, true);
    assert.equal(await page.locator('#job-rows tr[data-job-id] [data-badge="dead"]').count(), 2);
    await filter({ type: 'demo.echo', queue: 'ops-a' });
    await expectRows([ids.delayed, ...[...ids.echo].reverse()]);
    await filter({ type: 'demo.sleep' });
    await expectRows([ids.sleeper]);

    // Submit time: whole seconds in the field, so bound by the seconds around the jobs.
    const delayed = await get(ids.delayed);
    await filter({ queue: 'ops-a', after: localInput(delayed.createdAt, 1000) });
    await expectRows([]);
    assert.equal(await page.locator('#job-rows tr.empty-note').textContent(), 'No job matches these filters.');
    const firstEcho = await get(ids.echo[0]!);
    await filter({ queue: 'ops-a', before: localInput(firstEcho.createdAt, -1000) });
    await expectRows([]);
    await filter({ queue: 'ops-a', after: localInput(firstEcho.createdAt, -1000), before: localInput(delayed.createdAt, 2000) });
    await expectRows([...ids.echo, ids.sleeper, ids.delayed], true);

    // 23 jobs, 20 a page: two pages, newest first, and back.
    const newestFirst = [...ids.paged].reverse();
    await filter({ queue: 'ops-page', limit: '20' });
    await expectRows(newestFirst.slice(0, 20));
    assert.equal(await page.locator('#page-newer').isDisabled(), true);
    await page.locator('#page-older').click();
    await page.locator('#job-page').getByText('page 2').waitFor({ timeout: WAIT_MS });
    await expectRows(newestFirst.slice(20));
    assert.equal(await page.locator('#page-older').isDisabled(), true);
    await page.locator('#page-newer').click();
    await page.locator('#job-page').getByText('page 1').waitFor({ timeout: WAIT_MS });
    await expectRows(newestFirst.slice(0, 20));
    await screenshot(page, 'jobs-list', { selector: '#jobs-section' });
  });

  test('bulk actions act on the selection and answer job by job', async () => {
    // Redrive one of the two dead jobs.
    await filter({ state: 'dead' });
    await expectRows(ids.dead, true);
    await page.locator(`#job-rows tr[data-job-id="${ids.dead[0]}"] input[data-select]`).check();
    assert.match((await page.locator('#bulk-count').textContent()) ?? '', /^1 selected$/);
    assert.equal(await page.locator('#bulk-cancel').isDisabled(), true, 'a dead job cannot be cancelled');
    await page.locator('#bulk-redrive').click();
    const redriven = page.locator(`#bulk-results li[data-job-id="${ids.dead[0]}"][data-outcome="ok"]`);
    await redriven.waitFor({ timeout: WAIT_MS });
    assert.match((await redriven.textContent()) ?? '', /pending/);
    assert.match((await page.locator('#bulk-results .bulk-summary').textContent()) ?? '', /Redrive: 1 of 1 done/);

    // Cancel a running job and a done one: the first is cancelled, the second refused with its code.
    const done = ids.echo[0]!;
    consoleOf.allow(new RegExp(`409 \\(Conflict\\) @ \\S+/v1/jobs/${done}/cancel$`));
    await filter({ queue: 'ops-a' });
    await expectRows([ids.delayed, ids.sleeper, ...[...ids.echo].reverse()]);
    await page.locator(`#job-rows tr[data-job-id="${ids.sleeper}"] input[data-select]`).check();
    await page.locator(`#job-rows tr[data-job-id="${done}"] input[data-select]`).check();
    await page.locator('#bulk-cancel').click();
    await page.locator(`#bulk-results li[data-job-id="${ids.sleeper}"][data-outcome="ok"]`).waitFor({ timeout: WAIT_MS });
    const refused = page.locator(`#bulk-results li[data-job-id="${done}"][data-outcome="error"]`);
    await refused.waitFor({ timeout: WAIT_MS });
    assert.match((await refused.textContent()) ?? '', /ATS_ERR_TRANSITION_NOT_ALLOWED/);
    assert.match((await page.locator('#bulk-results .bulk-summary').textContent()) ?? '', /Cancel: 1 of 2 done, 1 refused/);
    assert.equal((await get(ids.sleeper)).state, 'cancelled');
    assert.equal((await get(done)).state, 'done');
    await screenshot(page, 'jobs-bulk-cancel', { selector: '#jobs-section' });
  });

  test('the inspector of a redriven job shows the run and the attempt within it, and the handler\'s stack', async () => {
    const job = await until(ids.dead[0]!, (j) => j.state === 'dead' && j.attempt === 4, 'dead after its second run');
    await page.locator('#job-search').fill(job.id);
    await page.locator('#job-search').press('Enter');
    const facts = page.locator('#job-facts');
    await facts.getByText(job.id).waitFor({ timeout: WAIT_MS });
    assert.equal(await facts.locator('[data-fact="attempt"] dd').textContent(), 'run 2, attempt 2 of 2 (4 in all)');
    assert.ok(await page.locator('#timeline li[data-run="2"]').count() >= 4, 'the second run\'s events are marked run 2');
    const lastFailed = page.locator('#timeline li').filter({ has: page.locator('.tl-type', { hasText: /^FAILED$/ }) }).last();
    assert.match((await lastFailed.textContent()) ?? '', /run 2 · attempt 2/);
    assert.match((await page.locator('#job-error-text').textContent()) ?? '', /^Error: demo\.fail: failure on attempt 4 — run 2 · attempt 2$/);
    const stack = (await page.locator('#job-stack').textContent()) ?? '';
    assert.match(stack, /^Error: demo\.fail: failure on attempt 4\n\s+at .*handlers/);
    // The timeline keeps each failure's own stack.
    await lastFailed.locator('.tl-stack summary').click();
    assert.match((await lastFailed.locator('.tl-stack pre').textContent()) ?? '', /failure on attempt 4\n\s+at /);
    await screenshot(page, 'inspector-redriven');
  });

  test('the inspector of a failed job shows its error and stack; a delayed job its due time, priority and timeout', async () => {
    const job = await get(ids.dead[1]!);
    await page.locator('#job-search').fill(job.id);
    await page.locator('#job-search').press('Enter');
    await page.locator('#job-facts').getByText(job.id).waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#job-facts [data-fact="attempt"] dd').textContent(), '2 of 2');
    assert.equal(await page.locator('#job-facts [data-fact="waiting"]').count(), 0, 'a dead job waits for nothing');
    assert.match((await page.locator('#job-error-text').textContent()) ?? '', /^Error: demo\.fail: failure on attempt 2 — run 1 · attempt 2$/);
    assert.match((await page.locator('#job-stack').textContent()) ?? '', /^Error: demo\.fail: failure on attempt 2\n\s+at /);
    assert.equal(await page.locator('#job-outcome').textContent(), '(none)', 'a dead job waits for no result');
    await screenshot(page, 'inspector-failed', { selector: '.inspector' });

    await page.locator('#job-search').fill(ids.delayed);
    await page.locator('#job-search').press('Enter');
    await page.locator('#job-facts').getByText(ids.delayed).waitFor({ timeout: WAIT_MS });
    assert.match((await page.locator('#job-facts [data-fact="due"] dd').textContent()) ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \(in (59|60) min \d+ s\)$/);
    assert.match((await page.locator('#job-facts [data-fact="waiting"] dd').textContent()) ?? '', /^scheduled: runs at \d{4}-\d\d-\d\dT/, 'what it waits for');
    assert.equal(await page.locator('#job-error').isHidden(), true, 'no error to show');
    assert.equal(await page.locator('#job-outcome').textContent(), '(none yet)');
    await page.locator('#job-search').fill(ids.sleeper);
    await page.locator('#job-search').press('Enter');
    await page.locator('#job-facts').getByText(ids.sleeper).waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#job-facts [data-fact="priority"] dd').textContent(), '7');
    assert.equal(await page.locator('#job-facts [data-fact="timeout"] dd').textContent(), '1 min 30 s');
    assert.match((await page.locator('#job-facts [data-fact="updated"] dd').textContent()) ?? '', /^\d{4}-\d\d-\d\d /);
  });

  test('the schedules panel lists the schedules of POST /v1/schedules, and the ticks of one firing every second', async () => {
    await rest(server, 'POST', '/v1/schedules', { name: 'ui-every-second', cron: '* * * * * *', type: 'demo.echo', queue: 'ops-sched', payload: {} });
    await rest(server, 'POST', '/v1/schedules', {
      name: 'ui-weekdays', cron: '0 9 * * 1-5', timezone: 'Europe/Berlin', type: 'demo.echo', queue: 'ops-sched', paused: true,
    });
    try {
      const ticking = page.locator('#schedule-rows tr[data-schedule="ui-every-second"]');
      await ticking.waitFor({ timeout: 15_000 });
      // Read every 5 s: a tick or more by the next read.
      await page.waitForFunction(() => Number(document.querySelector('#schedule-rows tr[data-schedule="ui-every-second"] td[data-col="submitted"]')?.textContent) >= 1,
        undefined, { timeout: 15_000 });
      assert.equal(await ticking.locator('td[data-col="timezone"]').textContent(), 'UTC');
      assert.equal(await ticking.locator('td[data-col="status"]').textContent(), 'active');
      assert.match((await ticking.locator('td[data-col="last"]').textContent()) ?? '', /^\d{4}-\d\d-\d\d \S+ \((now|.* ago)\)job$/);
      const weekdays = page.locator('#schedule-rows tr[data-schedule="ui-weekdays"]');
      assert.equal(await weekdays.getAttribute('data-paused'), 'true');
      assert.equal(await weekdays.locator('td[data-col="timezone"]').textContent(), 'Europe/Berlin');
      assert.equal(await weekdays.locator('td[data-col="next"]').textContent(), 'paused');
      // Resumed: a next run at 09:00 Berlin time, and the page shows it at its next read.
      const resumed = await rest<{ nextRunAt: string }>(server, 'PATCH', '/v1/schedules/ui-weekdays', { paused: false });
      await weekdays.locator(`td[data-col="next"] time[datetime="${resumed.nextRunAt}"]`).waitFor({ timeout: 15_000 });
      assert.equal(await weekdays.getAttribute('data-paused'), 'false');
    } finally {
      for (const name of ['ui-every-second', 'ui-weekdays']) await fetch(`${server.url}/v1/schedules/${name}`, { method: 'DELETE' });
    }
  });

  test('charts: throughput backfilled from the last 15 minutes, then live; queue wait; counts; edges; workers', async () => {
    const total = (series: string) => page.locator(`#throughput-chart path[data-series="${series}"]`).getAttribute('data-total').then(Number);
    // Backfilled at load: everything submitted before the page opened.
    assert.ok(await total('submitted') >= 30, `submitted ${await total('submitted')}`);
    const doneBefore = await total('done');
    assert.ok(doneBefore >= 26, `done ${doneBefore}`);
    assert.ok(await total('dead') >= 2);

    // Live: a job submitted now is counted from the stream, its wait too.
    const waitsBefore = Number(await page.locator('[data-wait-count]').getAttribute('data-wait-count'));
    const live = await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', queue: 'ops-live', payload: {} });
    await until(live.id, (j) => j.state === 'done', 'done');
    await page.waitForFunction((n) => Number(document.querySelector('#throughput-chart path[data-series="done"]')?.getAttribute('data-total')) > n, doneBefore, { timeout: WAIT_MS });
    await page.waitForFunction((n) => Number(document.querySelector('[data-wait-count]')?.getAttribute('data-wait-count')) > n, waitsBefore, { timeout: WAIT_MS });
    assert.ok(await page.locator('#wait-chart path[data-series="median"]').getAttribute('d'), 'the wait is drawn');

    // Per type and per queue.
    const failRow = page.locator('#counts-type-rows tr[data-name="demo.fail"]');
    await failRow.waitFor({ timeout: WAIT_MS });
    assert.equal(await failRow.locator('[data-state-count="dead"]').textContent(), '2');
    await page.locator('#counts-queue-rows tr[data-name="ops-live"]').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#counts-queue-rows tr[data-name="ops-page"] [data-state-count="done"]').textContent(), '23');

    // The workers seen: this scheduler's one, which started the live job's attempt.
    const worker = page.locator(`#workers-rows tr[data-worker="${sched.workerId}"]`);
    await worker.waitFor({ timeout: WAIT_MS });
    assert.ok(Number(await worker.locator('td').nth(2).textContent()) >= 1);

    // The workers registered: this scheduler's one, live, or "not available" on a server without GET /v1/workers.
    const registered = await fetch(`${server.url}/v1/workers`);
    if (registered.status === 404) {
      await page.locator('#presence-note').getByText('Not available').waitFor({ timeout: WAIT_MS });
    } else {
      assert.equal(registered.status, 200);
      const me = page.locator(`#presence-rows tr[data-worker-id="${sched.workerId}"]`);
      await me.waitFor({ timeout: 15_000 });
      assert.equal(await me.getAttribute('data-live'), 'true');
      assert.ok((await me.locator('td[data-col="types"] code').allTextContents()).includes('demo.echo'));
    }

    // The edges: what GET /v1/stats/edges answers, or "not available" while the server has none.
    const res = await fetch(`${server.url}/v1/stats/edges`);
    if (res.status === 404) {
      await page.locator('#edge-note').getByText('Not available').waitFor({ timeout: WAIT_MS });
      assert.equal(await page.locator('#edge-rows tr').count(), 0);
    } else {
      assert.equal(res.status, 200);
      const body = (await res.json()) as { edges: { from: string | null; event: string; to: string }[] };
      // The page polls the edges every 10 s: an edge the server has now is shown by the next poll at the latest.
      for (const e of body.edges) {
        await page.locator(`#edge-rows tr[data-edge-stat="${e.from ?? 'start'}-${e.event}-${e.to}"]`).waitFor({ timeout: 15_000 });
      }
    }
    // The relay backlog, from GET /v1/stats/outbox: a count of rows, as the server has it.
    const outbox = (await (await fetch(`${server.url}/v1/stats/outbox`)).json()) as { rows: number };
    assert.equal(typeof outbox.rows, 'number');
    await page.waitForFunction(() => /^\d+$/.test(document.querySelector('[data-backlog="outbox"]')?.textContent ?? ''), undefined, { timeout: 15_000 });
    await page.locator('#metrics-section').scrollIntoViewIfNeeded();
    await screenshot(page, 'charts', { selector: '#metrics-section' });
    await screenshot(page, 'console', { fullPage: true });
  });

  test('no console error and no script error happened on the page', () => {
    assert.deepEqual(consoleOf.errors, []);
  });
});

describe('the inspector shows a running job\'s progress, live', () => {
  let sched: Awaited<ReturnType<typeof startScheduler>>;
  let server: Server;
  let page: Page;
  let consoleOf: ReturnType<typeof watchConsole>;
  /** The handler waits at each step until the test lets it go on (`next()`). */
  const waiting: Array<() => void> = [];
  const step = () => new Promise<void>((resolve) => waiting.push(resolve));
  async function next(): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    while (waiting.length === 0) {
      assert.ok(Date.now() < deadline, 'the handler is not waiting for a step');
      await new Promise((r) => setTimeout(r, 20));
    }
    waiting.shift()!();
  }
  const get = (id: string) => rest<JobDetail & { progress?: { value: unknown; attempt: number; at: string } | null }>(server, 'GET', `/v1/jobs/${id}`);
  async function until(id: string, ok: (j: Awaited<ReturnType<typeof get>>) => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const j = await get(id);
      if (ok(j)) return;
      assert.ok(Date.now() < deadline, `job ${id} did not become ${what} (it is ${j.state})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const bar = () => page.locator('#job-progress [data-progress="bar"] progress');
  const json = () => page.locator('#job-progress pre[data-progress="json"]');

  before(async () => {
    const registry = registerDemoHandlers(new HandlerRegistry()).register('ui.progress', async (_payload, ctx) => {
      await ctx.progress(25);
      await step();
      await ctx.progress({ stage: 'upload', done: 3, of: 4, note: '<b>not markup</b>' });
      await step();
      await ctx.progress(87.5);
      await step();
      return { uploaded: 4 };
    });
    sched = await startScheduler(registry);
    server = { app: sched.system.app!, url: sched.url, close: () => sched.close() };
    page = await browser.context.newPage();
    consoleOf = watchConsole(page);
    await page.goto(server.url + '/ui');
    await page.locator('#live-mode[data-mode="stream"]').waitFor({ timeout: WAIT_MS });
  });
  after(async () => {
    while (waiting.length > 0) waiting.shift()!(); // a failed test leaves no attempt waiting
    await page?.close();
    await sched?.close();
  });

  test('a bar for a number, the JSON for an object, with the attempt and the time; from the job, then from the stream', async () => {
    const { id } = await rest(server, 'POST', '/v1/jobs', { type: 'ui.progress', payload: {} });
    await page.locator('#job-search').fill(id);
    await page.locator('#job-search').press('Enter');
    await page.locator('#job-facts').getByText(id).waitFor({ timeout: WAIT_MS });

    // 25: by the stream, or by the job's read if the page opened it after the write.
    await page.locator('#job-progress progress[value="25"]').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#job-progress [data-progress="bar"] span').textContent(), '25%');
    assert.match((await page.locator('#job-progress-meta').textContent()) ?? '', /^· attempt 1 · \d\d:\d\d:\d\d\.\d{3}$/);
    assert.equal(await page.locator('#job-facts [data-fact="id"] dd').textContent(), id);

    // An object while the job stays running: no transition, so only the stream can bring it.
    await next();
    await json().waitFor({ timeout: WAIT_MS });
    assert.deepEqual(JSON.parse((await json().textContent()) ?? ''), { stage: 'upload', done: 3, of: 4, note: '<b>not markup</b>' });
    assert.equal(await page.locator('#job-progress b').count(), 0, 'shown as text, never as markup');
    assert.equal(await bar().count(), 0);
    await screenshot(page, 'inspector-progress', { selector: '.inspector' });

    // The page opened afresh on the job: its progress from GET /v1/jobs/:id (nothing new on the stream).
    assert.equal(new URL(page.url()).hash, `#${id}`);
    await page.reload();
    await page.locator('#job-facts').getByText(id).waitFor({ timeout: WAIT_MS });
    await json().waitFor({ timeout: WAIT_MS });
    assert.match((await json().textContent()) ?? '', /"stage": "upload"/);
    await page.locator('#live-mode[data-mode="stream"]').waitFor({ timeout: WAIT_MS });

    // A number again, live; then the job finishes and keeps showing its last progress.
    await next();
    await page.locator('#job-progress progress[value="87.5"]').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#job-progress [data-progress="bar"] span').textContent(), '87.5%');
    await screenshot(page, 'inspector-progress-bar', { selector: '#job-progress' });
    await next();
    await until(id, (j) => j.state === 'done', 'done');
    await page.locator('#job-title [data-badge="done"]').waitFor({ timeout: WAIT_MS });
    assert.equal(await bar().getAttribute('value'), '87.5');
    assert.equal(await page.locator('#job-progress').isHidden(), false);
  });

  test('a job that reported none shows no progress', async () => {
    const { id } = await rest(server, 'POST', '/v1/jobs', { type: 'demo.echo', payload: {} });
    await until(id, (j) => j.state === 'done', 'done');
    await page.locator('#job-search').fill(id);
    await page.locator('#job-search').press('Enter');
    await page.locator('#job-facts').getByText(id).waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#job-progress').isHidden(), true);
  });

  test('no console error and no script error happened on the page', () => {
    assert.deepEqual(consoleOf.errors, []);
  });
});

describe('the workflows panel follows a running order saga, live', () => {
  let sched: Awaited<ReturnType<typeof startScheduler>>;
  let server: Server;
  let page: Page;
  let consoleOf: ReturnType<typeof watchConsole>;
  /** The shipping step waits until the test lets it go on. */
  let ship: () => void = () => undefined;
  const shipping = new Promise<void>((resolve) => {
    ship = resolve;
  });
  const getWorkflow = (id: string) => rest<WorkflowView>(server, 'GET', `/v1/workflows/${id}`);
  async function until(id: string, ok: (w: WorkflowView) => boolean, what: string): Promise<WorkflowView> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const w = await getWorkflow(id);
      if (ok(w)) return w;
      assert.ok(Date.now() < deadline, `instance ${id} did not ${what} (it is ${w.status} in ${JSON.stringify(w.value)})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const activeStates = () => page.locator('#workflow-graph [data-wf-state][data-active="true"]')
    .evaluateAll((els) => els.map((e) => e.getAttribute('data-wf-state') ?? '').sort());
  /** The live count shown on a state's box, or null when it shows none. */
  const countOn = (state: string) => page.locator(`#workflow-graph [data-wf-state="${state}"]`)
    .evaluate((el) => el.querySelector(':scope > [data-wf-count] > text')?.textContent ?? null);
  /** Move the time-travel slider to `step` as a person would (an input event). */
  const slideTo = (step: number) => page.locator('#workflow-step').evaluate((el, n) => {
    const input = el as HTMLInputElement;
    input.value = String(n);
    input.dispatchEvent(new Event('input', { bubbles: true }));
  }, step);
  const markedRow = () => page.locator('#workflow-history tr[aria-current="step"]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-seq')));
  /** The two orders of the first test. */
  const orders: string[] = [];

  before(async () => {
    const registry = registerDemoHandlers(new HandlerRegistry());
    for (const h of saga.handlers) if (h.type !== 'shipping.book') registry.register(h);
    registry.register('shipping.book', async (payload) => {
      await shipping;
      return { trackingId: `tr-${(payload as { orderId: string }).orderId}` };
    });
    saga.register(registry);
    sched = await startScheduler(registry);
    server = { app: sched.system.app!, url: sched.url, close: () => sched.close() };
    page = await browser.context.newPage();
    consoleOf = watchConsole(page);
  });
  after(async () => {
    ship(); // a failed test leaves no attempt waiting
    await page?.close();
    await sched?.close();
  });

  test('the instance\'s machine with its active states and live counts, its children\'s jobs, its history; time travel; then its end, from the stream', async () => {
    const waiting = (w: WorkflowView) => JSON.stringify(w.value) === JSON.stringify({ fulfilling: { stock: 'reserved', shipping: 'booking' } })
      && w.children.some((c) => c.invokeId === 'ship' && c.state === 'running');
    const wf = await rest<WorkflowView>(server, 'POST', '/v1/workflows', { name: 'order.fulfil', input: { orderId: 'o-ui', amount: 30 } });
    // A second order waits for its shipping too: the counts are of every active instance of the version.
    const other = await rest<WorkflowView>(server, 'POST', '/v1/workflows', { name: 'order.fulfil', input: { orderId: 'o-ui-2', amount: 12 } });
    orders.push(wf.id, other.id);
    const running = await until(wf.id, waiting, 'wait for its shipping job, running');
    await until(other.id, waiting, 'wait for its shipping job, running');
    const shipJob = running.children.find((c) => c.invokeId === 'ship')!.jobId;

    await page.goto(server.url + '/ui');
    await page.locator('#live-mode[data-mode="stream"]').waitFor({ timeout: WAIT_MS });
    const row = page.locator(`#workflow-rows tr[data-workflow-id="${wf.id}"]`);
    await row.waitFor({ timeout: WAIT_MS });
    assert.equal(await row.getAttribute('data-status'), 'active');
    await row.click();
    await page.locator(`#workflow-detail[data-workflow-id="${wf.id}"]`).waitFor({ timeout: WAIT_MS });
    await page.locator('#workflow-graph [data-wf-state="order.fulfilling.shipping.booking"][data-active="true"]').waitFor({ timeout: WAIT_MS });
    assert.deepEqual(await activeStates(), [
      'order', 'order.fulfilling', 'order.fulfilling.shipping', 'order.fulfilling.shipping.booking',
      'order.fulfilling.stock', 'order.fulfilling.stock.reserved',
    ]);
    assert.equal(await page.locator('#workflow-graph [data-wf-state]').count(), 15, 'every state of the machine');
    assert.equal(await page.locator('#workflow-graph [data-wf-state="order.fulfilling"]').getAttribute('data-type'), 'parallel');
    assert.equal(await page.locator('#workflow-graph [data-invoke="ship"]').getAttribute('data-job-state'), 'running');
    assert.ok(await page.locator('#workflow-graph [data-wf-edge="order.charging|order.fulfilling"]').count());
    assert.equal(await page.locator(`#workflow-children tr[data-job-id="${shipJob}"] [data-badge]`).textContent(), 'running');
    assert.deepEqual(await page.locator('#workflow-history tr[data-seq]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-type'))), ['START', 'CHILD', 'CHILD']);
    assert.equal(await page.locator('#workflow-outcome').getAttribute('data-kind'), 'running');
    await page.locator('#workflow-live[data-mode="stream"]').waitFor({ timeout: WAIT_MS });

    // Live counts: both orders wait for their shipping; no number where none is.
    assert.equal(await countOn('order.fulfilling.shipping.booking'), '2');
    assert.equal(await countOn('order'), '2');
    assert.equal(await countOn('order.charging'), null);
    assert.match(await page.locator('#workflow-graph [data-wf-state="order.fulfilling.shipping.booking"] > [data-wf-count] > title').textContent() ?? '',
      /^2 active instances of order\.fulfil v1 are in order\.fulfilling\.shipping\.booking$/);
    assert.match(await page.locator('#workflow-counts').textContent() ?? '', /the 2 active instances of order\.fulfil v1/);
    assert.equal(await page.locator('#workflow-counts').getAttribute('data-capped'), 'false');

    // The slider is at the last step and follows.
    assert.equal(await page.locator('#workflow-travel').getAttribute('data-following'), 'true');
    assert.equal(await page.locator('#workflow-step').getAttribute('max'), '3');
    assert.equal(await page.locator('#workflow-step').inputValue(), '3');
    assert.deepEqual(await markedRow(), ['3']);
    await screenshot(page, 'workflows', { selector: '#workflows-section' });

    // Back to the first step: the state it left the instance in, its row of the history.
    await slideTo(1);
    assert.deepEqual(await activeStates(), ['order', 'order.charging']);
    assert.deepEqual(await markedRow(), ['1']);
    assert.equal(await page.locator('#workflow-travel').getAttribute('data-following'), 'false');
    assert.equal(await page.locator('#workflow-step-label').textContent(), 'step 1 of 3: START → charging');
    assert.equal(await countOn('order.fulfilling.shipping.booking'), '2', 'the counts stay live');
    await slideTo(2);
    assert.deepEqual(await activeStates(), [
      'order', 'order.fulfilling', 'order.fulfilling.shipping', 'order.fulfilling.shipping.booking',
      'order.fulfilling.stock', 'order.fulfilling.stock.reserving',
    ]);
    assert.deepEqual(await markedRow(), ['2']);
    await screenshot(page, 'workflows-time-travel', { selector: '#workflows-section' });
    // To the end: it follows again.
    await slideTo(3);
    assert.equal(await page.locator('#workflow-travel').getAttribute('data-following'), 'true');
    assert.deepEqual(await activeStates(), [
      'order', 'order.fulfilling', 'order.fulfilling.shipping', 'order.fulfilling.shipping.booking',
      'order.fulfilling.stock', 'order.fulfilling.stock.reserved',
    ]);
    assert.deepEqual(await markedRow(), ['3']);
    // Stepped back while the instance moves on: the live read does not move the slider.
    await slideTo(1);

    // A child's job opens in the inspector.
    await page.locator(`#workflow-children button[data-open-job="${shipJob}"]`).click();
    await page.locator('#job-facts').getByText(shipJob).waitFor({ timeout: WAIT_MS });

    // The shipping jobs end: the stream's workflow message brings the step, the saga confirms.
    ship();
    await until(other.id, (w) => w.status === 'done', 'end');
    await page.locator('#workflow-detail[data-status="done"]').waitFor({ timeout: WAIT_MS });
    await page.locator('#workflow-step[max="4"]').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#workflow-step').inputValue(), '1', 'still on the step it was moved to');
    assert.equal(await page.locator('#workflow-step-label').textContent(), 'step 1 of 4: START → charging');
    assert.deepEqual(await activeStates(), ['order', 'order.charging']);
    assert.deepEqual(await markedRow(), ['1']);
    assert.equal(await page.locator('#workflow-graph').getAttribute('data-status'), 'active', 'the status after that step');
    // No active instance left: no count on any state (read again with the list).
    await page.waitForFunction(() => document.querySelectorAll('#workflow-graph [data-wf-count]').length === 0, undefined, { timeout: WAIT_MS });
    assert.match(await page.locator('#workflow-counts').textContent() ?? '', /^No active instance of order\.fulfil v1 now/);
    // At the end again: the instance as it is now, followed.
    await slideTo(4);
    assert.equal(await page.locator('#workflow-travel').getAttribute('data-following'), 'true');
    assert.match(await page.locator('#workflow-step-label').textContent() ?? '', /^step 4 of 4: CHILD → confirmed \(now\)$/);
    assert.deepEqual(await markedRow(), ['4']);
    await page.locator('#workflow-graph [data-wf-state="order.confirmed"][data-active="true"]').waitFor({ timeout: WAIT_MS });
    assert.deepEqual(await activeStates(), ['order', 'order.confirmed']);
    assert.equal(await page.locator('#workflow-outcome').getAttribute('data-kind'), 'output');
    assert.match((await page.locator('#workflow-outcome').textContent()) ?? '', /"trackingId": "tr-o-ui"/);
    assert.equal(await page.locator('#workflow-children tr[data-job-id]').count(), 0);
    await page.locator(`#workflow-rows tr[data-workflow-id="${wf.id}"][data-status="done"]`).waitFor({ timeout: WAIT_MS });
    await screenshot(page, 'workflows-done', { selector: '#workflows-section' });
  });

  test('an instance selected that cannot be read: the error stands under its id, not under the last one\'s picture; it shows once read', async () => {
    const [first, second] = orders as [string, string];
    consoleOf.allow(/503 \(Service Unavailable\) @ \S+\/v1\/workflows\/\w+\/graph$/);
    let down = true;
    await page.route((url) => url.pathname === `/v1/workflows/${second}/graph`, (route) => (down
      ? route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ code: 'ATS_ERR_STORE_UNAVAILABLE', message: 'The database is not reachable' }) })
      : route.continue()));
    await page.locator(`#workflow-rows tr[data-workflow-id="${first}"]`).click();
    await page.locator(`#workflow-facts`).getByText(first).waitFor({ timeout: WAIT_MS });
    await page.locator(`#workflow-rows tr[data-workflow-id="${second}"]`).click();
    await page.locator('#workflow-error').getByText('ATS_ERR_STORE_UNAVAILABLE').waitFor({ timeout: WAIT_MS });
    const shown = await page.evaluate(() => ({
      of: document.querySelector('#workflow-detail')?.getAttribute('data-workflow-id'),
      facts: document.querySelector('#workflow-facts')?.textContent ?? '',
      states: document.querySelectorAll('#workflow-graph [data-wf-state]').length,
      history: document.querySelectorAll('#workflow-history tr[data-seq]').length,
      outcome: document.querySelector('#workflow-outcome')?.textContent ?? '',
    }));
    assert.equal(shown.of, second);
    assert.ok(!shown.facts.includes(first), `the facts of ${first} under the error of ${second}: ${shown.facts}`);
    assert.deepEqual([shown.states, shown.history, shown.outcome], [0, 0, ''], 'nothing of the other instance');
    down = false;
    await page.locator('#workflow-facts').getByText(second).waitFor({ timeout: 15_000 });
    await page.locator('#workflow-graph [data-wf-state="order.confirmed"][data-active="true"]').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#workflow-error').textContent(), '');
    await page.unroute((url) => url.pathname === `/v1/workflows/${second}/graph`);
  });

  test('no console error and no script error happened on the page', () => {
    assert.deepEqual(consoleOf.errors, []);
  });
});

describe('the console on a scheduler that requires API keys', () => {
  let sched: Awaited<ReturnType<typeof startScheduler>>;
  let page: Page;
  let consoleOf: ReturnType<typeof watchConsole>;
  let key = '';
  let keyId = '';

  before(async () => {
    sched = await startScheduler();
    const id = ulid();
    keyId = id;
    const made = newApiKey(id, randomBytes(32));
    key = made.key;
    await sched.system.store.createKey({
      id, tenant: 'default', name: 'console', scopes: ['read', 'submit', 'operate'], createdAt: Date.now(), revokedAt: null, createdBy: null, hash: made.hash,
    });
    page = await browser.context.newPage();
    consoleOf = watchConsole(page);
    // Asked for a key, the page's first calls are refused: expected. So are those made with the key revoked
    // before the page learns it is: Chromium reports a stream upgrade refused with 401 in words of its own.
    consoleOf.allow(/401 \(Unauthorized\) @ /);
    consoleOf.allow(/^WebSocket connection to '\S+\/v1\/stream' failed: HTTP Authentication failed; no valid credentials available @ /);
  });
  after(async () => {
    await page?.close();
    await sched?.close();
  });

  test('asks for a key, keeps it for the tab, and then draws the machine live over the stream', async () => {
    // The keys cache of the api says "no key" for up to 2 s after start: wait until it requires keys.
    const deadline = Date.now() + WAIT_MS;
    while ((await fetch(`${sched.url}/v1/machine`)).status !== 401) {
      assert.ok(Date.now() < deadline, 'the api never started requiring keys');
      await new Promise((r) => setTimeout(r, 100));
    }
    await page.goto(sched.url + '/ui');
    await page.locator('#key-gate:not([hidden])').waitFor({ timeout: WAIT_MS });
    assert.match(await page.locator('#key-gate-reason').textContent() ?? '', /requires an API key/);
    await screenshot(page, 'key-gate', { selector: '#key-gate' });
    await page.locator('#key-input').fill(key);
    await page.locator('#key-form button[type=submit]').click();
    await page.waitForLoadState('load');
    await page.locator('#live-mode[data-mode="stream"]').waitFor({ timeout: WAIT_MS });
    await page.locator('[data-state="pending"]').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#key-gate').isHidden(), true);
    assert.equal(await page.locator('#key-forget').isVisible(), true);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('ats.apiKey')), key);
    // A job submitted with the key shows up in the counts.
    const res = await fetch(`${sched.url}/v1/jobs`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ type: 'demo.echo', payload: {} }),
    });
    assert.equal(res.status, 201);
    await page.waitForFunction(() => Number(document.querySelector('[data-state="done"] [data-count]')?.textContent ?? '0') >= 1, undefined, { timeout: WAIT_MS });
  });

  test('"Forget key" drops it and asks again', async () => {
    await page.locator('#key-forget').click();
    await page.waitForLoadState('load');
    await page.locator('#key-gate:not([hidden])').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('ats.apiKey')), null);
  });

  test('a key pasted with a character no header takes (a zero-width space): the form says which, keeps nothing, stays', async () => {
    await page.locator('#key-input').fill(`${key}\u200b`);
    await page.locator('#key-form button[type=submit]').click();
    await page.waitForFunction(() => /U\+200B/.test(document.querySelector('#key-gate-reason')?.textContent ?? ''), undefined, { timeout: WAIT_MS });
    assert.equal(await page.locator('#key-gate').isVisible(), true);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('ats.apiKey')), null);
  });

  test('a read-only key: Submit, Cancel and Redrive are disabled, each saying which scope it needs, and the header says so', async () => {
    const id = ulid();
    const made = newApiKey(id, randomBytes(32));
    await sched.system.store.createKey({ id, tenant: 'default', name: 'viewer', scopes: ['read'], createdAt: Date.now(), revokedAt: null, createdBy: null, hash: made.hash });
    // A job that runs for a while: Cancel is among what it allows, so only the key's scope can disable the button.
    const res = await fetch(`${sched.url}/v1/jobs`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ type: 'demo.sleep', payload: { ms: 60_000 } }),
    });
    assert.equal(res.status, 201);
    const job = (await res.json()) as { id: string };
    await page.locator('#key-input').fill(made.key);
    await page.locator('#key-form button[type=submit]').click();
    await page.waitForLoadState('load');
    await page.locator('#live-mode[data-mode="stream"]').waitFor({ timeout: WAIT_MS });
    await page.locator('#key-scopes:not([hidden])').waitFor({ timeout: WAIT_MS });
    assert.match(await page.locator('#key-scopes').textContent() ?? '', /^Key scopes: read\. Submit, Cancel, Redrive are disabled \(submit, operate scope needed\)\.$/);
    const submit = page.locator('#submit-form button[type=submit]');
    assert.equal(await submit.isDisabled(), true, 'Submit');
    assert.match(await submit.getAttribute('title') ?? '', /may not submit jobs: that needs the submit scope, and the key has read/);
    assert.match(await page.locator('#submit-status').textContent() ?? '', /needs the submit scope/);

    await page.locator('#job-search').fill(job.id);
    await page.locator('#search-form button[type=submit]').click();
    await page.locator('#job-detail:not([hidden])').waitFor({ timeout: WAIT_MS });
    await page.locator('#job-rows').locator(`tr[data-job-id="${job.id}"] input[data-select]`).check({ timeout: WAIT_MS });
    for (const sel of ['#cancel-btn', '#redrive-btn', '#bulk-cancel', '#bulk-redrive']) {
      assert.equal(await page.locator(sel).isDisabled(), true, sel);
      assert.match(await page.locator(sel).getAttribute('title') ?? '', /needs the operate scope, and the key has read/, sel);
    }
    await screenshot(page, 'read-only-key', { selector: 'header' });
    await page.locator('#key-forget').click();
    await page.waitForLoadState('load');
    await page.locator('#key-gate:not([hidden])').waitFor({ timeout: WAIT_MS });
  });

  test('a key without the read scope: the key form asks for one with it, and the machine is not read again', async () => {
    const id = ulid();
    const made = newApiKey(id, randomBytes(32));
    await sched.system.store.createKey({ id, tenant: 'default', name: 'submitter', scopes: ['submit'], createdAt: Date.now(), revokedAt: null, createdBy: null, hash: made.hash });
    consoleOf.allow(/403 \(Forbidden\) @ \S+\/v1\/machine$/);
    const sent: string[] = [];
    const onRequest = (req: { url(): string }) => void sent.push(req.url());
    page.on('request', onRequest);
    await page.locator('#key-input').fill(made.key);
    await page.locator('#key-form button[type=submit]').click();
    await page.waitForLoadState('load');
    // The server answers every call of the console 403 for such a key: no waiting changes that, another key does.
    await page.locator('#key-gate:not([hidden])').waitFor({ timeout: WAIT_MS });
    assert.match(await page.locator('#key-gate-reason').textContent() ?? '', /needs the read scope.*the key has submit.*enter another/);
    await new Promise((r) => setTimeout(r, 3000)); // past the 2 s the machine would be read again after
    page.off('request', onRequest);
    assert.equal(sent.filter((u) => u.endsWith('/v1/machine')).length, 1);
    await page.locator('#key-forget').click();
    await page.waitForLoadState('load');
    await page.locator('#key-gate:not([hidden])').waitFor({ timeout: WAIT_MS });
  });

  test('a key revoked while the page is open: the stream stops, the page says the key is refused and asks for another', async () => {
    // Last: with its only key revoked, the server is open again (`auto`); "Forget key" would then ask for none.
    await page.locator('#key-input').fill(key);
    await page.locator('#key-form button[type=submit]').click();
    await page.waitForLoadState('load');
    await page.locator('#live-mode[data-mode="stream"]').waitFor({ timeout: WAIT_MS });
    assert.equal(await sched.system.store.revokeKey(keyId, Date.now()), true);
    // The stream re-checks open connections' keys every 2 s and closes a revoked key's with 4401.
    await page.locator('#live-mode[data-mode="refused"]').waitFor({ timeout: WAIT_MS });
    await page.locator('#key-gate:not([hidden])').waitFor({ timeout: WAIT_MS });
    assert.match(await page.locator('#key-gate-reason').textContent() ?? '', /not valid \(revoked or mistyped\)/);
    assert.match(await page.locator('#live-mode').textContent() ?? '', /refuses this tab's API key/);
    // Each request with a key that does not work counts against the address (60 a minute, then 429 for
    // everyone at it): once refused, the page's panels send nothing more until a key is given.
    const sent: string[] = [];
    const onRequest = (req: { url(): string }) => void sent.push(req.url());
    page.on('request', onRequest);
    await new Promise((r) => setTimeout(r, 6000)); // longer than the panels' 5 s polls
    page.off('request', onRequest);
    assert.deepEqual(sent.filter((u) => u.includes('/v1/')), []);
  });

  test('no console error and no script error happened on the page (401s of the asking page aside)', () => {
    assert.deepEqual(consoleOf.errors, []);
  });
});
