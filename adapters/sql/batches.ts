/**
 * Splitting multi-row INSERTs so one statement stays under the drivers'
 * limits: SQLite's 32766 bound parameters and MySQL's `max_allowed_packet`
 * (16 MiB by default on MariaDB 10.11 / 64 MiB on MySQL 8).
 */
import { pack } from '../../engine/pack.js';

/** At most this many rows per multi-row INSERT (18 columns x 500 < 32766). */
export const MAX_ROWS_PER_STATEMENT = 500;
/** Roughly at most this many bytes of parameters per statement. */
export const MAX_BYTES_PER_STATEMENT = 4 * 1024 * 1024;

const sizeOf = (row: readonly unknown[]): number =>
  row.reduce<number>((n, v) => n + (typeof v === 'string' ? v.length * 2 : 8), 0);

/** Consecutive chunks of rows, each within both limits (a single oversized row gets its own chunk). */
export function chunkRows(rows: readonly unknown[][], maxRows = MAX_ROWS_PER_STATEMENT, maxBytes = MAX_BYTES_PER_STATEMENT): unknown[][][] {
  return pack(rows, sizeOf, maxRows, maxBytes);
}

/**
 * Consecutive groups of statements to send together, each group within the
 * byte limit of one statement (a statement alone over it gets its own group).
 */
export function groupBySize<S extends { params: readonly unknown[] }>(steps: readonly S[], maxBytes = MAX_BYTES_PER_STATEMENT): S[][] {
  return pack(steps, (s) => sizeOf(s.params), Infinity, maxBytes);
}

/** Consecutive slices of at most `size` items. */
export function slices<T>(items: readonly T[], size = MAX_ROWS_PER_STATEMENT): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
