/**
 * List cursors: opaque to callers (base64url of the last job id of a page), so
 * the paging key can change later without breaking clients that follow
 * `nextCursor` as told.
 */
import { AtsError } from '../engine/errors.js';
import { ULID_PATTERN } from './schemas.js';

const ULID = new RegExp(ULID_PATTERN);

export function encodeCursor(lastId: string): string {
  return Buffer.from(lastId, 'utf8').toString('base64url');
}

/** The job id a cursor stands for; throws ATS_ERR_BAD_CURSOR for anything this server did not issue. */
export function decodeCursor(cursor: string): string {
  const id = /^[A-Za-z0-9_-]+$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  // Re-encoding must give the cursor back: base64url decoding skips junk silently.
  if (!ULID.test(id) || encodeCursor(id) !== cursor) throw new AtsError('ATS_ERR_BAD_CURSOR');
  return id;
}
