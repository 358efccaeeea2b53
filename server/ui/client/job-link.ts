/**
 * `#<job id>` in the visualizer's address opens that job, so a job's view can
 * be shared (`#jobs-section` and the like are places on the page). A job id is
 * a ULID, which never needs percent-decoding: the hash is read as it is, so a
 * stray `%` in a link someone sent is no job rather than a page that fails to
 * start (`decodeURIComponent('%')` throws).
 */
const JOB_ID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

/** The job id a `location.hash` names, or null. */
export function jobIdFromHash(hash: string): string | null {
  const id = hash.startsWith('#') ? hash.slice(1) : hash;
  return JOB_ID.test(id) ? id : null;
}
