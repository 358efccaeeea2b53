/**
 * Tiny DOM helpers for the visualizer. Every piece of job data reaches the page
 * through `textContent` or an attribute value set with `setAttribute`, never
 * through `innerHTML`: a payload like `<img onerror=...>` must show as text.
 */

type Attrs = Record<string, string | number | boolean | null | undefined>;
type Child = Node | string | number | null | undefined | false;

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el: Element, attrs: Attrs, children: Child[]): void {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'object' ? child : String(child));
  }
}

/** An HTML element with attributes and children (strings become text nodes). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K, attrs: Attrs = {}, ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  apply(el, attrs, children);
  return el;
}

/** An SVG element, same rules as `h`. */
export function s<K extends keyof SVGElementTagNameMap>(
  tag: K, attrs: Attrs = {}, ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs, children);
  return el;
}

/** The element with this id; throws if the page lacks it (a broken page should say so at once). */
export function byId<T extends Element = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as unknown as T;
}

/** A JSON value as indented text, shortened past `max` characters. */
export function jsonText(value: unknown, max = 4000): string {
  const text = JSON.stringify(value, null, 2) ?? String(value);
  return text.length > max ? `${text.slice(0, max)}\n… (${text.length - max} more characters)` : text;
}

/** A JSON value on one line, shortened past `max` characters. */
export function jsonLine(value: unknown, max = 200): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** A job's state as a small coloured label (the colours match the machine's states). */
export const stateBadge = (state: string): HTMLSpanElement => h('span', { class: 'badge', 'data-badge': state }, state);

/** `12:34:56.789` in local time; the full ISO time goes in a tooltip. */
export function clockTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** `2026-01-31 12:34:56.789` in local time: the date as well as the time. */
export function dateTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clockTime(iso)}`;
}

/** A `<time>` showing the local date and time, the ISO instant in its tooltip. */
export const timeEl = (iso: string): HTMLTimeElement => h('time', { datetime: iso, title: iso }, dateTime(iso));

/**
 * Move relative times on in place: each element under `root` carrying `attr`
 * (a time in ms) gets `text(time, now)`, written only when it changed.
 */
export function moveOn(root: ParentNode, attr: string, text: (at: number, now: number) => string, now: number): void {
  for (const el of Array.from(root.querySelectorAll(`[${attr}]`))) {
    const t = text(Number(el.getAttribute(attr)), now);
    if (el.textContent !== t) el.textContent = t;
  }
}

/** `12,345`: a count with thousands separators, the same in every browser's locale. */
export const countText = (n: number): string => n.toLocaleString('en-US');

/** `850 ms`, `4.2 s`, `3 min 5 s`, `2 h 10 min`. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  const abs = Math.abs(ms);
  const sign = ms < 0 ? '−' : '';
  // Each unit compared as it will be written: 999.6 ms is "1.0 s", 59,950 ms "1 min", not "1000 ms" or "60 s".
  if (Math.round(abs) < 1000) return `${sign}${Math.round(abs)} ms`;
  const tenths = Math.round(abs / 100);
  if (tenths < 100) return `${sign}${(tenths / 10).toFixed(1)} s`;
  const secs = Math.round(abs / 1000);
  if (secs < 60) return `${sign}${secs} s`;
  if (secs < 3600) return `${sign}${Math.floor(secs / 60)} min${secs % 60 ? ` ${secs % 60} s` : ''}`;
  const mins = Math.round(secs / 60);
  return `${sign}${Math.floor(mins / 60)} h${mins % 60 ? ` ${mins % 60} min` : ''}`;
}
