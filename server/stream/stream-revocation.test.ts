/**
 * The stream re-checks the key each connection was opened with, on both
 * stores (the keys in the store itself, as `ats start` keeps them): a key
 * revoked (`DELETE /v1/keys/:id`) closes its open streams with 4401 within
 * about `KEY_CACHE_MS`, and the instance that revoked it refuses it at once
 * (REST and a stream upgrade: 401); a stream opened while the API was
 * open (`auto`, no key yet) is closed once a key makes keys required; a key
 * store that fails meanwhile closes nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { monotonicFactory } from 'ulid';
import { WebSocket } from 'ws';
import { silentLogger } from '../../engine/logger.js';
import { systemClock } from '../../engine/system.js';
import type { KeyStore } from '../../engine/ports.js';
import { TransitionService } from '../../engine/transitions.js';
import { buildApp, type AuthDeps } from '../app.js';
import { KEY_CACHE_MS } from '../auth.js';
import { TEST_DEFAULTS, testClock } from '../../tests/helpers/app.js';
import { makeKey, type MadeKey } from '../../tests/helpers/keys.js';
import { STORE_BACKENDS, type TestStore } from '../../tests/helpers/stores.js';
import { spec, TestClient } from '../../tests/helpers/stream.js';
import { streamPlugin } from './plugin.js';
import { CLOSE } from './session.js';

const ulid = monotonicFactory();

/** A key store that can be made to fail, as a database that went away. */
class FlakyKeys implements KeyStore {
  down = false;
  constructor(private readonly store: KeyStore) {}
  private check(): void {
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:3306'), { code: 'ECONNREFUSED' });
  }
  createKey = (k: Parameters<KeyStore['createKey']>[0]) => this.store.createKey(k);
  listKeys = (limit: number, tenant?: string) => this.store.listKeys(limit, tenant);
  revokeKey = (id: string, now: number) => this.store.revokeKey(id, now);
  async getKey(id: string) {
    this.check();
    return this.store.getKey(id);
  }
  async countActiveKeys() {
    this.check();
    return this.store.countActiveKeys();
  }
}

interface Instance {
  url: string;
  app: Awaited<ReturnType<typeof buildApp>>;
  transitions: TransitionService;
  close(): Promise<void>;
}

/** An api instance with the stream, its REST and its stream given the same keys (as the composition root does). */
async function startInstance(store: TestStore, auth: AuthDeps): Promise<Instance> {
  // systemClock: its sleeps drop their abort listeners (the re-check sleeps on one signal every 2 s).
  const stream = streamPlugin({ store, clock: systemClock, logger: silentLogger, options: { pollMs: 20 }, auth });
  const transitions = new TransitionService({
    store, clock: testClock, random: { next: Math.random }, ids: { jobId: () => ulid() }, onCommit: () => stream.wake(),
  });
  const app = await buildApp({
    transitions, store, clock: testClock, checks: { database: () => store.ping() }, limits: { bodyLimitBytes: 1024 * 1024 },
    defaults: TEST_DEFAULTS, plugins: [stream], auth, audit: store,
  });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, transitions, url: `${address.replace(/^http/, 'ws')}/v1/stream`, close: () => app.close() };
}

const authOf = (keys: KeyStore, mode: AuthDeps['mode']): AuthDeps => ({ keys, mode, newKeyId: () => ulid(), randomBytes: (n) => randomBytes(n) });

/** Long enough for the stream's re-check to have run after a change of keys, with room for a slow machine. */
const RECHECK_WAIT_MS = 3 * KEY_CACHE_MS;

/** A stream upgrade's outcome: the HTTP status of a refusal, or that it opened (then closed at once). */
function upgrade(url: string, headers: Record<string, string>): Promise<{ status: number } | { opened: true }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      res.resume();
      ws.terminate();
    });
    ws.once('open', () => {
      resolve({ opened: true });
      ws.close();
    });
    ws.on('error', reject); // after a refusal, terminate() errors too: the promise is settled by then
  });
}

for (const backend of STORE_BACKENDS) {
  describe(`stream key re-check (${backend.name})`, () => {
    let store: TestStore;
    let cleanup: () => Promise<void>;
    const clients: TestClient[] = [];
    const instances: Instance[] = [];
    const connect = async (instance: Instance, as?: MadeKey) => {
      const c = await TestClient.connect(instance.url, as ? { headers: as.headers } : {});
      clients.push(c);
      return c;
    };
    const start = async (auth: AuthDeps) => {
      const i = await startInstance(store, auth);
      instances.push(i);
      return i;
    };

    before(async () => {
      ({ store, cleanup } = await backend.open());
      await store.migrate();
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      for (const i of instances) await i.close();
      await cleanup?.();
    });

    it('a revoked key\'s open stream is closed with 4401 and gets nothing more; another key\'s stream goes on', async () => {
      const reader = await makeKey(store, 'acme', ['read']);
      const admin = await makeKey(store, 'acme', ['read', 'admin']);
      const instance = await start(authOf(store, 'on'));
      const revoked = await connect(instance, reader);
      const kept = await connect(instance, admin);
      await revoked.subscribe({});
      await kept.subscribe({});

      const del = await instance.app.inject({ method: 'DELETE', url: `/v1/keys/${reader.record.id}`, headers: admin.headers });
      assert.equal(del.statusCode, 204);
      const closed = await revoked.waitClosed(RECHECK_WAIT_MS);
      assert.deepEqual(closed, CLOSE.keyRevoked);
      const rest = await instance.app.inject({ method: 'GET', url: '/v1/jobs', headers: reader.headers });
      assert.equal(rest.statusCode, 401, 'REST refuses the key too');

      const [a] = await instance.transitions.submitMany([spec('t.revoked', 'q', { tenant: 'acme' })]);
      await instance.transitions.apply(a!.job.id, { type: 'CANCEL' });
      await kept.waitFor(() => kept.events().length >= 2 || undefined);
      assert.equal(kept.closed, null, 'a key still valid keeps its stream');
      assert.deepEqual(revoked.events(), [], 'the revoked key got no event');
    });

    it('a key revoked on this instance is refused there at once: a request right after the 204 is a 401, and so is a stream upgrade', async () => {
      const reader = await makeKey(store, 'acme', ['read']);
      const admin = await makeKey(store, 'acme', ['read', 'admin']);
      const instance = await start(authOf(store, 'on'));
      const open = await connect(instance, reader); // the upgrade read the key: this instance holds it now
      await open.subscribe({});
      assert.equal((await instance.app.inject({ method: 'GET', url: '/v1/jobs', headers: reader.headers })).statusCode, 200);

      const del = await instance.app.inject({ method: 'DELETE', url: `/v1/keys/${reader.record.id}`, headers: admin.headers });
      assert.equal(del.statusCode, 204);
      const rest = await instance.app.inject({ method: 'GET', url: '/v1/jobs', headers: reader.headers });
      assert.equal(rest.statusCode, 401, rest.body);
      assert.deepEqual(await upgrade(instance.url, reader.headers), { status: 401 }, 'a reconnect is refused, not let in to be closed with 4401');
      assert.deepEqual(await open.waitClosed(RECHECK_WAIT_MS), CLOSE.keyRevoked, 'the open stream is closed');
      assert.deepEqual(await upgrade(instance.url, admin.headers), { opened: true }, 'another key still gets in');
    });

    it('a stream opened while the API was open (auto, no key) is closed once a key exists', async () => {
      const fresh = await backend.open();
      try {
        await fresh.store.migrate();
        const instance = await startInstance(fresh.store, authOf(fresh.store, 'auto'));
        try {
          const open = await TestClient.connect(instance.url);
          clients.push(open);
          await open.subscribe({});
          await sleep(KEY_CACHE_MS + 500);
          assert.equal(open.closed, null, 'without keys the open stream stays');
          await makeKey(fresh.store, 'default');
          assert.deepEqual(await open.waitClosed(RECHECK_WAIT_MS), CLOSE.keyRequired);
          const again = await instance.app.inject({ method: 'GET', url: '/v1/stream' });
          assert.equal(again.statusCode, 401, 'and a new one needs a key');
        } finally {
          await instance.close();
        }
      } finally {
        await fresh.cleanup();
      }
    });

    it('a key store that fails during the re-check closes nothing; once it answers, a revocation closes the stream', async () => {
      const flaky = new FlakyKeys(store);
      const key = await makeKey(store, 'globex', ['read']);
      const instance = await start(authOf(flaky, 'on'));
      const c = await connect(instance, key);
      await c.subscribe({});
      flaky.down = true;
      await sleep(RECHECK_WAIT_MS);
      assert.equal(c.closed, null, 'an unavailable key store is not a revocation');
      const [g] = await instance.transitions.submitMany([spec('t.flaky', 'q', { tenant: 'globex' })]);
      await c.waitFor(() => c.events().some((e) => e.jobId === g!.job.id) || undefined);

      await store.revokeKey(key.record.id, Date.now());
      await sleep(KEY_CACHE_MS);
      assert.equal(c.closed, null, 'still unable to read the key: the stream stays');
      flaky.down = false;
      assert.deepEqual(await c.waitClosed(RECHECK_WAIT_MS), CLOSE.keyRevoked);
    });
  });
}
