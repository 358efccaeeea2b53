/**
 * Durations as people write them on a command line or in a setting: `7d`,
 * `12h`, `30m`, `60s`, `500ms` or plain milliseconds. Shared by the settings
 * (cli/config.ts) and the client commands (`ats limits set --rate 100/1m`);
 * no import, so a client command loads nothing more for it.
 */

const UNIT_MS: ReadonlyMap<string, number> = new Map([['ms', 1], ['s', 1000], ['m', 60_000], ['h', 3_600_000], ['d', 86_400_000]]);

/** The text of every form accepted, for messages. */
export const DURATION_FORMS = '7d, 12h, 30m, 60s, 500ms or plain milliseconds';

/** Milliseconds from `7d`, `12h`, `30m`, `60s`, `500ms` or plain milliseconds; NaN when `text` is none of them. */
export function parseDurationMs(text: string): number {
  const m = /^(\d{1,15})\s*(ms|s|m|h|d)?$/.exec(text.trim());
  return m ? Number(m[1]) * UNIT_MS.get(m[2] ?? 'ms')! : NaN;
}

/** The shortest text `parseDurationMs` reads back as `ms`: `1m` for 60000, `1500ms` for 1500. */
export function durationText(ms: number): string {
  for (const [unit, size] of [...UNIT_MS].reverse()) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
