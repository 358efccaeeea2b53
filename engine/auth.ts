/**
 * API keys, scopes and tenants: the pure core (no I/O). A key is
 * `ats_<id>_<secret>`: the id (public, shown by `ats keys ls`) finds the
 * stored key, and the SHA-256 of the whole key is compared with the stored
 * hash in constant time. Only the hash is stored; the key is printed once.
 *
 * A caller is a `Principal`: the tenant it acts for and the scopes it holds.
 * Without keys (the open mode, loopback only) every request acts as the
 * default tenant with every scope.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { cutText } from './errors.js';

export const SCOPES = ['submit', 'read', 'operate', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** The tenant of data made before tenants existed, and of every request in the open mode. */
export const DEFAULT_TENANT = 'default';
/**
 * A tenant other than the default may hold at most this part of a shared,
 * bounded resource (queues, stream connections, workflow waits): a quarter of
 * `max`, at least one, so one tenant's keys never take it all.
 */
export const tenantShare = (max: number): number => Math.max(1, Math.floor(max / 4));
/** A tenant name: what a key is created with. */
export const TENANT_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** A key's name: a label for people (`ci-bot`). */
export const KEY_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;

/** Who makes a request. */
export interface Principal {
  /** The key's id; null in the open mode (no keys). */
  keyId: string | null;
  tenant: string;
  scopes: ReadonlySet<Scope>;
}

/** The caller when the API runs without keys: the default tenant, every scope. */
export const OPEN_PRINCIPAL: Principal = Object.freeze({ keyId: null, tenant: DEFAULT_TENANT, scopes: new Set<Scope>(SCOPES) });

/** A key as listed: never its secret or hash. */
export interface ApiKeyRecord {
  id: string;
  tenant: string;
  name: string;
  scopes: Scope[];
  createdAt: number;
  /** null while the key works. */
  revokedAt: number | null;
  /** The id of the key that created it; null when made with the CLI. */
  createdBy: string | null;
}

/** A key as stored: the record and the hex SHA-256 of the whole key. */
export interface StoredApiKey extends ApiKeyRecord {
  hash: string;
}

const KEY_FORMAT = /^ats_([0-9A-Z]{26})_([A-Za-z0-9_-]{43})$/;

/** A new key from a fresh id (a ULID) and 32 random bytes. */
export function newApiKey(id: string, secret: Uint8Array): { key: string; hash: string } {
  if (secret.length !== 32) throw new Error('a key secret is 32 bytes');
  const key = `ats_${id}_${Buffer.from(secret).toString('base64url')}`;
  return { key, hash: hashApiKey(key) };
}

export const hashApiKey = (key: string): string => createHash('sha256').update(key, 'utf8').digest('hex');

/** The id inside a key of our format, or null for anything else. */
export function keyIdOf(key: string): string | null {
  const m = KEY_FORMAT.exec(key);
  return m ? m[1]! : null;
}

/** Whether `key` hashes to `hash`, compared in constant time. */
export function keyMatches(key: string, hash: string): boolean {
  const want = Buffer.from(hash, 'hex');
  const got = createHash('sha256').update(key, 'utf8').digest();
  return want.length === got.length && timingSafeEqual(want, got);
}

/** The key of an `Authorization: Bearer <key>` header, or null. */
export function bearerOf(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  return m ? m[1]! : null;
}

/** `submit,read` → the scopes; throws an Error naming the unknown one. */
export function parseScopes(text: string): Scope[] {
  const list = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new Error(`name at least one scope (${SCOPES.join(', ')})`);
  for (const s of list) if (!(SCOPES as readonly string[]).includes(s)) throw new Error(`unknown scope "${cutText(s, 40)}" (scopes: ${SCOPES.join(', ')})`);
  return [...new Set(list as Scope[])].sort((a, b) => SCOPES.indexOf(a) - SCOPES.indexOf(b));
}

/** The principal of a working stored key. */
export const principalOf = (k: ApiKeyRecord): Principal => ({ keyId: k.id, tenant: k.tenant, scopes: new Set(k.scopes) });

/** How the API authenticates: `open` only without keys on loopback (or with ATS_AUTH=off). */
export type AuthMode = 'auto' | 'on' | 'off';
export const AUTH_MODES: readonly AuthMode[] = ['auto', 'on', 'off'];

/** Whether `host` (the interface the API binds) is loopback only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}
