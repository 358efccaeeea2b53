/**
 * Integers a JSON number does not give back. `JSON.parse` reads every number
 * as a double, so most integers past ±(2^53 − 1) come back as another one
 * (9007199254740993 as 9007199254740992) without a word: a payload stored and
 * served unlike the one sent, and a handler given an id that is not its own.
 * The API, the CLI and the console refuse such a text, naming the literal and
 * what it would become, instead of storing what JSON.parse made of it; a
 * client sends such a value as a string.
 *
 * An integer literal (no fraction, no exponent) is refused when the number it
 * reads as is written back otherwise: `9007199254740993` is, while
 * `150000000000000000000` (what JSON.stringify writes of 1.5e20) is not, so
 * every number a JavaScript client sends passes. `1e20` or `0.1` read as the
 * doubles they name, as JSON numbers do.
 */

/** The largest integer held here (2^53 − 1), as the messages quote it. */
export const LARGEST_EXACT_INTEGER = Number.MAX_SAFE_INTEGER;

/** An integer literal a JSON number does not give back as written, and the position in the text where it starts (from 0). */
export interface InexactInteger {
  literal: string;
  at: number;
}

/**
 * The first integer literal in `text` (JSON that parsed) that reads as a
 * number written back otherwise, or undefined. A text with no run of 16
 * digits (the fewest such a literal has) is answered by one native search;
 * otherwise the text is walked once, skipping strings, whose digits are not
 * numbers.
 */
export function inexactIntegerIn(text: string): InexactInteger | undefined {
  if (!SIXTEEN_DIGITS.test(text)) return undefined;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = afterString(text, i + 1);
      continue;
    }
    if (c === MINUS || (c >= ZERO && c <= NINE)) {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(text);
      if (m === null) return undefined; // not JSON that parsed: nothing to say of it
      const literal = m[0];
      // Shorter literals are safe integers, which read back as written (but for -0, which is kept).
      if (literal.length >= 16 && m[1] === undefined && m[2] === undefined && String(Number(literal)) !== literal) return { literal, at: i };
      i += literal.length;
      continue;
    }
    i++;
  }
  return undefined;
}

/** What a refusal says of `found`: the literal (cut at 40 characters), where it is, what it would become, and what to send instead. */
export function inexactIntegerProblem(found: InexactInteger): string {
  const cut = (text: string) => (text.length > 40 ? `${text.slice(0, 40)}...` : text);
  return `the integer ${cut(found.literal)} (at position ${found.at}, as JSON.parse counts) would be read as ${cut(String(Number(found.literal)))}: `
    + `a JSON number keeps integers exactly up to ±${LARGEST_EXACT_INTEGER}. Send it as a string`;
}

/**
 * How many levels of arrays and objects a value the scheduler keeps may nest
 * (`[[1]]` is two): a job's payload, a workflow's input and a signal's event
 * (the API's default, `DEFAULT_MAX_PAYLOAD_DEPTH`), and a handler's result
 * (the worker's bound, which no setting moves). Far under what a recursive
 * JSON.stringify or a console's indented rendering copes with.
 */
export const MAX_NESTING_DEPTH = 32;

/** A boxed number, string or boolean (`new Number(5)`): JSON writes the value it holds, so it takes no level. */
export const isBoxedPrimitive = (v: object): boolean => v instanceof Number || v instanceof String || v instanceof Boolean;

/** What makes a value JSON.parse gave unfit to pass on, found by jsonValueFault. */
export type JsonValueFault =
  /** A literal past the double range (`1e400`): JSON.parse reads it as ±Infinity, which JSON.stringify writes as null. */
  | { fault: 'out-of-range'; number: number }
  /** Objects or arrays nested deeper than the bound given. */
  | { fault: 'too-deep'; maxDepth: number };

/**
 * The first fault of `value` (what JSON.parse gave), level by level, or undefined: a number
 * JSON cannot carry, or a container deeper than `maxDepth` levels (a scalar is at depth 0, the
 * values of a top-level object or array at 1). The API refuses both; the CLI and the console
 * refuse the first before sending. Iterative on purpose: a recursive walk of a hostile 1 MiB
 * `[[[[...` text would overflow the stack.
 */
export function jsonValueFault(value: unknown, maxDepth = Number.POSITIVE_INFINITY): JsonValueFault | undefined {
  let level: unknown[] = [value];
  for (let depth = 0; level.length > 0; depth++) {
    const next: unknown[] = [];
    for (const v of level) {
      if (typeof v === 'number' && !Number.isFinite(v)) return { fault: 'out-of-range', number: v };
      if (v === null || typeof v !== 'object') continue;
      if (depth >= maxDepth) return { fault: 'too-deep', maxDepth };
      // A loop, not push(...children): a 100k-element array would overflow the argument stack.
      for (const child of Array.isArray(v) ? v : Object.values(v)) next.push(child);
    }
    level = next;
  }
  return undefined;
}

/** The first number in `value` (what JSON.parse gave) that JSON cannot carry, or undefined (see jsonValueFault). */
export function numberOutOfRangeIn(value: unknown): number | undefined {
  const found = jsonValueFault(value);
  return found?.fault === 'out-of-range' ? found.number : undefined;
}

/** What a refusal says of `found` (from numberOutOfRangeIn), after "holds a number out of range". */
export function numberOutOfRangeProblem(found: number): string {
  return `JSON.parse reads it as ${String(found)}, which JSON cannot carry (it would be sent as null); the largest a JSON number holds is about 1.8e308`;
}

/** The index after the string whose content starts at `i` (past its closing quote). */
function afterString(text: string, i: number): number {
  for (;;) {
    const q = text.indexOf('"', i);
    if (q < 0) return text.length;
    // The quote closes the string unless an odd number of backslashes comes right before it.
    let b = q - 1;
    while (b >= i && text.charCodeAt(b) === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q + 1;
    i = q + 1;
  }
}

const SIXTEEN_DIGITS = /\d{16}/;
/** A JSON number at lastIndex: group 1 its fraction, group 2 its exponent. */
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
