/**
 * The API's connection cap at start, under the process's open-file limit: a
 * default lowered to half of it is said once at info, a setting at or above
 * it kept and warned about once (cli/compose.ts, server/connections.ts
 * `connectionCapNotice`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compose } from './compose.js';
import { compileConfig, type RawConfig } from './config.js';
import { HandlerRegistry } from '../engine/handlers.js';
import type { Logger } from '../engine/ports.js';

async function started(settings: RawConfig, openFileLimit: number | null): Promise<{ maxConnections: number; lines: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> }> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-cap-start-'));
  const lines: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, ...(fields ? { fields } : {}) });
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  const config = compileConfig({ dataDir: dir, port: 0, host: '127.0.0.1', advisor: 'off', ...settings }, { hostname: 't', pid: 1, openFileLimit });
  const system = await compose(config, { registry: new HandlerRegistry(), logger });
  try {
    await system.start();
    return { maxConnections: system.app!.server.maxConnections, lines: lines.filter((l) => /connections/.test(l.msg) && /open-file limit/.test(l.msg)) };
  } finally {
    await system.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('unset, under an open-file limit of 1,024: the API takes 512 connections, said once at info', async () => {
  const { maxConnections, lines } = await started({}, 1024);
  assert.equal(maxConnections, 512);
  assert.deepEqual(lines.map((l) => [l.level, l.fields]), [['info', { maxConnections: 512, openFileLimit: 1024 }]]);
});

test('set above the open-file limit: kept, and one warning naming both numbers', async () => {
  const { maxConnections, lines } = await started({ httpMaxConnections: '5000' }, 1024);
  assert.equal(maxConnections, 5000);
  assert.deepEqual(lines.map((l) => [l.level, l.fields]), [['warn', { maxConnections: 5000, openFileLimit: 1024 }]]);
  assert.match(lines[0]!.msg, /5000.*1024/);
});

test('under a large or unknown limit: 10,000, and nothing said', async () => {
  for (const limit of [1_048_576, null]) {
    const { maxConnections, lines } = await started({}, limit);
    assert.equal(maxConnections, 10_000);
    assert.deepEqual(lines, []);
  }
});
