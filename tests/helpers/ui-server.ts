/**
 * Test fixture for `server/ui/*.test.ts`: the real app with the visualizer on
 * the embedded SQLite store (a fresh file, removed on close), optionally
 * listening on a free port of 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import { mathRandom, systemClock, ulidIds } from '../../engine/system.js';
import { TransitionService } from '../../engine/transitions.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { buildApp, type AppPlugin } from '../../server/app.js';
import { createUiPlugin } from '../../server/ui/index.js';

export interface UiServer {
  app: FastifyInstance;
  /** `http://127.0.0.1:<port>` once listening, else ''. */
  url: string;
  close(): Promise<void>;
}

export async function startUiServer(opts: { listen: boolean; plugins?: AppPlugin[] }): Promise<UiServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ats-ui-'));
  const store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
  const close = async (app?: FastifyInstance) => {
    await app?.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await store.migrate();
    const transitions = new TransitionService({ store, clock: systemClock, random: mathRandom, ids: ulidIds() });
    const app = await buildApp({
      transitions, store, clock: systemClock,
      checks: { database: () => store.ping() },
      limits: { bodyLimitBytes: 1024 * 1024 },
      defaults: { queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0 },
      // Unminified: a failure in the browser then points at readable code.
      plugins: [createUiPlugin({ minify: false }), ...(opts.plugins ?? [])],
    });
    let url = '';
    if (opts.listen) {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const address = app.server.address();
      assert.ok(address && typeof address === 'object');
      url = `http://127.0.0.1:${address.port}`;
    }
    return { app, url, close: () => close(app) };
  } catch (err) {
    await close();
    throw err;
  }
}
