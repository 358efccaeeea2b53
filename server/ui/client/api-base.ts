/**
 * The server's URL as the page reaches it: the folder the page was loaded
 * from (`/ui` sits at the server's root). Behind a proxy that serves the
 * server under a path prefix (`https://ats.invalid/scheduler/ui`), the API
 * and the stream are under the same prefix and scheme (`/scheduler/v1/...`,
 * `wss:` on an https page), which `location.origin` would drop.
 */
export function apiBase(pageHref: string): string {
  return new URL('.', pageHref).href.replace(/\/+$/, '');
}
