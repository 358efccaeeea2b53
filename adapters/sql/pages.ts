/**
 * Pages bounded in bytes as well as in rows (`JobStore.listJobPage`,
 * `WorkflowStore.listWorkflowPage`): the sizes of the rows are read first,
 * then only the rows that fit, so a page never loads much more than its bytes.
 */
import { fitting } from '../../engine/pack.js';
import type { Query } from './reads.js';
import { toNum, type Row } from './rows.js';
import type { Sql } from './statements.js';

/** A row's id and the bytes its large columns take. */
export interface RowSize {
  id: string;
  bytes: number;
}

/**
 * The ids of the page: at most `limit`, and no more of them than fit in
 * `maxBytes` (the first always, whatever its size). `sizes` are the matching
 * rows in page order, at least `limit + 1` when that many exist; `more` tells
 * whether a matching row follows the page.
 */
export function cutPage(sizes: readonly RowSize[], limit: number, maxBytes: number): { ids: string[]; more: boolean } {
  const taken = fitting(sizes.slice(0, limit).map((s) => s.bytes), maxBytes);
  return { ids: sizes.slice(0, taken).map((s) => s.id), more: sizes.length > taken };
}

/** How one kind of row is read a page at a time. */
export interface PageReads<T> {
  /** `id` and `bytes` of up to `limit` matching rows after `afterId` (from the filter's start when undefined), in page order. */
  sizes(afterId: string | undefined, limit: number): Sql;
  /** The rows of `ids`, in page order. */
  rows(ids: readonly string[]): Sql;
  toRecord(row: Row): T;
  /** Whether a row read still matches the filter: a job's state, an instance's status may move between the two reads. */
  matches(record: T): boolean;
  /**
   * For a filter the index does not hold (tested on each row it reads):
   * `take` index entries after `afterId` in page order, each one's `id` and
   * the `bytes` of those that match (null for the others). A page then reads
   * at most `MAX_PAGE_SCAN` entries, in growing steps, and ends where it
   * stopped. Absent: `sizes`, which reads until `limit + 1` rows match.
   */
  scan?(afterId: string | undefined, take: number): Sql;
}

/** Index entries a page read by `scan` reads at most; it may then end short, or empty, with a cursor to go on. */
export const MAX_PAGE_SCAN = 5000;

/** The first step of a `scan`, as a multiple of the rows a page wants; each next step is four times the last. */
const FIRST_SCAN_STEP = 2;

/**
 * Up to `want` matching rows after `afterId`, and, when the page's scan
 * stopped at its bound before that many matched, the last id it read
 * (`scannedTo`: the next page starts after it; every row above was read).
 */
async function matchingSizes<T>(query: Query, reads: PageReads<T>, afterId: string | undefined, want: number): Promise<{ found: RowSize[]; scannedTo: string | null }> {
  if (!reads.scan) {
    const sizes = reads.sizes(afterId, want);
    return { found: (await query(sizes.sql, sizes.params)).map((r) => ({ id: String(r.id), bytes: toNum(r.bytes) })), scannedTo: null };
  }
  const found: RowSize[] = [];
  let scanned = 0;
  let last = afterId;
  for (let step = want * FIRST_SCAN_STEP; ; step *= 4) {
    const take = Math.min(step, MAX_PAGE_SCAN - scanned);
    const { sql, params } = reads.scan(last, take);
    const rows = await query(sql, params);
    for (const r of rows) {
      last = String(r.id);
      if (r.bytes !== null && r.bytes !== undefined) found.push({ id: last, bytes: toNum(r.bytes) });
      if (found.length === want) return { found, scannedTo: null };
    }
    scanned += rows.length;
    // The index's range ended: every row of it was read.
    if (rows.length < take) return { found, scannedTo: null };
    if (scanned >= MAX_PAGE_SCAN) return { found, scannedTo: last ?? null };
  }
}

/** Reads on past a page left empty by rows that went or moved between its two reads, this many times at most. */
const EMPTY_PAGE_READS = 5;

/**
 * One page after `afterId`: the sizes of `limit + 1` rows, then the rows of
 * the ids that fit. A row deleted or moved out of the filter between the two
 * reads is missing from the page; the next page (`nextAfterId`, null at the
 * end) still starts after the ids read, so nothing is skipped or shown twice.
 */
export async function readPage<T>(
  query: Query, reads: PageReads<T>, afterId: string | undefined, limit: number, maxBytes: number,
): Promise<{ records: T[]; nextAfterId: string | null }> {
  for (let read = 1; ; read++) {
    const { found, scannedTo } = await matchingSizes(query, reads, afterId, limit + 1);
    const { ids, more } = cutPage(found, limit, maxBytes);
    const nextAfterId = more ? ids.at(-1)! : scannedTo;
    const records = ids.length === 0 ? [] : await (async () => {
      const rows = reads.rows(ids);
      return (await query(rows.sql, rows.params)).map(reads.toRecord).filter(reads.matches);
    })();
    // A scan that stopped at its bound ends the page too: one request reads at most its bound.
    if (records.length > 0 || nextAfterId === null || scannedTo !== null || read === EMPTY_PAGE_READS) return { records, nextAfterId };
    afterId = nextAfterId;
  }
}
