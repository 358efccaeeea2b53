/**
 * `ats keys create|ls|revoke` on the database itself, on the embedded SQLite
 * store (a temp data dir) and on MariaDB: the key printed once matches the
 * stored hash, `ls` shows it without its secret, `revoke` marks it, each
 * change is in the audit log, in the change's transaction (one that cannot
 * be recorded is not made); a bad command line exits 2 and opens nothing;
 * a store that cannot be reached exits 1. One run through `cli/bin.mjs`
 * checks the wiring and that stdout holds the key alone.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createMysqlStore } from '../../adapters/mysql/index.js';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import { keyIdOf, keyMatches } from '../../engine/auth.js';
import type { AuditStore, KeyStore } from '../../engine/ports.js';
import { createTestDatabase, requireMysql, type TestDatabase } from '../../tests/helpers/mysql.js';
import { refuseWrites } from '../../tests/helpers/refuse-writes.js';
import { MAX_KEYS_PER_TENANT } from '../../server/key-schemas.js';
import { runKeys } from './keys.js';

const KEY = /^ats_[0-9A-Z]{26}_[A-Za-z0-9_-]{43}$/;

async function keys(args: string[], env: Record<string, string>) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runKeys(args, env, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

interface Backend {
  name: string;
  setup(): Promise<{ env: Record<string, string>; open(): Promise<KeyStore & AuditStore & { close(): Promise<void> }>; cleanup(): Promise<void> }>;
}

const BACKENDS: Backend[] = [
  {
    name: 'sqlite',
    setup: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'ats-keys-cli-'));
      return {
        env: { ATS_DATA_DIR: dir },
        open: async () => createSqliteStore({ file: join(dir, 'ats.sqlite') }),
        cleanup: async () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 'mysql',
    setup: async () => {
      await requireMysql();
      const db: TestDatabase = await createTestDatabase();
      return { env: { MYSQL_URL: db.url }, open: () => createMysqlStore({ url: db.url, poolSize: 1 }), cleanup: () => db.drop() };
    },
  },
];

for (const backend of BACKENDS) {
  describe(`ats keys on ${backend.name}`, () => {
    let b: Awaited<ReturnType<Backend['setup']>>;
    before(async () => {
      b = await backend.setup();
    });
    after(async () => {
      await b?.cleanup();
    });

    test('create prints the key once, matching the stored hash; ls lists it without the secret; revoke marks it; both are audited', async () => {
      const made = await keys(['create', '--tenant', 'acme', '--scopes', 'read,submit,operate', '--name', 'ci-bot'], b.env);
      assert.equal(made.code, 0, made.stderr);
      assert.match(made.stdout, KEY, 'stdout is the key alone');
      assert.match(made.stderr, /only time it is shown.*cannot be shown again/);
      const key = made.stdout;
      const id = keyIdOf(key)!;

      const store = await b.open();
      try {
        const stored = await store.getKey(id);
        assert.ok(stored && keyMatches(key, stored.hash));
        assert.deepEqual({ ...stored, hash: undefined, createdAt: 0 }, {
          id, tenant: 'acme', name: 'ci-bot', scopes: ['submit', 'read', 'operate'], createdAt: 0, revokedAt: null, createdBy: null, hash: undefined,
        });

        const admin = await keys(['create', '--scopes', 'admin', '--name', 'root', '--json'], b.env);
        assert.equal(admin.code, 0, admin.stderr);
        const json = JSON.parse(admin.stdout) as { key: string; id: string; tenant: string; scopes: string[] };
        assert.equal(json.tenant, 'default', '--tenant defaults to default');
        assert.deepEqual(json.scopes, ['admin']);
        assert.ok(keyMatches(json.key, (await store.getKey(json.id))!.hash));

        const ls = await keys(['ls'], b.env);
        assert.equal(ls.code, 0, ls.stderr);
        const [header, ...rows] = ls.stdout.split('\n');
        assert.match(header!, /^ID\s+TENANT\s+NAME\s+SCOPES\s+CREATED\s+REVOKED$/);
        assert.deepEqual(rows.map((r) => r.split(/\s+/).slice(0, 4)), [[json.id, 'default', 'root', 'admin'], [id, 'acme', 'ci-bot', 'submit,read,operate']]);
        assert.ok(!ls.stdout.includes(key.slice(31)) && !ls.stdout.includes(json.key.slice(31)), 'no secret listed');
        assert.ok(!ls.stdout.includes(stored.hash), 'no hash listed');
        const acme = JSON.parse((await keys(['ls', '--tenant', 'acme', '--json'], b.env)).stdout) as { keys: Array<{ id: string; revokedAt: string | null }> };
        assert.deepEqual(acme.keys.map((k) => [k.id, k.revokedAt]), [[id, null]]);

        const revoked = await keys(['revoke', id], b.env);
        assert.equal(revoked.code, 0, revoked.stderr);
        assert.equal(revoked.stdout, `${id} revoked`);
        assert.notEqual((await store.getKey(id))!.revokedAt, null);
        const after = JSON.parse((await keys(['ls', '--tenant', 'acme', '--json'], b.env)).stdout) as { keys: Array<{ revokedAt: string | null }> };
        assert.match(String(after.keys[0]!.revokedAt), /^\d{4}-\d\d-\d\dT/);
        const again = await keys(['revoke', id], b.env);
        assert.deepEqual([again.code, again.stdout], [0, `${id} was revoked already`]);

        assert.deepEqual((await store.listAudit('acme', 10)).map((e) => [e.action, e.keyId, e.target]), [['key.revoke', null, id], ['key.create', null, id]]);
        assert.deepEqual((await store.listAudit('default', 10)).map((e) => [e.action, e.target]), [['key.create', json.id]]);
      } finally {
        await store.close();
      }
    });

    test('a create or revoke whose audit entry cannot be written changes nothing (exit 1); the revoke run again is recorded', async () => {
      const store = await b.open();
      try {
        await (store as unknown as { migrate(): Promise<void> }).migrate();
        // The database refuses the audit entry, and for the create also the revoke that would undo the key.
        const lift = [await refuseWrites(store, { table: 'audit_log', op: 'INSERT' }), await refuseWrites(store, { table: 'api_keys', op: 'UPDATE' })];
        let lost;
        try {
          lost = await keys(['create', '--tenant', 'cli-tx', '--scopes', 'admin', '--name', 'lost'], b.env);
        } finally {
          for (const l of lift) await l();
        }
        assert.deepEqual([lost.code, lost.stdout], [1, ''], lost.stderr);
        assert.deepEqual(await store.listKeys(10, 'cli-tx'), [], 'no key nobody was shown');

        const made = await keys(['create', '--tenant', 'cli-tx', '--scopes', 'read', '--name', 'kept'], b.env);
        assert.equal(made.code, 0, made.stderr);
        const id = keyIdOf(made.stdout)!;
        const liftAudit = await refuseWrites(store, { table: 'audit_log', op: 'INSERT' });
        let failed;
        try {
          failed = await keys(['revoke', id], b.env);
        } finally {
          await liftAudit();
        }
        assert.equal(failed.code, 1, failed.stderr);
        assert.equal((await store.getKey(id))!.revokedAt, null, 'not revoked without its audit entry');
        const again = await keys(['revoke', id], b.env);
        assert.deepEqual([again.code, again.stdout], [0, `${id} revoked`], again.stderr);
        assert.deepEqual((await store.listAudit('cli-tx', 10)).map((e) => [e.action, e.target]), [['key.revoke', id], ['key.create', id]]);
      } finally {
        await store.close();
      }
    });

    test(`create is not held to the ${MAX_KEYS_PER_TENANT} keys a tenant may hold, yet makes room by deleting its keys revoked longest ago, as the API does`, async () => {
      const store = await b.open();
      try {
        await (store as unknown as { migrate(): Promise<void> }).migrate();
        const ids: string[] = [];
        for (let i = 0; i < MAX_KEYS_PER_TENANT; i++) {
          const id = `01ARZ3NDEKTSV4RRFF${String(i).padStart(8, '0')}`;
          ids.push(id);
          await store.createKey({ id, tenant: 'full', name: 'seeded', scopes: ['read'], createdAt: 1_000 + i, revokedAt: null, createdBy: null, hash: 'x' });
        }
        // Two revoked, the second one first: it is the one a new key replaces.
        await store.revokeKey(ids[7]!, 2_000);
        await store.revokeKey(ids[3]!, 3_000);
        const made = await keys(['create', '--tenant', 'full', '--scopes', 'read', '--name', 'rotated'], b.env);
        assert.equal(made.code, 0, made.stderr);
        // listKeys reads at most the cap: the seeded keys are counted one by one.
        const seededLeft = async () => (await Promise.all(ids.map((id) => store.getKey(id)))).filter((k) => k !== null).length;
        assert.equal(await store.getKey(ids[7]!), null, 'the key revoked longest ago made room');
        assert.ok(await store.getKey(ids[3]!), 'the other revoked key stays');
        assert.ok(await store.getKey(keyIdOf(made.stdout)!));
        assert.equal(await seededLeft(), MAX_KEYS_PER_TENANT - 1, 'the tenant keeps as many keys as the cap');

        // The last revoked key makes room for the next; then none is revoked, and the operator still gets a key.
        const another = await keys(['create', '--tenant', 'full', '--scopes', 'read', '--name', 'rescue'], b.env);
        assert.equal(another.code, 0, another.stderr);
        assert.equal(await store.getKey(ids[3]!), null);
        assert.equal(await seededLeft(), MAX_KEYS_PER_TENANT - 2);
        const past = await keys(['create', '--tenant', 'full', '--scopes', 'read', '--name', 'beyond'], b.env);
        assert.equal(past.code, 0, past.stderr);
        assert.ok(await store.getKey(keyIdOf(past.stdout)!), 'none revoked: the key is made beyond the cap');
        assert.equal(await seededLeft(), MAX_KEYS_PER_TENANT - 2, 'and deletes no key that is not revoked');
      } finally {
        await store.close();
      }
    });

    test('revoking an unknown id exits 1 and says so', async () => {
      const r = await keys(['revoke', '01ARZ3NDEKTSV4RRFFQ69G5FAV'], b.env);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /ATS_ERR_KEY_NOT_FOUND/);
    });
  });
}

describe('ats keys: wrong command lines exit 2 with a clear message and open no store', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ats-keys-cli-bad-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('each bad value is named', async () => {
    const env = { ATS_DATA_DIR: join(dir, 'data') };
    const cases: Array<[string[], RegExp]> = [
      [['create', '--scopes', 'read', '--name', 'x', '--tenant', 'Acme'], /--tenant must be/],
      [['create', '--scopes', 'read', '--name', 'x', '--tenant', ''], /--tenant needs a value/],
      [['ls', '--data-dir='], /--data-dir needs a value/],
      [['create', '--scopes', 'read', '--name', 'a b'], /--name must be/],
      [['create', '--scopes', 'read,root', '--name', 'x'], /--scopes: unknown scope "root"/],
      [['create', '--scopes', ',', '--name', 'x'], /--scopes: name at least one scope/],
      [['create', '--name', 'x'], /--scopes is required/],
      [['create', '--scopes', 'read'], /--name is required/],
      [['create', '--scopes', 'read', '--name', 'x', '--nope'], /Unknown option '--nope'/],
      [['ls', '--tenant', 'A/B'], /--tenant must be/],
      [['revoke'], /missing argument/],
      [['revoke', 'not-an-id'], /is not a key id/],
      [['rotate'], /unknown keys command "rotate"/],
      [[], /missing keys command/],
      [['ls', '--mysql-url', 'http://x'], /mysql/i],
    ];
    for (const [args, why] of cases) {
      const r = await keys(args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, why, args.join(' '));
      assert.equal(r.stdout, '');
    }
    assert.ok(!existsSync(join(dir, 'data')), 'no store was opened');
  });

  test('--mysql-url= (empty) is the embedded store, whatever MYSQL_URL says, as for ats start', async () => {
    const r = await keys(['ls', '--mysql-url='], { MYSQL_URL: 'mysql://root@127.0.0.1:1/ats', ATS_DATA_DIR: join(dir, 'empty-url') });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(dir, 'empty-url', 'ats.sqlite')));
  });

  test('a database that cannot be reached exits 1, naming it', async () => {
    const r = await keys(['ls', '--mysql-url', 'mysql://root@127.0.0.1:1/ats'], {});
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot use the MySQL database/);
  });

  test('a store that cannot work as given (its SQLite file is no database) exits 2, naming the setting, as ats start does', async () => {
    const data = join(dir, 'not-a-database');
    mkdirSync(data);
    writeFileSync(join(data, 'ats.sqlite'), 'not a database, '.repeat(512));
    const r = await keys(['ls'], { ATS_DATA_DIR: data });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^ats: ATS_DATA_DIR \(--data-dir\): the SQLite database .*ats\.sqlite cannot be used: file is not a database \(SQLITE_NOTADB\)/m);
    assert.equal(r.stdout, '');
  });

  test('--help prints every sub-command\'s usage, exit 0', async () => {
    const r = await keys(['--help'], {});
    assert.equal(r.code, 0);
    for (const s of ['ats keys create', 'ats keys ls', 'ats keys revoke', '--data-dir', '--mysql-url']) assert.ok(r.stdout.includes(s), s);
  });
});

test('`ats keys create` through cli/bin.mjs: the key alone on stdout, the note on stderr; `ats --help` lists keys', async () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'ats-keys-bin-'));
  const run = (args: string[]) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['cli/bin.mjs', ...args], { cwd: root, env: { PATH: process.env.PATH ?? '', ATS_DATA_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
  try {
    const r = await run(['keys', 'create', '--scopes', 'submit,read,operate,admin', '--name', 'admin']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ats_[0-9A-Z]{26}_[A-Za-z0-9_-]{43}\n$/);
    assert.match(r.stderr, /cannot be shown again/);
    const store = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    try {
      assert.ok(keyMatches(r.stdout.trim(), (await store.getKey(keyIdOf(r.stdout.trim())!))!.hash));
    } finally {
      await store.close();
    }
    assert.match((await run(['--help'])).stdout, /ats keys create\|ls\|revoke/);
    // The database migrated by a newer build (an upgrade rolled back, or this
    // CLI older than the servers): the migration's warning goes to stderr, and
    // stdout still holds the key alone, so `$(ats keys create ...)` captures it.
    const db = createSqliteStore({ file: join(dir, 'ats.sqlite') });
    try {
      db.db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'newer', 0)").run();
    } finally {
      await db.close();
    }
    const newer = await run(['keys', 'create', '--scopes', 'read', '--name', 'reader']);
    assert.equal(newer.code, 0, newer.stderr);
    assert.match(newer.stdout, /^ats_[0-9A-Z]{26}_[A-Za-z0-9_-]{43}\n$/);
    assert.match(newer.stderr, /migrations this build does not know/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
