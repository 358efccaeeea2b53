/**
 * `ats keys create|ls|revoke`: API keys, made in the DATABASE directly (not
 * through the API): the operator makes the first admin key before any key
 * exists, and can always revoke one. They open the store `ats start` would
 * (MYSQL_URL / ATS_DATA_DIR, or --mysql-url / --data-dir), migrate it, and
 * record `key.create` / `key.revoke` in the audit log (made by no key), in
 * the change's own transaction: a change that cannot be recorded is not made.
 *
 * A key is printed once, by `create`, on a line of its own on stdout (the
 * note that it will not be shown again goes to stderr, as does what the
 * migration logs, so `$(ats keys create ...)` captures the key alone). Only its hash is stored.
 *
 * Exit codes: 0 done, 1 the store failed or has no such key, 2 a wrong
 * command line or setting.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import {
  DEFAULT_TENANT, KEY_NAME_PATTERN, newApiKey, parseScopes, TENANT_PATTERN, type ApiKeyRecord, type Scope,
} from '../../engine/auth.js';
import { isAtsError } from '../../engine/errors.js';
import { createLogger, silentLogger } from '../../engine/logger.js';
import type { AuditStore, KeyStore } from '../../engine/ports.js';
import { systemClock, ulidIds } from '../../engine/system.js';
import { MAX_KEYS_PER_TENANT } from '../../server/key-schemas.js';
import { toKeyView } from '../../server/routes/keys.js';
import type { Config } from '../config.js';
import { namingStoreSetting, openStore } from '../compose.js';
import { configFrom } from '../start.js';
import { parse, str, UsageError, type OptionsConfig, type Values } from './args.js';
import { table } from './output.js';
import type { Command } from './run.js';

/** Where the commands write (the process's stdout and stderr; tests collect them). */
export interface KeysIo {
  out(text: string): void;
  err(text: string): void;
}
const STDIO: KeysIo = {
  out: (text) => void process.stdout.write(text + '\n'),
  err: (text) => void process.stderr.write(text + '\n'),
};

/** The store settings, as `ats start` takes them (`--mysql-url=`: the embedded store, whatever MYSQL_URL says). */
const STORE_OPTIONS: OptionsConfig = { 'mysql-url': { type: 'string', emptyOk: true }, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } };
const STORE_HELP = [
  '--mysql-url URL      the MySQL/MariaDB database (default: $MYSQL_URL); without one, the embedded SQLite store:',
  '--data-dir DIR       the folder of ats.sqlite (default: $ATS_DATA_DIR or ./data), as "ats start" uses it',
];

interface Sub {
  usage: string;
  details: string[];
  options: OptionsConfig;
  positionals: readonly [number, number];
  /** Checks the command line before the store is opened (throws UsageError). */
  check(values: Values, positionals: readonly string[]): void;
  run(ctx: { store: KeyStore & AuditStore; values: Values; positionals: string[]; io: KeysIo; newId: () => string }): Promise<number>;
}

/** Key ids: ULIDs, increasing within a process (keys of one millisecond list in the order made). */
const IDS = ulidIds();

/** A key's id: a ULID (what `ats keys ls` shows). */
const KEY_ID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

function tenantOf(values: Values, fallback?: string): string | undefined {
  const tenant = str(values, 'tenant') ?? fallback;
  if (tenant !== undefined && !TENANT_PATTERN.test(tenant)) {
    throw new UsageError(`--tenant must be 1 to 63 of a-z 0-9 . _ - starting with a letter or digit, got "${tenant.slice(0, 80)}"`);
  }
  return tenant;
}

/** The key record `create` makes from its command line (throws UsageError on a bad value). */
export function keyRecordFrom(values: Values, id: string, now: number): ApiKeyRecord {
  const name = str(values, 'name');
  if (name === undefined) throw new UsageError('--name is required (a label for people, e.g. ci-bot)');
  if (!KEY_NAME_PATTERN.test(name)) throw new UsageError(`--name must be 1 to 100 of A-Z a-z 0-9 . _ : - starting with a letter or digit, got "${name.slice(0, 120)}"`);
  const text = str(values, 'scopes');
  if (text === undefined) throw new UsageError('--scopes is required, e.g. --scopes submit,read');
  let scopes: Scope[];
  try {
    scopes = parseScopes(text);
  } catch (e) {
    throw new UsageError(`--scopes: ${(e as Error).message}`);
  }
  return { id, tenant: tenantOf(values, DEFAULT_TENANT)!, name, scopes, createdAt: now, revokedAt: null, createdBy: null };
}

const createSub: Sub = {
  usage: 'ats keys create --scopes LIST --name NAME [--tenant T] [--json]',
  details: [
    '--scopes LIST        what the key may do, comma-separated: submit, read, operate, admin',
    '--name NAME          a label for people (ci-bot): 1 to 100 of A-Z a-z 0-9 . _ : -',
    `--tenant T           the tenant it acts for (default "${DEFAULT_TENANT}"): 1 to 63 of a-z 0-9 . _ -`,
    '--json               print the key and its record as JSON',
    'Prints the key (ats_<id>_<secret>) once: it is not stored, only its hash, and cannot be shown again.',
  ],
  options: { scopes: { type: 'string' }, name: { type: 'string' }, tenant: { type: 'string' }, json: { type: 'boolean' } },
  positionals: [0, 0],
  check: (values) => void keyRecordFrom(values, '', 0),
  async run({ store, values, io, newId }) {
    const record = keyRecordFrom(values, newId(), systemClock.now());
    const { key, hash } = newApiKey(record.id, randomBytes(32));
    // Not held to the tenant's cap (the operator's way in), but making room as the API does: the keys revoked longest ago go.
    const audit = { at: record.createdAt, keyId: null, tenant: record.tenant, action: 'key.create', target: record.id } as const;
    await store.createKey({ ...record, hash }, audit, MAX_KEYS_PER_TENANT, 'create');
    if (values.json) io.out(JSON.stringify({ key, ...toKeyView(record) }));
    else io.out(key);
    io.err(`ats: key ${record.id} (tenant ${record.tenant}, scopes ${record.scopes.join(',')}) created. ` +
      'This is the only time it is shown: store it now, it cannot be shown again.');
    return 0;
  },
};

const lsSub: Sub = {
  usage: 'ats keys ls [--tenant T] [--json]',
  details: [
    '--tenant T           only this tenant\'s keys (default: every tenant\'s)',
    '--json               print {"keys": [...]} as GET /v1/keys answers it',
    'Keys newest first (at most 1000), revoked ones too; never a secret or a hash.',
  ],
  options: { tenant: { type: 'string' }, json: { type: 'boolean' } },
  positionals: [0, 0],
  check: (values) => void tenantOf(values),
  async run({ store, values, io }) {
    const keys = (await store.listKeys(1000, tenantOf(values))).map(toKeyView);
    if (values.json) io.out(JSON.stringify({ keys }));
    else if (keys.length === 0) io.err('no keys');
    else {
      io.out(table(
        ['ID', 'TENANT', 'NAME', 'SCOPES', 'CREATED', 'REVOKED'],
        keys.map((k) => [k.id, k.tenant, k.name, k.scopes.join(','), k.createdAt, k.revokedAt ?? '-']),
      ).join('\n'));
    }
    return 0;
  },
};

const revokeSub: Sub = {
  usage: 'ats keys revoke ID',
  details: ['ID                   the key\'s id (the ULID after "ats_", as "ats keys ls" shows it); the key is refused from then on'],
  options: {},
  positionals: [1, 1],
  check: (_values, [id]) => {
    if (!KEY_ID.test(id!)) throw new UsageError(`"${id!.slice(0, 80)}" is not a key id (26 characters, as "ats keys ls" shows)`);
  },
  async run({ store, positionals, io }) {
    const id = positionals[0]!;
    const found = await store.getKey(id);
    if (!found) {
      io.err(`ATS_ERR_KEY_NOT_FOUND: no API key has id ${id}`);
      return 1;
    }
    const now = systemClock.now();
    if (!(await store.revokeKey(id, now, { at: now, keyId: null, tenant: found.tenant, action: 'key.revoke', target: id }))) {
      io.out(`${id} was revoked already`);
      return 0;
    }
    io.out(`${id} revoked`);
    return 0;
  },
};

/** The sub-commands by name (a Map: the name comes from the command line). */
const SUBCOMMANDS = new Map<string, Sub>([['create', createSub], ['ls', lsSub], ['revoke', revokeSub]]);

const usageOf = (s: Sub): string => [`usage: ${s.usage}`, ...[...s.details, ...STORE_HELP].map((d) => `  ${d}`)].join('\n');
export const keysUsage = (): string => [...SUBCOMMANDS.values()].map(usageOf).join('\n\n');

/** The store settings given as flags, as `ats start`'s flags (for configFrom). */
function storeArgs(values: Values): string[] {
  const args: string[] = [];
  for (const flag of ['mysql-url', 'data-dir']) {
    const v = str(values, flag);
    if (v !== undefined) args.push(`--${flag}`, v);
  }
  return args;
}

/** `ats keys ...` with its output going to `io`. */
export async function runKeys(args: readonly string[], env: Record<string, string | undefined>, io: KeysIo = STDIO): Promise<number> {
  const [name, ...rest] = args;
  if (name === '--help' || name === '-h' || name === 'help') {
    io.out(keysUsage());
    return 0;
  }
  const sub = name === undefined ? undefined : SUBCOMMANDS.get(name);
  if (!sub) {
    io.err(`ats: ${name === undefined ? 'missing keys command' : `unknown keys command "${name}"`} (create, ls, revoke)\n${keysUsage()}`);
    return 2;
  }
  let config: Config;
  let parsed: { values: Values; positionals: string[] };
  try {
    // --help first, whatever the arguments: then their number.
    parsed = parse(rest, { ...STORE_OPTIONS, ...sub.options }, [0, Infinity]);
    if (parsed.values.help) {
      io.out(usageOf(sub));
      return 0;
    }
    parsed = parse(rest, { ...STORE_OPTIONS, ...sub.options }, sub.positionals);
    sub.check(parsed.values, parsed.positionals);
    config = configFrom(env, storeArgs(parsed.values));
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`ats: ${e.message}\n${usageOf(sub)}`);
      return 2;
    }
    if (isAtsError(e) && e.code === 'ATS_ERR_CONFIG') {
      io.err(`ats: ${e.message}`);
      return 2;
    }
    throw e;
  }
  const where = config.mysqlUrl ? 'the MySQL database (MYSQL_URL)' : `the embedded store ${join(config.dataDir, 'ats.sqlite')}`;
  let store: Awaited<ReturnType<typeof openStore>> | null = null;
  try {
    store = await openStore(config, systemClock, silentLogger);
    // What the migration logs (it waits for another process's; the database
    // holds a newer build's) goes to stderr: stdout holds only what is asked.
    const opened = store;
    await namingStoreSetting(config, () => opened.migrate({ logger: createLogger('info', {}, (line) => io.err(line)) }));
    return await sub.run({ store, values: parsed.values, positionals: parsed.positionals, io, newId: () => IDS.jobId() });
  } catch (e) {
    // A store that cannot work as given (another program's database, a file that is no database): the setting to change.
    if (isAtsError(e) && e.code === 'ATS_ERR_CONFIG') {
      io.err(`ats: ${e.message}`);
      return 2;
    }
    const reason = isAtsError(e) && (e.cause as Error | undefined)?.message ? `${e.message} (${(e.cause as Error).message})` : (e as Error).message;
    io.err(`ats: cannot use ${where}: ${reason}`);
    return 1;
  } finally {
    await store?.close().catch(() => undefined);
  }
}

export const keysCommand: Command = (args, env) => runKeys(args, env);
