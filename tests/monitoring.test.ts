/**
 * The monitoring profile, checked without a Docker engine: docker-compose.yml's
 * prometheus and grafana services start only with the `monitoring` profile
 * and mount files that exist; monitoring/prometheus.yml scrapes each role
 * where it serves /metrics (the api's port, ATS_METRICS_PORT of the others,
 * as compose sets them); Grafana's data source is the dashboard's. And the
 * dashboard names only metrics the scheduler exports: every PromQL `expr` of
 * monitoring/grafana/dashboards/ats.json, against a real scrape of a whole
 * scheduler on MariaDB and Kafka; and groups and filters by labels those
 * metrics carry (a label no series has selects nothing, without an error).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { PrometheusMetrics } from '../adapters/metrics/prometheus.js';
import { SETTINGS } from '../cli/config.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { parseExposition } from './helpers/exposition.js';
import { requireKafka } from './helpers/kafka.js';
import { requireMysql } from './helpers/mysql.js';
import { startTestSystem, waitForJob, type TestSystem } from './helpers/system.js';

// Awaited before any test is declared: under --test-force-exit (scripts/test.sh) a file whose declared
// tests have all ended exits, so a describe declared after this await, once the quick tests above it
// had run, was never run nor reported.
const ready = (await requireMysql()) && (await requireKafka());

const root = new URL('../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8');

type Service = { image?: string; profiles?: string[]; volumes?: string[]; environment?: Record<string, unknown>; ports?: string[] };
const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
type ScrapeConfig = {
  job_name: string; metrics_path?: string; dns_sd_configs?: Array<{ names: string[]; type: string; port: number }>;
  static_configs?: Array<{ targets: string[] }>;
};
const prometheusYml = parse(read('monitoring/prometheus.yml')) as { scrape_configs: ScrapeConfig[] };
type Panel = { type: string; title: string; datasource?: { uid: string }; targets?: Array<{ expr: string; datasource?: { uid: string } }> };
const dashboard = JSON.parse(read('monitoring/grafana/dashboards/ats.json')) as { uid: string; panels: Panel[] };
const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: identifiers that are not
 * functions or aggregations (followed by `(`), keywords, label names (inside
 * `{...}` or a `by (...)` list), durations or Grafana variables.
 */
function metricNamesOf(expr: string): string[] {
  const bare = expr
    .replace(/\$\{?\w+\}?/g, '1m')
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] || KEYWORDS.has(m[1]!.toLowerCase())) continue;
    names.add(m[1]!);
  }
  return [...names];
}

test('the PromQL reader finds metric names, not functions, labels or durations', () => {
  assert.deepEqual(metricNamesOf('histogram_quantile(0.95, sum by (le, type) (rate(ats_job_run_seconds_bucket{queue="a b"}[$__rate_interval])))'), ['ats_job_run_seconds_bucket']);
  assert.deepEqual(metricNamesOf('sum(rate(a_sum[5m])) / sum(rate(a_count[1h] offset 5m))'), ['a_sum', 'a_count']);
  assert.deepEqual(metricNamesOf('max by (state) (sum by (instance, state) (ats_jobs))'), ['ats_jobs']);
});

/** The label names an expression filters (`{name="..."}`) or groups (`by (...)`, `on (...)`, ...) by. */
function labelNamesOf(expr: string): string[] {
  const bare = expr.replace(/\$\{?\w+\}?/g, '1m');
  const names = new Set<string>();
  for (const [, inside] of bare.matchAll(/\{([^}]*)\}/g)) {
    for (const m of inside!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*"/g)) names.add(m[1]!);
  }
  for (const [, list] of bare.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const n of list!.split(',').map((x) => x.trim()).filter(Boolean)) names.add(n);
  }
  return [...names];
}

test('the PromQL reader finds the labels an expression filters and groups by', () => {
  assert.deepEqual(labelNamesOf('histogram_quantile(0.95, sum by (le, type) (rate(ats_job_run_seconds_bucket{queue="a,b", status=~"5.."}[$__rate_interval])))').sort(), ['le', 'queue', 'status', 'type']);
  assert.deepEqual(labelNamesOf('max by (state) (sum by (instance, state) (ats_jobs))').sort(), ['instance', 'state']);
});

test('every label the dashboard filters or groups by is one its metrics carry (or Prometheus adds)', () => {
  // Every metric a process can export, the scrape-time ones included (their sources are not read here).
  const metrics = new PrometheusMetrics();
  metrics.watchStore({ jobCounts: async () => [], outboxBacklog: async () => ({ rows: 0, messages: 0, oldestAt: null }) }, { now: () => 0 });
  metrics.watchConsumerLag(async () => [], { now: () => 0 });
  metrics.watchWorker({ slotUsage: () => ({ busy: 0, free: 0, lingering: 0 }) });
  metrics.watchStream({ clients: () => 0 });
  metrics.scheduleTicks();
  metrics.advisorHooks();
  const labelsOf = new Map<string, string[]>();
  for (const m of metrics.registry.getMetricsAsArray()) {
    const own = (m as unknown as { labelNames?: string[] }).labelNames ?? [];
    if (String(m.type) === 'histogram') {
      labelsOf.set(`${m.name}_bucket`, [...own, 'le']);
      labelsOf.set(`${m.name}_sum`, own);
      labelsOf.set(`${m.name}_count`, own);
    } else {
      labelsOf.set(m.name, own);
    }
  }
  // What Prometheus gives every series of a target: `instance` and `job`, and `role` (monitoring/prometheus.yml).
  const added = ['instance', 'job', 'role'];
  const wrong: string[] = [];
  for (const { panel, expr } of exprs) {
    const names = metricNamesOf(expr);
    for (const n of names) assert.ok(labelsOf.has(n), `${panel}: ${n} is not a metric of PrometheusMetrics`);
    const carried = new Set([...added, ...names.flatMap((n) => labelsOf.get(n) ?? [])]);
    for (const l of labelNamesOf(expr)) if (!carried.has(l)) wrong.push(`${panel}: ${l} (${expr})`);
  }
  assert.deepEqual(wrong, []);
});

test('prometheus and grafana run only in the monitoring profile and mount files that exist', () => {
  for (const name of ['prometheus', 'grafana']) {
    const s = compose.services[name];
    assert.ok(s, `service ${name}`);
    assert.deepEqual(s.profiles, ['monitoring'], `${name} profiles`);
    for (const v of s.volumes ?? []) {
      const source = v.split(':')[0]!;
      if (source.startsWith('./')) assert.ok(existsSync(new URL(source, root)), `${name} mounts ${source}, which does not exist`);
      else assert.ok(source in compose.volumes, `${name}: volume ${source} is not declared`);
    }
  }
  assert.match(compose.services.prometheus!.image!, /^prom\/prometheus:v\d/);
  assert.match(compose.services.grafana!.image!, /^grafana\/grafana:\d/);
  for (const [name, s] of Object.entries(compose.services)) {
    if (!['prometheus', 'grafana'].includes(name)) assert.equal(s.profiles, undefined, `${name} runs without a profile`);
  }
});

test('prometheus.yml scrapes every role where compose serves /metrics', () => {
  // A service found by DNS (every container of a scaled role), or named as a static target (`api:3000`).
  const where = (c: ScrapeConfig): [string | undefined, string | undefined] => {
    const sd = c.dns_sd_configs?.[0];
    if (sd) return [sd.names[0], String(sd.port)];
    const [name, port] = (c.static_configs?.[0]?.targets[0] ?? '').split(':');
    return [name, port];
  };
  const targets = new Map(prometheusYml.scrape_configs.map((c) => [where(c)[0], c]));
  for (const role of ['api', 'relay', 'worker', 'timers']) {
    const c = targets.get(role);
    assert.ok(c, `no scrape config finds the ${role} service`);
    assert.equal(c.metrics_path ?? '/metrics', '/metrics');
    const env = compose.services[role]!.environment ?? {};
    const port = role === 'api' ? String(env.PORT ?? SETTINGS.port.default) : String(env[SETTINGS.metricsPort.env]);
    assert.equal(where(c)[1], port, `${role} serves /metrics on ${port}`);
  }
  // The api answers only the hosts it allows: Prometheus must name it by one of them, not by address.
  const allowed = String(compose.services.api!.environment![SETTINGS.allowedHosts.env] ?? '').split(',');
  assert.ok(targets.get('api')!.static_configs && allowed.includes('api'), 'the api is scraped as api:<port>, a host it allows');
  assert.equal(compose.services.api!.environment![SETTINGS.metricsPort.env], undefined, 'the api serves /metrics on its API port');
});

test('grafana provisions the Prometheus data source the dashboard names, and the dashboard folder it mounts', () => {
  const ds = parse(read('monitoring/grafana/provisioning/datasources/prometheus.yml')) as { datasources: Array<{ uid: string; type: string; url: string }> };
  const [source] = ds.datasources;
  assert.equal(source!.type, 'prometheus');
  assert.equal(new URL(source!.url).hostname, 'prometheus');
  for (const p of dashboard.panels) {
    if (p.type === 'row') continue;
    assert.equal(p.datasource?.uid, source!.uid, `panel ${p.title}`);
  }
  const providers = parse(read('monitoring/grafana/provisioning/dashboards/ats.yml')) as { providers: Array<{ options: { path: string } }> };
  const mounted = (compose.services.grafana!.volumes ?? []).map((v) => v.split(':'));
  assert.ok(mounted.some(([from, to]) => from === './monitoring/grafana/dashboards' && to === providers.providers[0]!.options.path), 'the provider reads the mounted dashboards');
  assert.ok(exprs.length >= 20, `${exprs.length} expressions`);
  const panels = dashboard.panels.map((p) => p.title.toLowerCase()).join(' | ');
  for (const topic of ['edge', 'queue wait', 'run time', 'outcome', 'per state', 'outbox', 'lag', 'event loop', 'api responses', 'api 5xx', 'relay publish failures']) assert.ok(panels.includes(topic), `a panel on ${topic}: ${panels}`);
});

describe('the dashboard against a real scrape', { skip: ready ? false : 'MariaDB or Kafka not reachable (ATS_ALLOW_SKIP=1)' }, () => {
  let t: TestSystem;
  let exported: Set<string>;
  before(async () => {
    t = await startTestSystem();
    const r = await t.system.transitions.submit({ type: 'demo.echo', payload: { a: 1 }, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 5000, priority: 0 });
    assert.ok(r.ok);
    await waitForJob(t.system.store, r.job.id, (j) => j.snapshot.value === 'done');
    const { port } = t.system.app!.server.address() as AddressInfo;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const { samples, types } = parseExposition(text);
    exported = new Set(samples.map((s) => s.name));
    for (const [name, type] of types) {
      const series = type === 'histogram' ? ['_bucket', '_sum', '_count'] : type === 'summary' ? ['', '_sum', '_count'] : [''];
      for (const suffix of series) exported.add(name + suffix);
    }
  });
  after(async () => {
    await t?.stop();
  });

  test('every expression of the dashboard names only metrics the scheduler exports', () => {
    const unknown = exprs.flatMap(({ panel, expr }) => metricNamesOf(expr).filter((n) => !exported.has(n)).map((n) => `${panel}: ${n} (${expr})`));
    assert.deepEqual(unknown, []);
    assert.ok(exported.has('ats_kafka_consumer_lag'), 'on Kafka, the consumer lag is exported');
  });
});
