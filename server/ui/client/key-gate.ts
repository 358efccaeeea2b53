/**
 * The API key of the console, when the server requires keys: asked for on the
 * page and kept in `sessionStorage` (this tab, until it closes), so the page
 * itself holds nothing and every call carries `Authorization: Bearer <key>`
 * (the stream: the `ats.key.<key>` subprotocol).
 */
import { ApiError } from '../../../client/index.js';
import { byId } from './dom.js';

const STORAGE = 'ats.apiKey';

/** The key this tab was given, or null (also for one that cannot be sent, kept by an older page: the page asks again). */
export function storedKey(): string | null {
  let key: string | null;
  try {
    key = sessionStorage.getItem(STORAGE);
  } catch {
    return null; // storage disabled: the server must be open
  }
  return key !== null && keyProblem(key) === null ? key : null;
}

/**
 * Why `key` cannot be a key, or null. A key travels in the Authorization
 * header and in the stream's subprotocol (`ats.key.<key>`), which take
 * visible ASCII only; the server's keys are made of it (`ats_<id>_<secret>`).
 * A key pasted with an invisible character (a zero-width space, say) would
 * make every call fail before it is sent.
 */
export function keyProblem(key: string): string | null {
  const chars = Array.from(key);
  const at = chars.findIndex((c) => c < '!' || c > '~');
  if (at < 0) return null;
  const cp = `U+${chars[at]!.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  return `This key has ${cp} at character ${at + 1}, which a key cannot have (only visible ASCII characters, no spaces): `
    + 'was something pasted with it? Enter the key again.';
}

/** Shows the key form with why it is asked for; a key entered is kept and the page reloads with it. */
export function askForKey(reason: string): void {
  const gate = byId('key-gate');
  byId('key-gate-reason').textContent = reason;
  const input = byId<HTMLInputElement>('key-input');
  if (gate.hidden) {
    gate.hidden = false;
    byId<HTMLFormElement>('key-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      const problem = keyProblem(key);
      if (problem) {
        byId('key-gate-reason').textContent = problem;
        input.focus();
        return;
      }
      try {
        sessionStorage.setItem(STORAGE, key);
      } catch {
        byId('key-gate-reason').textContent = 'This browser does not let the page keep the key (storage is off for this site).';
        return;
      }
      location.reload();
    });
  }
  input.focus();
}

/** Shows "Forget key" while a key is kept; pressing it drops the key and reloads. */
export function bindForgetKey(): void {
  const button = byId<HTMLButtonElement>('key-forget');
  button.hidden = storedKey() === null;
  button.addEventListener('click', () => {
    sessionStorage.removeItem(STORAGE);
    location.reload();
  });
}

/** A 401: the server does not take the page's key (revoked, mistyped, or keys became required). */
export function isKeyRefused(err: unknown): err is ApiError {
  return err instanceof ApiError && err.status === 401;
}

export interface KeyGuard<T> {
  /** The calls, each answering the refusal at once, without a request, once the key is refused. */
  readonly api: T;
  /** The refusal, once there is one. */
  readonly refused: ApiError | null;
  /** The key is refused (a 401, or the stream closed with 4401): send nothing more. */
  refuse(err: ApiError): void;
}

/**
 * Stops every call of the page once the server refuses its key. Each request
 * with a key that does not work counts against the page's address (after 60
 * in a minute the server answers 429 to every client at that address, valid
 * keys included: docs/security.md), and the panels poll several routes every
 * few seconds: a tab left open with a revoked key would keep its address
 * locked out. `onRefused` is told once; a key entered reloads the page. The
 * calls named in `passThrough` (the stream's `watch`, which does not retry a
 * refused key) are not wrapped.
 */
export function guardKey<T extends object>(api: T, onRefused: (err: ApiError) => void, passThrough: readonly (keyof T)[] = []): KeyGuard<T> {
  let refused: ApiError | null = null;
  const refuse = (err: ApiError) => {
    if (refused) return;
    refused = err;
    onRefused(err);
  };
  const guarded = new Map<string, unknown>();
  for (const [name, fn] of Object.entries(api)) {
    if (typeof fn !== 'function' || passThrough.includes(name as keyof T)) {
      guarded.set(name, fn);
      continue;
    }
    guarded.set(name, async (...args: unknown[]) => {
      if (refused) throw refused;
      try {
        return await (fn as (...a: unknown[]) => unknown).apply(api, args);
      } catch (err) {
        if (isKeyRefused(err)) refuse(err);
        throw err;
      }
    });
  }
  return {
    api: Object.fromEntries(guarded) as T,
    get refused() {
      return refused;
    },
    refuse,
  };
}
