/**
 * The API key of the console, when the server requires keys: asked for on the
 * page and kept in `sessionStorage` (this tab, until it closes), so the page
 * itself holds nothing and every call carries `Authorization: Bearer <key>`
 * (the stream: the `ats.key.<key>` subprotocol).
 */
import { byId } from './dom.js';

const STORAGE = 'ats.apiKey';

/** The key this tab was given, or null. */
export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE);
  } catch {
    return null; // storage disabled: the server must be open
  }
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
