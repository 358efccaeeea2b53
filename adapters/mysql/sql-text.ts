/**
 * A statement and its values as the one query text MySQL receives (the text
 * protocol: what mysql2's `query(sql, values)` sends, built here instead).
 *
 * Why not the driver's formatting: it escapes every double quote, and the
 * scheduler's values are mostly JSON (snapshots, events, outbox messages):
 * dropping those backslashes cut the SQL sent per job by a tenth, and the
 * driver's escaping was 8% of the scheduler's CPU. Inside a single-quoted
 * literal only the backslash, the quote itself, NUL and Ctrl-Z need escaping
 * (MySQL's own `mysql_real_escape_string` also escapes `"`, CR and LF for
 * readability). Safe because the client character set is utf8mb4, where no
 * byte of a multi-byte character is an ASCII `\` or `'`, and a quote is
 * doubled; the server must run without NO_BACKSLASH_ESCAPES for backslashes,
 * NUL and Ctrl-Z to mean what they say (both checked at connect: connect.ts).
 *
 * Placeholders are every `?` of the statement: the SQL the stores build is
 * constants and `?` only, never a literal holding a `?` (statements.ts).
 */

const SPECIAL = /[\0\\'\x1a]/g;
// A quote is doubled, not backslashed: that closes no literal in either backslash mode.
const ESCAPED: ReadonlyMap<string, string> = new Map([['\0', '\\0'], ['\\', '\\\\'], ["'", "''"], ['\x1a', '\\Z']]);
const escapeChar = (c: string): string => ESCAPED.get(c)!;

/** One value as an SQL literal. */
export function literal(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return `'${v.replace(SPECIAL, escapeChar)}'`;
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`${v} has no SQL literal`);
      return String(v);
    case 'bigint':
      return String(v);
    case 'boolean':
      return v ? 'TRUE' : 'FALSE';
    case 'undefined':
      return 'NULL';
    default:
      if (v === null) return 'NULL';
      if (Buffer.isBuffer(v)) return `X'${v.toString('hex')}'`;
      throw new TypeError(`a ${Object.prototype.toString.call(v)} has no SQL literal here`);
  }
}

/** `sql` with its `?` replaced by the values, in order; the counts must match. */
export function sqlText(sql: string, params: readonly unknown[]): string {
  if (params.length === 0 && !sql.includes('?')) return sql;
  const parts: string[] = [];
  let from = 0;
  let i = 0;
  for (let at = sql.indexOf('?'); at !== -1; at = sql.indexOf('?', at + 1)) {
    if (i >= params.length) throw new RangeError(`more placeholders than the ${params.length} values given`);
    parts.push(sql.slice(from, at), literal(params[i++]));
    from = at + 1;
  }
  if (i !== params.length) throw new RangeError(`${params.length} values for ${i} placeholders`);
  parts.push(sql.slice(from));
  return parts.join('');
}
