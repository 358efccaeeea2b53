/**
 * tests/jobs.http runs, top to bottom, against a real scheduler: `httpyac send
 * tests/jobs.http --all` (the command README.md gives) on a fresh server with
 * the embedded store, and every request answers the status its `# expect NNN`
 * line says. A request that uses `{{name.response.body.id}}` must have been
 * sent to the job the request named `name` created (not just any job).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SETTINGS } from '../cli/config.js';
import { freePort } from './helpers/ports.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const HTTP_FILE = 'tests/jobs.http';
const HTTPYAC = join(root, 'node_modules/httpyac/bin/httpyac.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One request of the file: the line of its `###` (httpyac's `line`), request line, expected status. */
type FileRequest = { line: number; method: string; url: string; expect: number };

/** The requests of jobs.http, each with the status of its `# expect NNN` line. */
function fileRequests(text: string): FileRequest[] {
  const out: FileRequest[] = [];
  let region: { line: number; expect?: number } | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line.startsWith('###')) return void (region = { line: i + 1 });
    if (!region) return;
    const expect = /^#\s*expect\s+(\d{3})$/.exec(line);
    if (expect) return void (region.expect = Number(expect[1]));
    const request = /^(GET|POST|PUT|PATCH|DELETE)\s+(\S+)/.exec(line);
    if (request) {
      assert.ok(region.expect, `${HTTP_FILE} line ${i + 1}: no "# expect NNN" line above ${line}`);
      out.push({ line: region.line, method: request[1]!, url: request[2]!, expect: region.expect });
      region = null;
    }
  });
  return out;
}

type Sent = {
  line: number;
  name?: string;
  response?: { statusCode: number; body?: string; request?: { url: string; method: string } };
};
type Report = { requests: Sent[]; summary: { totalRequests: number; erroredRequests: number; failedRequests: number } };

/** This process's environment without any scheduler setting (`npm test` exports MYSQL_URL and KAFKA_BROKERS). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const s of Object.values(SETTINGS)) delete env[s.env];
  delete env.NODE_TEST_CONTEXT;
  return { ...env, ...extra };
}

describe('tests/jobs.http with httpyac', () => {
  let server: ChildProcess | undefined;
  let exited: Promise<unknown> | undefined;
  let dataDir: string;
  let baseUrl: string;
  let output = '';

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'ats-jobs-http-'));
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    // The embedded store and in-process log: one process runs every role.
    server = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'start'], {
      cwd: root,
      env: cleanEnv({ PORT: String(port), ATS_DATA_DIR: dataDir, LOG_LEVEL: 'warn' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout!.on('data', (d) => (output += d));
    server.stderr!.on('data', (d) => (output += d));
    exited = new Promise((resolve) => server!.once('exit', resolve));
    const deadline = Date.now() + 90_000;
    for (;;) {
      const ready = await fetch(`${baseUrl}/readyz`).then((r) => r.ok, () => false);
      if (ready) break;
      assert.equal(server.exitCode, null, `the scheduler exited: ${output}`);
      assert.ok(Date.now() < deadline, `the scheduler was not ready within 90 s: ${output}`);
      await sleep(200);
    }
  });

  after(async () => {
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('every request answers the status its "# expect" line gives', async () => {
    const requests = fileRequests(readFileSync(join(root, HTTP_FILE), 'utf8'));
    assert.ok(requests.length >= 20, `only ${requests.length} requests in ${HTTP_FILE}`);

    const run = await promisify(execFile)(
      process.execPath,
      [HTTPYAC, 'send', HTTP_FILE, '--all', '--json', '--var', `baseUrl=${baseUrl}`],
      { cwd: root, env: cleanEnv({}), timeout: 180_000, maxBuffer: 64 << 20 },
    ).catch((e: { stdout?: string; stderr?: string; message: string }) => {
      assert.fail(`httpyac failed: ${e.message}\n${e.stderr ?? ''}\n${(e.stdout ?? '').slice(0, 4000)}`);
    });
    const report = JSON.parse(run.stdout) as Report;
    assert.equal(report.summary.erroredRequests, 0, run.stdout.slice(0, 4000));
    assert.equal(report.summary.failedRequests, 0);

    // A request httpyac repeats (`# @loop`) is reported once per pass, under the line of its `###`.
    const byLine = new Map<number, Sent[]>();
    for (const sent of report.requests) byLine.set(sent.line, [...(byLine.get(sent.line) ?? []), sent]);
    assert.deepEqual([...byLine.keys()], requests.map((r) => r.line), 'httpyac sent every request of the file, in order');

    const idOf = new Map<string, string>();
    for (const r of requests) {
      const answered = byLine.get(r.line)!.filter((s) => s.response);
      assert.ok(answered.length > 0, `line ${r.line}: ${r.method} ${r.url} got no answer`);
      for (const s of answered) {
        const { statusCode, body, request } = s.response!;
        assert.equal(statusCode, r.expect, `line ${r.line}: ${request?.method} ${request?.url} answered ${statusCode}: ${body?.slice(0, 300)}`);
        // {{name.response.body.id}}: the id of the job the request named `name` created.
        for (const [, name] of r.url.matchAll(/\{\{(\w+)\.response\.body\.id\}\}/g)) {
          assert.ok(idOf.has(name!), `line ${r.line} uses ${name} before a request of that name answered`);
          assert.ok(request?.url.includes(`/v1/jobs/${idOf.get(name!)}`), `line ${r.line}: ${request?.url} is not job ${name}`);
        }
        if (s.name && requests.some((q) => q.url.includes(`{{${s.name}.response.body.id}}`))) {
          idOf.set(s.name, (JSON.parse(body!) as { id: string }).id);
        }
      }
    }
    assert.deepEqual([...idOf.keys()].sort(), ['delayed', 'failing', 'submit']);
  });
});
