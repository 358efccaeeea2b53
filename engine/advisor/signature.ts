/**
 * Error signatures: what two failures of the same cause have in common.
 *
 * `errorSignature` keeps the error's name and its message with the parts
 * that vary from one failure to the next replaced: quoted values by `?`, ids
 * (ULIDs, UUIDs, `0x` hex values, hex runs of 8+ characters with a digit, and the ids payment
 * and cloud APIs make, a short lowercase prefix and a run of 8+ letters and digits with a digit
 * before a letter: `cus_NffrFeUfNV2Hib` → `cus_#`, `i-0abcd1234efgh5678` → `i-#`) and numbers (ints,
 * decimals, negatives, in the digits of any script; not digits after a letter, as in `utf8` or `E11000`,
 * save the hour after an ISO 8601 date's `T` and the parts of a duration after the first, `1h30m` → `#h#m`) by
 * `#`, except an HTTP status after `status` or `HTTP` (`status code 404` and
 * `status code 503` are two causes: one never recovers, the other does). Whitespace is collapsed and the result cut to 200 characters.
 */

import { cutText } from '../errors.js';

/** The signature of a lease that expired (the worker stopped heartbeating): it has no error of its own. */
export const LEASE_EXPIRED_SIGNATURE = 'LeaseExpired: lease expired';

/** The error name of an attempt a worker ended because it shut down before the handler finished (engine/worker.ts). */
export const WORKER_SHUTDOWN_ERROR_NAME = 'WorkerShutdown';

/** Its signature: one, whichever worker shut down and whatever its grace. */
export const WORKER_SHUTDOWN_SIGNATURE = 'WorkerShutdown: the worker shut down';

export const MAX_SIGNATURE_LENGTH = 200;
/** Only this much of a message is read (a message may be megabytes; the signature keeps 200 characters). */
const MAX_INPUT = 2000;

/** A quote opens after a non-word character and closes before one (so `can't` is not a quote). */
const QUOTED = /(?<![\p{L}\p{N}_])(?:'[^'\n]*'|"[^"\n]*"|`[^`\n]*`)(?![\p{L}\p{N}_])/gu;
const UUID = /(?<![0-9A-Za-z])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9A-Za-z])/gi;
/** A ULID: 26 Crockford base-32 characters, the first one 0-7 (the time part). */
const ULID = /(?<![0-9A-Za-z])[0-7][0-9A-HJKMNP-TV-Z]{25}(?![0-9A-Za-z])/gi;
/**
 * A `0x` hex value of any length (`0x1f`, `0xdead`), or a hex run of 8+ with at least one digit
 * (`deadbeef` alone stays a word). Short, `0x1f` was `#x1f`: one signature a value.
 */
const HEX = /(?<![0-9A-Za-z])(?:0x[0-9a-f]+|(?=[a-f]*[0-9])[0-9a-f]{8,})(?![0-9A-Za-z])/gi;
/**
 * A number not after a letter: `-12`, `3.5`, `1e-3`, `10ms` (→ `#ms`), `job_42` (→ `job_#`); `utf8` stays.
 * The one letter a number may follow is the `T` of an ISO 8601 date-time, after a digit
 * (`2026-12-05T22:11:06Z` → `#-#-#T#:#:#Z`, `20261205T221106Z` → `#T#Z`): its hour is a number like
 * its minutes, and kept, a message with the time of its failure would be a new signature every hour,
 * its evidence split 24 ways. Digits are those of any script (`\p{Nd}`: `٣٠` and `３０` too; `\d` is ASCII's alone).
 * And a number after a unit of one or two letters that itself follows a number is a number: the
 * parts of a duration (`1h30m` → `#h#m`, `2m5.5s` → `#m#s`, `1s500ms` → `#s#ms`), kept, were one
 * signature a duration. The chain starts at a number not after a letter, so ids and names that start
 * with a letter (`utf8`, `HTTP2`, `T1`) stay, and is looked back along for seven
 * parts at most (`1d2h3m4s5ms6us7ns`), so the look back is short whatever the message.
 * (A letter-first id after a prefix, `cus_NffrFeUfNV2Hib`, is taken before: `PREFIXED_ID`.)
 */
const NUMBER =
  /(?:(?<![\p{L}\p{N}])|(?<=\p{Nd}T)|(?<=(?<![\p{L}\p{N}])\p{Nd}+(?:\.\p{Nd}+)?(?:\p{L}{1,2}\p{Nd}+(?:\.\p{Nd}+)?){0,6}\p{L}{1,2}))-?\p{Nd}+(?:\.\p{Nd}+)?(?:e[+-]?\p{Nd}+)?/giu;
/**
 * An id as payment and cloud APIs make them: a lowercase prefix of 1 to 8 letters that starts a word
 * (or follows another prefix: `sk_live_…`), `_` or `-`, then a run of 8+ ASCII letters and digits
 * (`cus_NffrFeUfNV2Hib`, `pi_3MtwBwLkdIwHu7ix28a3tqPa`, `req_8a7Hq2LmZ`, `i-0abcd1234efgh5678`).
 * The run is taken for an id only with a digit before a letter (`ID_RUN`), which a random run of
 * that length nearly always has and a word with its number does not: `db-replica12` and
 * `worker-node3` (hosts, maybe two causes) stay, as do names in code (`user_id`, `getUser2`) and
 * error codes (`ERR_SOCKET_TIMEOUT`, `EAI_AGAIN`: no lowercase prefix, no digit). The prefix is
 * kept (`cus_#`): it says what kind of thing was missing, and has few values. An id without a
 * digit (one in twelve of 14 random letters and digits) still splits: a word cannot be told from it,
 * and two causes taken for one (a transient one with a permanent one, whose retries would then stop)
 * cost more than one cause split in two.
 */
const PREFIXED_ID = /(?<![\p{L}\p{N}])([a-z]{1,8}[_-])([0-9A-Za-z]{8,})(?![\p{L}\p{N}])/gu;
/** A digit before a letter (in a run of letters and digits, one right before one). */
const ID_RUN = /[0-9][A-Za-z]/;
const SPACE = /\s+/g;
/**
 * What comes right before an HTTP status (`status 404`, `status code: 503`,
 * `HTTP 429`, `HTTP/1.1 500`, `statusCode=502`): the status is kept, not a
 * number like any other. It tells causes apart (a 404 does not recover, a 503
 * or a 429 does), and has few values.
 */
const STATUS_BEFORE = /(?:\bstatus(?:[ _-]?code)?|\bhttp(?:\/[\d.]+)?)\s*[:=]?\s*$/i;
const STATUS = /^[1-5]\d\d$/;
/**
 * A quoted status key before its value, as JSON writes one (`{"status":503}`, `"statusCode": 404`):
 * unquoted first, so that the quotes rule does not make it `?` and its status is kept as above
 * (`{status:503}`); kept quoted, a 404 and a 503 answered as JSON were one signature.
 */
const QUOTED_STATUS_KEY = /(["'`])(status(?:[ _-]?code)?)\1(?=\s*[:=]\s*[1-5]\d\d(?!\d))/gi;
/** How far back `STATUS_BEFORE` is looked for. */
const STATUS_LOOKBACK = 24;

/** The signature of a failure: `Name: normalised message`, at most 200 characters. */
export function errorSignature(error: { name?: string; message: string }): string {
  const name = typeof error.name === 'string' && error.name.trim() !== '' ? error.name.trim() : 'Error';
  const message = String(error.message ?? '')
    .slice(0, MAX_INPUT)
    .replace(QUOTED_STATUS_KEY, '$2')
    .replace(QUOTED, '?')
    .replace(UUID, '#')
    .replace(ULID, '#')
    .replace(HEX, '#')
    .replace(PREFIXED_ID, (id: string, prefix: string, run: string) => (ID_RUN.test(run) ? `${prefix}#` : id))
    .replace(NUMBER, (n: string, at: number, text: string) => (STATUS.test(n) && STATUS_BEFORE.test(text.slice(Math.max(0, at - STATUS_LOOKBACK), at)) ? n : '#'))
    .replace(SPACE, ' ')
    .trim();
  return cutText(`${name.replace(SPACE, ' ')}: ${message}`, MAX_SIGNATURE_LENGTH);
}

