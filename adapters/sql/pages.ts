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

/**
 * Reads one page: `sizes` selects `id` and `bytes` of up to `limit + 1`
 * matching rows in page order; `rows(ids)` selects the rows of the ids that
 * fit, in the same order. A row deleted between the two reads is missing from
 * the page; the next page (`nextAfterId`) still starts after the ids read.
 */
export async function readPage<T>(
  query: Query, sizes: Sql, limit: number, maxBytes: number, rows: (ids: readonly string[]) => Sql, toRecord: (row: Row) => T,
): Promise<{ records: T[]; nextAfterId: string | null }> {
  const found = (await query(sizes.sql, sizes.params)).map((r) => ({ id: String(r.id), bytes: toNum(r.bytes) }));
  const { ids, more } = cutPage(found, limit, maxBytes);
  if (ids.length === 0) return { records: [], nextAfterId: null };
  const page = rows(ids);
  return { records: (await query(page.sql, page.params)).map(toRecord), nextAfterId: more ? ids.at(-1)! : null };
}
