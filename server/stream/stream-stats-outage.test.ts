/**
 * Job counts that cannot be read (the database away) while many clients ask
 * for periodic stats: each client is told ATS_ERR_STORE_UNAVAILABLE at each
 * tick, and the log says so once as the reads start failing and once as one
 * answers again (it said so once per client and tick: hundreds of lines a
 * second during an outage with a few hundred clients).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createSqliteStore, type SqliteStore } from '../../adapters/sqlite/index.js';
import type { JobStore, Logger } from '../../engine/ports.js';
import { systemClock } from '../../engine/system.js';
import { STATS_OUTAGE_QUIET_MS, StreamHub, type HubDeps } from './hub.js';
import { compileStreamOptions } from './options.js';
import { startStreamInstance, TestClient, type StreamInstance } from '../../tests/helpers/stream.js';

const CLIENTS = 8;

describe('stream stats while the job counts cannot be read', () => {
  let store: SqliteStore;
  let instance: StreamInstance;
  const clients: TestClient[] = [];
  let down = false;
  const lines: Array<{ level: string; msg: string }> = [];
  const logger: Logger = {
    debug: () => undefined,
    info: (msg) => void lines.push({ level: 'info', msg }),
    warn: (msg) => void lines.push({ level: 'warn', msg }),
    error: (msg) => void lines.push({ level: 'error', msg }),
  };

  before(async () => {
    store = createSqliteStore({ file: ':memory:' }) as SqliteStore;
    await store.migrate();
    const flaky = Object.create(store) as JobStore;
    flaky.stats = (tenant) => (down ? Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:3306')) : store.stats(tenant));
    instance = await startStreamInstance({ store: flaky, logger, options: { statsCacheMs: 0 } });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await instance?.close();
    await store?.close();
  });

  const statsLines = () => lines.filter((l) => l.msg.includes('job counts') || l.msg.includes('stats'));

  it(`tells each of ${CLIENTS} clients at each tick, and logs once as it starts and once as it ends`, async () => {
    for (let i = 0; i < CLIENTS; i++) {
      const c = await TestClient.connect(instance.url);
      clients.push(c);
      await c.subscribe({});
    }
    down = true;
    for (const c of clients) c.send({ op: 'stats', everyMs: 250 });
    // Three ticks of each client, each told.
    for (const c of clients) await c.waitFor((ms) => ms.filter((m) => m.kind === 'error' && m.code === 'ATS_ERR_STORE_UNAVAILABLE').length >= 3 || undefined);
    assert.deepEqual(statsLines().map((l) => l.level), ['warn'], JSON.stringify(statsLines()));

    down = false;
    for (const c of clients) {
      const seen = c.messages.length;
      await c.waitFor((ms) => ms.slice(seen).some((m) => m.kind === 'stats') || undefined);
    }
    assert.deepEqual(statsLines().map((l) => l.level), ['warn', 'info'], JSON.stringify(statsLines()));

    // A second outage is logged again.
    down = true;
    for (const c of clients) {
      const seen = c.messages.length;
      await c.waitFor((ms) => ms.slice(seen).some((m) => m.kind === 'error') || undefined);
    }
    assert.deepEqual(statsLines().map((l) => l.level), ['warn', 'info', 'warn']);
    for (const c of clients) c.send({ op: 'stats', everyMs: 0 });
  });

  it('one tenant\'s reads failing while another\'s answer: logged once as it starts and once as it ends, not at each read', async () => {
    const logged: string[] = [];
    const hubLogger: Logger = {
      debug: () => undefined, info: (m) => void logged.push(`info ${m}`), warn: (m) => void logged.push(`warn ${m}`), error: () => undefined,
    };
    const big = { failing: true };
    const counts = {
      readEventsAfter: async () => [], lastEventId: async () => 0,
      stats: async (tenant: string) => {
        if (tenant === 'big' && big.failing) throw new Error('Query execution was interrupted, maximum statement execution time exceeded');
        return store.stats(tenant);
      },
    };
    const hub = new StreamHub({ store: counts, clock: systemClock, logger: hubLogger } as unknown as HubDeps, compileStreamOptions({ statsCacheMs: 0 }));
    const stats = (t: string) => (hub as unknown as { stats(t: string): Promise<unknown> }).stats(t);
    const tick = async () => {
      await stats('big').catch(() => undefined);
      await stats('small');
      await new Promise((r) => setImmediate(r));
    };
    for (let i = 0; i < 10; i++) await tick();
    assert.deepEqual(logged.map((l) => l.split(' ')[0]), ['warn'], logged.join('\n'));
    big.failing = false;
    for (let i = 0; i < 3; i++) await tick();
    assert.deepEqual(logged.map((l) => l.split(' ')[0]), ['warn', 'info'], logged.join('\n'));
  });

  it('a tenant that failed and never asks again: the outage ends at a read that answers a quiet while after the last failure, and the next one is logged', async () => {
    const logged: string[] = [];
    const hubLogger: Logger = {
      debug: () => undefined, info: (m) => void logged.push('info'), warn: (m) => void logged.push('warn'), error: () => undefined,
    };
    const down = { on: true };
    const counts = {
      readEventsAfter: async () => [], lastEventId: async () => 0,
      stats: async (tenant: string) => {
        if (down.on) throw new Error('connect ECONNREFUSED 127.0.0.1:3306');
        return store.stats(tenant);
      },
    };
    let now = 1_000_000;
    const clock = { now: () => now, sleep: systemClock.sleep };
    const hub = new StreamHub({ store: counts, clock, logger: hubLogger } as unknown as HubDeps, compileStreamOptions({ statsCacheMs: 0 }));
    const stats = (t: string) => (hub as unknown as { stats(t: string): Promise<unknown> }).stats(t).catch(() => undefined);
    const settle = () => new Promise((r) => setImmediate(r));
    await stats('a');
    await stats('b');
    await settle();
    down.on = false;
    // Only b asks again: a's clients left during the outage.
    await stats('b');
    await settle();
    assert.deepEqual(logged, ['warn'], 'a has not answered, and it failed just now');
    now += STATS_OUTAGE_QUIET_MS;
    await stats('b');
    await settle();
    assert.deepEqual(logged, ['warn', 'info']);
    down.on = true;
    await stats('b');
    await settle();
    assert.deepEqual(logged, ['warn', 'info', 'warn'], 'the next outage is logged');
  });
});
