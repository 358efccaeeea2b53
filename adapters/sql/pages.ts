/**
 * Pages bounded in bytes as well as in rows (`JobStore.listJobPage`,
 * `WorkflowStore.listWorkflowPage`): the sizes of the rows are read first,
 * then only the rows that fit, so a page never loads much more than its bytes.
 */
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
  const ids: string[] = [];
  let bytes = 0;
  for (const size of sizes) {
    if (ids.length === limit) break;
    if (ids.length > 0 && bytes + size.bytes > maxBytes) break;
    ids.push(size.id);
    bytes += size.bytes;
  }
  return { ids, more: sizes.length > ids.length };
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
    const sizes = reads.sizes(afterId, limit + 1);
    const found = (await query(sizes.sql, sizes.params)).map((r) => ({ id: String(r.id), bytes: toNum(r.bytes) }));
    const { ids, more } = cutPage(found, limit, maxBytes);
    if (ids.length === 0) return { records: [], nextAfterId: null };
    const rows = reads.rows(ids);
    const records = (await query(rows.sql, rows.params)).map(reads.toRecord).filter(reads.matches);
    const nextAfterId = more ? ids.at(-1)! : null;
    if (records.length > 0 || nextAfterId === null || read === EMPTY_PAGE_READS) return { records, nextAfterId };
    afterId = nextAfterId;
  }
}
