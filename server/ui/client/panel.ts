/**
 * What the polled panels (insights, schedules, workers) share: one read at a
 * time into the panel, its note saying where the data came from or why there
 * is none, and polling while the page is visible.
 */
import { errorText } from './api.js';
import { clockTime } from './dom.js';

export interface PanelRead<T> {
  /** The route read, as the note names it: `GET /v1/schedules`. */
  route: string;
  pollMs: number;
  note: HTMLElement;
  now: () => number;
  /** The answer, or null when the server does not serve the route. */
  read(): Promise<T | null>;
  /** The route is not served: clear what the panel showed. */
  absent(): void;
  /** A fresh answer: draw it. */
  got(value: T): void | Promise<void>;
  /** Said after "Not available: this server has no <route>", e.g. ` (an older version)`. @defaultValue '' */
  absentWhy?: string;
}

/** The panel's refresh: a call while one runs does nothing; a failure is said in the note, and what was shown stays. */
export function panelRefresh<T>(p: PanelRead<T>): () => Promise<void> {
  let inFlight = false;
  return async () => {
    if (inFlight) return;
    inFlight = true;
    try {
      const next = await p.read();
      if (!next) {
        p.note.textContent = `Not available: this server has no ${p.route}${p.absentWhy ?? ''}.`;
        p.absent();
        return;
      }
      p.note.textContent = `From ${p.route}, every ${p.pollMs / 1000} s while the page is visible; read at ${clockTime(new Date(p.now()).toISOString())}.`;
      await p.got(next);
    } catch (err) {
      p.note.textContent = `Could not read ${p.route}: ${errorText(err)}`;
    } finally {
      inFlight = false;
    }
  };
}

/**
 * A panel's polling: `refresh` every `pollMs` while the page is visible, and
 * at once when it becomes visible again (the first read is the caller's).
 */
export function pollWhileVisible(refresh: () => Promise<void>, pollMs: number): void {
  const ifVisible = () => {
    if (document.visibilityState === 'visible') void refresh();
  };
  window.setInterval(ifVisible, pollMs);
  document.addEventListener('visibilitychange', ifVisible);
}
