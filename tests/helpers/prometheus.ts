/**
 * A real Prometheus server for tests (Debian's `prometheus` package; `.ci/run`
 * installs it): its own config, data folder and port, scraping the given
 * targets every second. A missing binary fails the test (see `requireService`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { requireService } from './services.js';

/** The binary: `PROMETHEUS_BIN`, else `prometheus` on the PATH. */
const BIN = process.env.PROMETHEUS_BIN ?? 'prometheus';

/** True when the binary runs (`--version`); false only when skipping is allowed (see requireService). */
export function requirePrometheus(): Promise<boolean> {
  return requireService('prometheus (apt-get install prometheus)', async () => {
    const r = spawnSync(BIN, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`${BIN} --version exited ${r.status}: ${r.stderr}`);
  });
}

/** One sample of an instant query: its labels and value. */
export interface Sample {
  metric: Record<string, string>;
  value: number;
}

export interface PrometheusServer {
  url: string;
  /** An instant query (`/api/v1/query`), at `time` (epoch ms) or now. */
  query(expr: string, time?: number): Promise<Sample[]>;
  /** The raw samples of a range selector (`name{...}[10s]`) at `time`: per series, [seconds, value] pairs. */
  samples(selector: string, time: number): Promise<Array<{ metric: Record<string, string>; values: Array<[number, number]> }>>;
  /** The query's single value (sum it yourself): fails when the answer is not one sample. */
  scalar(expr: string, time?: number): Promise<number>;
  /** Polls `expr` until `ok(value)` holds, up to `timeoutMs`; resolves with the last value, or throws naming it. */
  until(expr: string, ok: (v: number) => boolean, timeoutMs?: number): Promise<number>;
  output(): string;
  stop(): Promise<void>;
}

/** Starts Prometheus scraping `targets` (`host:port`, path /metrics) every second, and waits until it is ready. */
export async function startPrometheus(targets: readonly string[]): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-prometheus-'));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(config, [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 900ms',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: ats',
    '    metrics_path: /metrics',
    '    static_configs:',
    `      - targets: [${targets.map((t) => JSON.stringify(t)).join(', ')}]`,
    '',
  ].join('\n'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(BIN, [
    `--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };

  const api = async (expr: string, time?: number) => {
    const params = new URLSearchParams({ query: expr });
    if (time !== undefined) params.set('time', String(time / 1000));
    const r = await fetch(`${url}/api/v1/query?${params}`, { signal: AbortSignal.timeout(5000) });
    const body = (await r.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown[] } };
    if (body.status !== 'success' || !body.data) throw new Error(`query ${expr}: ${body.error ?? r.status}`);
    return body.data;
  };
  const query = async (expr: string, time?: number): Promise<Sample[]> => {
    const data = (await api(expr, time)) as { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
    const body = { data };
    if (body.data.resultType === 'scalar') {
      const [, v] = body.data.result as unknown as [number, string];
      return [{ metric: {}, value: Number(v) }];
    }
    return body.data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  };
  const scalar = async (expr: string, time?: number): Promise<number> => {
    const samples = await query(expr, time);
    if (samples.length !== 1) throw new Error(`query ${expr}: ${samples.length} samples, expected 1: ${JSON.stringify(samples)}`);
    return samples[0]!.value;
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited at start (${child.exitCode}): ${out}`);
    }
    const ready = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready within 30 s: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  const samples = async (selector: string, time: number) => {
    const data = (await api(selector, time)) as { resultType: string; result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }> };
    if (data.resultType !== 'matrix') throw new Error(`${selector} is not a range selector (${data.resultType})`);
    return data.result.map((s) => ({ metric: s.metric, values: s.values.map(([t, v]) => [t, Number(v)] as [number, number]) }));
  };

  return {
    url, query, scalar, samples, stop,
    output: () => out,
    async until(expr, ok, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      let last: number | string = 'no sample';
      for (;;) {
        const samples = await query(expr).catch((e: Error) => e);
        if (!(samples instanceof Error) && samples.length === 1) {
          last = samples[0]!.value;
          if (ok(last)) return last;
        } else {
          last = samples instanceof Error ? samples.message : `${samples.length} samples`;
        }
        if (Date.now() > end) throw new Error(`prometheus: ${expr} never satisfied the test within ${timeoutMs} ms (last: ${last})`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
  };
}
