/**
 * Bounded label values. Job types and queues are chosen by users: exported as
 * they are, each new name would make new time series in every metric that
 * carries it, without end. A `LabelCap` passes the first `limit` distinct
 * values it sees and turns every later one into `(other)`, so a process
 * exports at most `limit` + 1 values of that label, whatever it is sent.
 */

/**
 * The label value that stands for every value past the cap: in parentheses,
 * which no job type or queue name has (NAME_PATTERN, machines/job-bounds.ts),
 * so a type or queue named `other` keeps a label of its own.
 */
export const OTHER = '(other)';

export class LabelCap {
  private readonly seen = new Set<string>();
  /** Values turned into `(other)` since start (how many distinct ones is not kept: that would be unbounded too). */
  overflowed = 0;

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError(`a label cap must be an integer >= 0, got ${limit}`);
  }

  /** `value` while it is one of the first `limit` distinct values, else `(other)`. */
  value(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size < this.limit) {
      this.seen.add(value);
      return value;
    }
    this.overflowed++;
    return OTHER;
  }

  /** Distinct values passed so far (at most `limit`). */
  get size(): number {
    return this.seen.size;
  }
}

/** `map.get(key)`, or the value `make()` builds, stored for the next time. */
export function getOrMake<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) map.set(key, (v = make()));
  return v;
}
