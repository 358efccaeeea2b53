/** Prometheus' text exposition format, read strictly (for tests of /metrics). */
import assert from 'node:assert/strict';

/** One sample line of the text format. */
export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of Prometheus' text format (version 0.0.4): `# HELP` and
 * `# TYPE` lines, then `name{label="value",...} number` lines; throws on any
 * other line. Returns the samples and each family's type.
 */
export function parseExposition(text: string): { samples: ParsedSample[]; types: Map<string, string> } {
  const samples: ParsedSample[] = [];
  const types = new Map<string, string>();
  const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/y;
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (comment) {
      if (comment[1] === 'TYPE') {
        assert.match(comment[3]!, /^(counter|gauge|histogram|summary|untyped)$/, `line ${i + 1}: ${line}`);
        types.set(comment[2]!, comment[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    assert.ok(m, `line ${i + 1} is not a sample: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      const body = m[2].slice(1, -1);
      let at = 0;
      while (at < body.length) {
        LABEL.lastIndex = at;
        const l = LABEL.exec(body);
        assert.ok(l, `line ${i + 1}: bad labels at ${at}: ${line}`);
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        at = LABEL.lastIndex;
        if (body[at] === ',') at++;
      }
    }
    // As Prometheus reads them (Go's ParseFloat): NaN and Inf in any case; prom-client writes NaN as "Nan".
    const special = /^(nan|[+-]?inf)$/i.exec(m[3]!)?.[1]!.toLowerCase();
    const value = special === undefined ? Number(m[3]) : special === 'nan' ? NaN : special.startsWith('-') ? -Infinity : Infinity;
    assert.ok(special !== undefined || Number.isFinite(value), `line ${i + 1}: bad value ${m[3]}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { samples, types };
}

/** The family a sample belongs to (histogram series carry suffixes). */
export const familyOf = (name: string, types: ReadonlyMap<string, string>): string => {
  if (types.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return types.has(base) ? base : name;
};

