/**
 * Small time-series charts drawn as plain SVG by this code (no chart library:
 * two line charts with a few dozen points each do not need one). Each series
 * is a `path[data-series]` carrying its total in `data-total`.
 */
import { s } from './dom.js';

export interface Series {
  /** `data-series` and the CSS class `series-<key>` (its colour). */
  key: string;
  label: string;
  /** One value per bucket, oldest first; null: no value (a gap in the line). */
  values: readonly (number | null)[];
}

export interface ChartOptions {
  series: readonly Series[];
  /** The window's length (ms), for the time axis: it ends at "now". */
  windowMs: number;
  /** A value's text on the axis. */
  format(v: number): string;
  /** A horizontal reference line (a value from elsewhere, e.g. the server's median). */
  reference?: { value: number; label: string } | null;
}

const W = 600;
const H = 170;
const M = { left: 52, right: 12, top: 12, bottom: 24 };

/** 1, 2, 5 × 10^n at or above v (at least 1). */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const f = (n: number) => Math.round(n * 10) / 10;

/** Replace what `svg` holds with the chart. */
export function drawChart(svg: SVGSVGElement, opts: ChartOptions): void {
  const n = Math.max(1, ...opts.series.map((x) => x.values.length));
  const all = opts.series.flatMap((x) => x.values.filter((v): v is number => v !== null));
  const top = niceMax(Math.max(0, ...all, opts.reference?.value ?? 0));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (i: number) => M.left + ((i + 0.5) / n) * pw;
  const y = (v: number) => M.top + ph - (v / top) * ph;

  const grid = [0, top / 2, top].map((v) => s('g', { class: 'grid' },
    s('line', { x1: M.left, x2: W - M.right, y1: f(y(v)), y2: f(y(v)) }),
    s('text', { x: M.left - 6, y: f(y(v)) + 4, 'text-anchor': 'end' }, opts.format(v)),
  ));
  const minutes = Math.round(opts.windowMs / 60_000);
  const ticks = [minutes, (minutes * 2) / 3, minutes / 3, 0].map((m) => {
    const tx = M.left + (1 - m / minutes) * pw;
    return s('text', { class: 'tick', x: f(tx), y: H - 6, 'text-anchor': m === minutes ? 'start' : m === 0 ? 'end' : 'middle' },
      m === 0 ? 'now' : `−${Math.round(m)} min`);
  });
  const lines = opts.series.map((ser) => {
    const parts: string[] = [];
    const dots: SVGCircleElement[] = [];
    ser.values.forEach((v, i) => {
      if (v === null) return;
      const prev = i > 0 ? ser.values[i - 1] : null;
      const next = i + 1 < ser.values.length ? ser.values[i + 1] : null;
      parts.push(`${prev === null || prev === undefined ? 'M' : 'L'}${f(x(i))},${f(y(v))}`);
      if ((prev === null || prev === undefined) && (next === null || next === undefined)) {
        dots.push(s('circle', { cx: f(x(i)), cy: f(y(v)), r: 2.5 }));
      }
    });
    const total = ser.values.reduce<number>((a, v) => a + (v ?? 0), 0);
    return s('g', { class: `series series-${ser.key}` },
      s('path', { d: parts.join(' '), 'data-series': ser.key, 'data-total': total, 'data-points': ser.values.filter((v) => v !== null).length },
        s('title', {}, ser.label)),
      ...dots,
    );
  });
  const ref = opts.reference
    ? s('g', { class: 'reference', 'data-reference': opts.reference.value },
      s('line', { x1: M.left, x2: W - M.right, y1: f(y(opts.reference.value)), y2: f(y(opts.reference.value)) }),
      s('text', { x: W - M.right - 4, y: f(y(opts.reference.value)) - 4, 'text-anchor': 'end' }, opts.reference.label))
    : null;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.replaceChildren(
    s('g', { class: 'grids' }, ...grid),
    s('line', { class: 'axis', x1: M.left, x2: W - M.right, y1: M.top + ph, y2: M.top + ph }),
    ...ticks,
    ...(ref ? [ref] : []),
    ...lines,
  );
}
