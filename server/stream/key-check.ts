/**
 * Whether the principal a stream connection was opened as still holds. The
 * auth hook (server/auth.ts) checks the key once, at the upgrade; a
 * connection lives on for hours, so the hub asks this again every
 * `keyCheckMs` (hub.ts) and closes with 4401 the connections that would be
 * refused now: a key revoked (or gone), or, opened while the API was open
 * (`auto` with no key), keys required since. Keys are read as REST reads
 * them (a `KeyCache` of its own: at most once per `KEY_CACHE_MS`), so a
 * revocation reaches open streams about when it reaches new requests. Made
 * among the instance's `KeyCaches` (server/auth.ts), the cache drops a key
 * revoked through the instance at once, as the auth hook's does.
 *
 * A read that fails throws: an unavailable key store is not a revocation,
 * and the hub closes nothing then.
 *
 * The workflow waits (server/routes/workflows.ts), long polls of up to two
 * minutes, ask it too before each read of their instance, and end with 401.
 */
import type { Principal, StoredApiKey } from '../../engine/auth.js';
import type { Clock } from '../../engine/ports.js';
import { KeyCache, type KeyCaches } from '../auth.js';
import type { AuthDeps } from '../deps.js';

/** What the stream needs of the API's keys: the same store and mode as `buildApp`'s `auth`. */
export type StreamAuth = Pick<AuthDeps, 'keys' | 'mode'>;

/** `valid`: the connection stays; `revoked`: its key no longer works; `keyRequired`: opened without a key, one is needed now. */
export type Standing = 'valid' | 'revoked' | 'keyRequired';

/** A keyed connection's standing from its key as read now (null: no such key any more). */
export const keyStanding = (key: StoredApiKey | null): Standing => (key !== null && key.revokedAt === null ? 'valid' : 'revoked');

/**
 * A keyless connection's standing: under `off` keys are never needed; under
 * `auto` they are once some key works (revoking the last one on loopback
 * opens the API again, docs/security.md); under `on` always (no keyless
 * connection is let in then).
 */
export function openStanding(mode: StreamAuth['mode'], anyActive: boolean): Standing {
  if (mode === 'off') return 'valid';
  return mode === 'auto' && !anyActive ? 'valid' : 'keyRequired';
}

/**
 * The standing of `principal` now: at most one key-store read per key (or one count) per `KEY_CACHE_MS`; throws when the read fails.
 * `caches`: the instance's (`app.atsKeyCaches`), so that a key revoked through it is read again at once. @defaultValue a cache of its own
 */
export function keyChecker(auth: StreamAuth, clock: Clock, caches?: KeyCaches): (principal: Principal) => Promise<Standing> {
  const cache = caches ? caches.cache(auth.keys, clock) : new KeyCache(auth.keys, clock);
  return async (principal) => {
    if (principal.keyId !== null) return keyStanding(await cache.get(principal.keyId));
    // Only `auto` can change its mind without a restart: no read otherwise.
    return openStanding(auth.mode, auth.mode === 'auto' && (await cache.anyActive()));
  };
}
