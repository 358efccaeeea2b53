/**
 * `ats start` and LOG_FORMAT: the default is JSON lines whose first is
 * `ats ready`; `pretty` writes readable lines (pino-pretty); anything else is
 * a bad setting (exit 2, naming LOG_FORMAT).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startUntilReady } from '../tests/helpers/processes.js';

/** `ats start` on the embedded backends with `extra` settings; resolves once it logged `ats ready` (then stops it) or exited. */
async function start(extra: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-log-format-'));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: dir, ...extra };
    delete env.MYSQL_URL;
    delete env.KAFKA_BROKERS;
    delete env.NODE_TEST_CONTEXT;
    return await startUntilReady(env, 60_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('LOG_FORMAT', { timeout: 120_000 }, () => {
  it('json (the default): JSON lines, the first `ats ready` at info with pid, hostname and role', async () => {
    const { code, stdout, stderr } = await start({ LOG_LEVEL: 'info' });
    assert.equal(code, 0, stderr);
    const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.match(String(lines[0]!.msg), /^ats ready: open http:\/\/localhost:\d+\/ui/);
    assert.equal(lines[0]!.level, 'info');
    assert.equal(typeof lines[0]!.pid, 'number');
    assert.equal(typeof lines[0]!.hostname, 'string');
    assert.equal(lines[0]!.role, 'api,relay,worker,timers');
    assert.ok(lines.some((l) => l.msg === 'ats: shutting down'), stdout);
  });

  it('pretty: readable lines, not JSON', async () => {
    const { code, stdout, stderr } = await start({ LOG_LEVEL: 'info', LOG_FORMAT: 'pretty' });
    assert.equal(code, 0, stderr);
    const lines = stdout.split('\n').filter(Boolean);
    assert.ok(lines.length > 0, stderr);
    // A line per entry, `[time] LEVEL: message`, its fields indented below it: no JSON object.
    for (const l of lines) assert.match(l, /^(\[\d\d:\d\d:\d\d\.\d{3}\] (DEBUG|INFO|WARN|ERROR): |\s)/, `not a pretty line: ${l}`);
    assert.ok(!lines.some((l) => l.startsWith('{')), stdout);
    assert.match(stdout, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ats ready: open http:\/\/localhost:\d+\/ui/m);
    assert.match(stdout, /role: "api,relay,worker,timers"/);
  });

  it('anything else: exit 2 naming LOG_FORMAT', async () => {
    const { code, stderr } = await start({ LOG_FORMAT: 'xml' });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /^ats: LOG_FORMAT \(--log-format\): unknown format "xml" \(formats: json, pretty\)$/m);
  });
});
