/**
 * The visualizer's routes, without a browser: the redirect, the page and its
 * headers, the bundled script, revalidation, and what stays out of the API docs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startUiServer, type UiServer } from '../../tests/helpers/ui-server.js';
import { noneMatch } from './assets.js';

describe('uiPlugin', () => {
  let server: UiServer;
  before(async () => {
    server = await startUiServer({ listen: false });
  });
  after(async () => {
    await server?.close();
  });
  const get = (url: string, headers: Record<string, string> = {}) => server.app.inject({ method: 'GET', url, headers });

  test('GET / redirects to the page by a relative Location, which a proxy serving the server under a path prefix keeps in it', async () => {
    const res = await get('/');
    assert.equal(res.statusCode, 302);
    assert.equal(res.headers.location, 'ui');
    // As a browser resolves it: at the root, and under a prefix a proxy strips.
    assert.equal(new URL('ui', 'https://ats.invalid/').pathname, '/ui');
    assert.equal(new URL('ui', 'https://ats.invalid/scheduler/').pathname, '/scheduler/ui');
  });

  test('GET /ui serves the page; /ui/ redirects to it (relative), so the page\'s relative URLs resolve from one place', async () => {
    const res = await get('/ui');
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.match(String(res.headers['content-security-policy']), /default-src 'self'/);
    const slash = await get('/ui/?x=1');
    assert.equal(slash.statusCode, 302);
    assert.equal(slash.headers.location, '../ui');
    assert.equal(new URL('../ui', 'https://ats.invalid/scheduler/ui/?x=1').pathname, '/scheduler/ui');
  });

  test('the page loads only assets of this server, by relative URLs (under a proxy\'s path prefix they stay in it)', async () => {
    const res = await get('/ui');
    assert.match(res.body, /<script type="module" src="ui\/assets\/app\.js"><\/script>/);
    assert.match(res.body, /<link rel="stylesheet" href="ui\/assets\/app\.css">/);
    assert.match(res.body, /<a href="docs\/">API docs<\/a>/);
    const urls = [...res.body.matchAll(/(?:src|href|action)="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(urls.length > 3, urls.join(' '));
    // No scheme, no host and no absolute path: each resolves against wherever the page was loaded from.
    assert.deepEqual(urls.filter((u) => !/^(data:|#)/.test(u) && (/^[a-z][a-z0-9+.-]*:/i.test(u) || u.startsWith('/'))), []);
    for (const asset of ['ui/assets/app.js', 'ui/assets/app.css']) {
      assert.equal((await get(new URL(asset, 'http://ats.invalid/').pathname)).statusCode, 200, asset);
    }
  });

  test('the page holds every element the script looks up', async () => {
    const body = (await get('/ui')).body;
    // Every byId('...') of the browser code, read from its sources.
    const dir = fileURLToPath(new URL('./client/', import.meta.url));
    const ids = new Set(readdirSync(dir).filter((f) => f.endsWith('.ts'))
      .flatMap((f) => [...readFileSync(join(dir, f), 'utf8').matchAll(/byId(?:<[^>]+>)?\('([\w-]+)'\)/g)].map((m) => m[1]!)));
    assert.ok(ids.size >= 40, `found ${ids.size} ids`);
    for (const id of [...ids, 'machine', 'job-rows', 'throughput-chart', 'wait-chart', 'workers-rows', 'edge-rows']) {
      assert.match(body, new RegExp(`id="${id}"`), id);
    }
  });

  test('the page holds the advisor\'s elements: the anomaly banner and the ETA hidden until there is one, the insights panel linked', async () => {
    const body = (await get('/ui')).body;
    assert.match(body, /<section id="anomaly-banner"[^>]*\bhidden>/);
    assert.match(body, /<ul id="anomaly-list"[^>]*aria-live="polite"/);
    assert.match(body, /<div id="job-eta"[^>]*\bhidden>\s*<h4>Prediction/);
    assert.match(body, /<section id="insights-section"/);
    assert.match(body, /<nav class="sections"[\s\S]*<a href="#insights-section">Insights<\/a>[\s\S]*<\/nav>/);
    // The ETA sits in the inspector, right after the job's facts.
    assert.ok(body.indexOf('id="job-eta"') > body.indexOf('id="job-facts"') && body.indexOf('id="job-eta"') < body.indexOf('id="job-error"'));
    const css = (await get('/ui/assets/app.css')).body;
    for (const rule of ['.anomaly-banner', '.anomaly-badge', '.job-eta', '.insights', 'tr.verdict-hopeless']) assert.ok(css.includes(rule), rule);
  });

  test('the page holds the inspector\'s progress, hidden until the job has some, with its style; the bundle reads progress messages', async () => {
    const body = (await get('/ui')).body;
    assert.match(body, /<div id="job-progress"[^>]*\bhidden>\s*<h4>Progress <span id="job-progress-meta"[^>]*><\/span><\/h4>\s*<div id="job-progress-value"><\/div>/);
    // After the facts and the ETA, before the buttons.
    assert.ok(body.indexOf('id="job-progress"') > body.indexOf('id="job-eta"') && body.indexOf('id="job-progress"') < body.indexOf('id="cancel-btn"'));
    const css = (await get('/ui/assets/app.css')).body;
    for (const rule of ['.job-progress', '.progress-bar progress']) assert.ok(css.includes(rule), rule);
    const js = (await get('/ui/assets/app.js')).body;
    for (const needle of ['showProgress', 'data-progress', '"progress"']) assert.ok(js.includes(needle), needle);
  });

  test('the page holds the schedules panel, linked from the sections', async () => {
    const body = (await get('/ui')).body;
    assert.match(body, /<section id="schedules-section"[^>]*>[\s\S]*<tbody id="schedule-rows"><\/tbody>/);
    assert.match(body, /<nav class="sections"[\s\S]*<a href="#schedules-section">Schedules<\/a>[\s\S]*<\/nav>/);
    for (const col of ['Name', 'Cron', 'Time zone', 'Next run', 'Last tick', 'Status', 'Submitted', 'Skipped', 'Missed']) {
      assert.match(body, new RegExp(`<th[^>]*>${col}</th>`), col);
    }
    const css = (await get('/ui/assets/app.css')).body;
    for (const rule of ['table.schedules', '.schedule-status']) assert.ok(css.includes(rule), rule);
  });

  test('the page holds the workers panel, linked from the sections, and the unserved banner hidden until there is a line', async () => {
    const body = (await get('/ui')).body;
    assert.match(body, /<section id="workers-section"[^>]*>[\s\S]*<tbody id="presence-rows"><\/tbody>/);
    assert.match(body, /<nav class="sections"[\s\S]*<a href="#workers-section">Workers<\/a>[\s\S]*<\/nav>/);
    for (const col of ['Worker', 'Host', 'Pid', 'Job types', 'Queues', 'Concurrency', 'Last seen', 'Status']) {
      assert.match(body, new RegExp(`<th[^>]*>${col}</th>`), col);
    }
    assert.match(body, /<section id="unserved-banner"[^>]*\bhidden>/);
    assert.match(body, /<ul id="unserved-list"[^>]*aria-live="polite"/);
    // Above the machine, with the anomalies.
    assert.ok(body.indexOf('id="unserved-banner"') < body.indexOf('id="machine-section"'));
    const css = (await get('/ui/assets/app.css')).body;
    for (const rule of ['table.presence', '.worker-status', '.unserved-banner']) assert.ok(css.includes(rule), rule);
    const js = (await get('/ui/assets/app.js')).body;
    for (const needle of ['/v1/workers', 'no live worker handles ', 'unserved']) assert.ok(js.includes(needle), needle);
  });

  test('the page holds the limits panel, linked from the sections; the bundle reads GET /v1/limits', async () => {
    const body = (await get('/ui')).body;
    assert.match(body, /<section id="limits-section"[^>]*>[\s\S]*<tbody id="limit-rows"><\/tbody>/);
    assert.match(body, /<nav class="sections"[\s\S]*<a href="#limits-section">Limits<\/a>[\s\S]*<\/nav>/);
    for (const col of ['Key', 'Running', 'Rate', 'Updated']) assert.match(body, new RegExp(`<th[^>]*>${col}</th>`), col);
    const css = (await get('/ui/assets/app.css')).body;
    assert.ok(css.includes('table.limits'), 'table.limits');
    const js = (await get('/ui/assets/app.js')).body;
    for (const needle of ['/v1/limits', 'data-limit', 'No limit set']) assert.ok(js.includes(needle), needle);
  });

  test('the page holds the workflows panel, linked from the sections; the bundle reads the instances, their graph and the workflow stream', async () => {
    const body = (await get('/ui')).body;
    assert.match(body, /<section id="workflows-section"[^>]*>[\s\S]*<tbody id="workflow-rows"><\/tbody>[\s\S]*<svg id="workflow-graph"/);
    assert.match(body, /<nav class="sections"[\s\S]*<a href="#workflows-section">Workflows<\/a>[\s\S]*<\/nav>/);
    for (const id of ['workflow-detail', 'workflow-children', 'workflow-timers', 'workflow-outcome', 'workflow-history', 'workflow-live']) {
      assert.match(body, new RegExp(`id="${id}"`), id);
    }
    const css = (await get('/ui/assets/app.css')).body;
    for (const rule of ['.wf-box', '[data-active="true"]', '.wf-edge-line']) assert.ok(css.includes(rule), rule);
    const js = (await get('/ui/assets/app.js')).body;
    for (const needle of ['/v1/workflows?limit=', '/graph', 'data-wf-state', 'onWorkflow', 'data-open-job']) assert.ok(js.includes(needle), needle);
  });

  test('the browser code builds no markup from strings: job types and payloads reach the page as text', () => {
    const dir = fileURLToPath(new URL('./client/', import.meta.url));
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
      const code = readFileSync(join(dir, f), 'utf8').replace(/^\s*(\*|\/\/).*$/gm, ''); // comments aside
      assert.doesNotMatch(code, /\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write/, f);
    }
  });

  test('the script is bundled with its layout library, with a source map beside it', async () => {
    const js = await get('/ui/assets/app.js');
    assert.equal(js.statusCode, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    assert.match(js.body, /sourceMappingURL=app\.js\.map/);
    assert.doesNotMatch(js.body, /^\s*import\s/m, 'bundled: no bare imports left for the browser to resolve');
    assert.match(js.body, /data-count/);
    // The advisor's parts: the insights it polls, the stream's insight messages, the ETA.
    for (const needle of ['/v1/insights', 'onInsight', 'data-insight-type', 'anomaly-dismiss-all', 'job-eta-facts']) {
      assert.ok(js.body.includes(needle), needle);
    }
    const map = await get('/ui/assets/app.js.map');
    assert.equal(map.statusCode, 200);
    const sources = (map.json() as { sources: string[] }).sources;
    assert.ok(sources.some((s) => s.includes('@dagrejs/dagre')), 'dagre is in the bundle');
    assert.ok(sources.some((s) => s.endsWith('client/main.ts')));
    assert.ok(sources.some((s) => s.endsWith('client/insights-view.ts')), 'the advisor\'s panel is in the bundle');
    assert.ok(sources.some((s) => s.endsWith('client/schedules-view.ts')), 'the schedules panel is in the bundle');
    assert.ok(js.body.includes('/v1/schedules'), 'the schedules panel reads GET /v1/schedules');
  });

  test('an unchanged asset revalidates to 304', async () => {
    for (const url of ['/ui', '/ui/assets/app.css', '/ui/assets/app.js']) {
      const first = await get(url);
      assert.equal(first.headers['cache-control'], 'no-cache');
      const etag = String(first.headers.etag);
      assert.match(etag, /^"[\w-]+"$/);
      const again = await get(url, { 'if-none-match': etag });
      assert.equal(again.statusCode, 304, url);
      assert.equal(again.body, '');
    }
  });

  test('If-None-Match compares weakly and takes a list or *: a weak tag (a compressing proxy\'s rewrite) or a list holding the tag revalidates to 304', async () => {
    for (const url of ['/ui', '/ui/assets/app.css', '/ui/assets/app.js']) {
      const etag = String((await get(url)).headers.etag);
      for (const header of [`W/${etag}`, `"x", ${etag}`, `W/"x",W/${etag}`, '*']) {
        const again = await get(url, { 'if-none-match': header });
        assert.equal(again.statusCode, 304, `${url} ${header}`);
        assert.equal(again.body, '');
      }
      for (const header of ['"x"', `"x", W/"y"`, etag.slice(0, -1), '']) {
        assert.equal((await get(url, { 'if-none-match': header })).statusCode, 200, `${url} ${header}`);
      }
    }
  });

  test('an unknown asset is a 404 with the registry code', async () => {
    const res = await get('/ui/assets/nope.js');
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().code, 'ATS_ERR_ROUTE_NOT_FOUND');
  });

  test('the UI routes stay out of the OpenAPI document', async () => {
    const doc = (await get('/docs/json')).json() as { paths: Record<string, unknown> };
    assert.ok(doc.paths['/v1/machine'], 'the document lists the API');
    assert.deepEqual(Object.keys(doc.paths).filter((p) => p === '/' || p.startsWith('/ui')), []);
  });
});

describe('noneMatch (If-None-Match against an asset\'s strong ETag, the weak comparison of RFC 9110)', () => {
  const tag = '"abc-_1"';
  test('the tag itself, weak or strong, alone or in a list, or *', () => {
    for (const header of [tag, `W/${tag}`, `"x", ${tag}`, `"x",${tag}`, ` W/"x" ,  W/${tag} `, `, ,${tag},`, '*', ' * ']) {
      assert.equal(noneMatch(header, tag), true, header);
    }
  });
  test('another tag, a near miss, or a malformed field: no match (the body is sent)', () => {
    for (const header of [undefined, '', '"x"', `"x", W/"y"`, 'abc-_1', '"abc-_1', `w/${tag}`, `W/ ${tag}`, `"abc-_12"`, `"x" ${tag}`, `"x"; ${tag}`, '*, "x"']) {
      assert.equal(noneMatch(header, tag), false, String(header));
    }
  });
  test('a comma inside a quoted tag belongs to the tag', () => {
    assert.equal(noneMatch('"a,b"', '"a,b"'), true);
    assert.equal(noneMatch('"a,b"', '"b"'), false);
  });
});
