/**
 * `/v1/keys`: create, list and revoke the API keys of the caller's tenant
 * (engine/auth.ts, docs/security.md). Every route needs the `admin` scope
 * (the auth hook, server/auth.ts, enforces it); a handler reads the caller's
 * tenant and key from `request.principal`. A key of another tenant is never
 * shown, and revoking one answers 404 as if it did not exist. A new key is
 * shown once, in the answer that creates it: only its hash is stored.
 * With the audit log (`deps.audit`), a create or revoke and its audit entry
 * are one transaction of the key store (engine/ports.ts `KeyStore`): when the
 * entry cannot be written, nothing is (no key nobody was shown, no
 * revocation missing from the log, and the retry of a failed revoke records
 * it). A tenant holds at most MAX_KEYS_PER_TENANT keys not revoked, and
 * as many with its revoked ones: the store deletes those revoked longest
 * ago to make room for a new key.
 * Served only when the app is given keys (`deps.auth`).
 */
import type { FastifyPluginAsync } from 'fastify';
import { newApiKey, parseScopes, type ApiKeyRecord, type Principal } from '../../engine/auth.js';
import { AtsError } from '../../engine/errors.js';
import type { AuditEntry } from '../../engine/ports.js';
import type { RouteOptions } from '../deps.js';
import { iso } from '../job-views.js';
import { CreatedKeyView, CreateKeyBody, KeyList, KeyParams, MAX_KEYS_LISTED, MAX_KEYS_PER_TENANT, type KeyView } from '../key-schemas.js';
import { BODY_STATUSES, described, errorResponses, ref } from '../schemas.js';

const createSchema = {
  operationId: 'createKey',
  summary: 'Create an API key',
  description:
    'Creates a key of the caller\'s tenant with the scopes given and answers it with its secret (`key`), which is shown in this answer ' +
    'only: the server stores its hash. Send it as `Authorization: Bearer <key>`. Recorded in the audit log as `key.create`, ' +
    'in the same transaction: a key whose entry cannot be written is not made. ' +
    `A tenant has at most ${MAX_KEYS_PER_TENANT} keys that are not revoked: one more is a 409 ATS_ERR_TOO_MANY_KEYS, writing nothing ` +
    `(revoke one first). It keeps at most ${MAX_KEYS_PER_TENANT} keys, revoked ones too: a new key beyond that deletes the tenant's key ` +
    'revoked longest ago (its audit entries stay). A create is not repeatable: an Idempotency-Key header is a 400, and a create sent again makes another key.',
  tags: ['keys'],
  body: ref(CreateKeyBody),
  response: { 201: described(ref(CreatedKeyView), 'Created: the key, shown once'), ...errorResponses(400, 409, ...BODY_STATUSES) },
};

const listSchema = {
  operationId: 'listKeys',
  summary: 'The API keys of the caller\'s tenant',
  description: `The caller's tenant's keys, revoked ones too, newest first (at most ${MAX_KEYS_LISTED}): ids, names, scopes and times, never a secret or a hash.`,
  tags: ['keys'],
  response: { 200: described(ref(KeyList), 'The keys'), ...errorResponses() },
};

const revokeSchema = {
  operationId: 'revokeKey',
  summary: 'Revoke an API key',
  description:
    'Revokes the key of the caller\'s tenant: from now on it is refused (401) by this api instance, and by the others within 2 s. Revoking a revoked key is a no-op (204). ' +
    '404 ATS_ERR_KEY_NOT_FOUND when the tenant has no key of this id (a key of another tenant included). Recorded as `key.revoke`, ' +
    'in the same transaction: a key whose entry cannot be written stays as it was.',
  tags: ['keys'],
  params: KeyParams,
  response: { 204: { type: 'null', description: 'Revoked' }, ...errorResponses(400, 404, ...BODY_STATUSES) },
};

export function toKeyView(k: ApiKeyRecord): KeyView {
  return {
    id: k.id, tenant: k.tenant, name: k.name, scopes: [...k.scopes], createdAt: iso(k.createdAt),
    revokedAt: k.revokedAt === null ? null : iso(k.revokedAt), createdBy: k.createdBy,
  };
}

// The id matched ULID_PATTERN: quoting it in a message needs no escaping.
const notFound = (id: string) => new AtsError('ATS_ERR_KEY_NOT_FOUND', `Your tenant has no API key '${id}'`);

export const keyRoutes: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const auth = deps.auth;
  if (!auth) throw new Error('keyRoutes: the app was given no keys (deps.auth)');
  const { keys } = auth;
  // The entry the key store writes with the change; none without an audit log.
  const entry = (p: Principal, action: 'key.create' | 'key.revoke', target: string, at: number): AuditEntry | undefined =>
    deps.audit ? { at, keyId: p.keyId, tenant: p.tenant, action, target } : undefined;

  app.post<{ Body: CreateKeyBody }>('/v1/keys', { schema: createSchema }, async (request, reply) => {
    const p = request.principal;
    // The schema checked each scope; this orders them and drops repeats.
    const scopes = parseScopes(request.body.scopes.join(','));
    const id = auth.newKeyId();
    const { key, hash } = newApiKey(id, auth.randomBytes(32));
    const now = deps.clock.now();
    const record: ApiKeyRecord = { id, tenant: p.tenant, name: request.body.name, scopes, createdAt: now, revokedAt: null, createdBy: p.keyId };
    // At most as many a tenant as the list shows: every key of a tenant can be listed.
    try {
      await keys.createKey({ ...record, hash }, entry(p, 'key.create', id, now), MAX_KEYS_PER_TENANT);
    } finally {
      // Counted on this instance from the 201 on (and after a failure, which may have written the key):
      // the first key ends the open mode of `auto` here at once.
      app.atsKeyCaches.created();
    }
    const view: CreatedKeyView = { ...toKeyView(record), key };
    return reply.code(201).header('cache-control', 'no-store').send(view);
  });

  app.get('/v1/keys', { schema: listSchema }, async (request) => ({
    keys: (await keys.listKeys(MAX_KEYS_LISTED, request.principal.tenant)).map(toKeyView),
  }));

  app.delete<{ Params: KeyParams }>('/v1/keys/:id', { schema: revokeSchema }, async (request, reply) => {
    const p = request.principal;
    const { id } = request.params;
    const found = await keys.getKey(id);
    if (!found || found.tenant !== p.tenant) throw notFound(id);
    const now = deps.clock.now();
    try {
      await keys.revokeKey(id, now, entry(p, 'key.revoke', id, now));
    } finally {
      // Refused on this instance from the 204 on (and after a failure, which may have revoked it): its
      // caches (the auth hook's, the stream's) read the key again.
      app.atsKeyCaches.revoked(id);
    }
    return reply.code(204).send();
  });
};
