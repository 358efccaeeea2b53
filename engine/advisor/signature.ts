/**
 * Error signatures: what two failures of the same cause have in common.
 *
 * `errorSignature` keeps the error's name and its message with the parts
 * that vary from one failure to the next replaced: quoted values by `?`, ids
 * (ULIDs, UUIDs, `0x` hex values, hex runs of 8+ characters with a digit) and numbers (ints,
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
 * with a letter (`utf8`, `HTTP2`, `T1`, `cus_NffrFeUfNV2Hib`) stay, and is looked back along for seven
 * parts at most (`1d2h3m4s5ms6us7ns`), so the look back is short whatever the message.
 */
const NUMBER =
  /(?:(?<![\p{L}\p{N}])|(?<=\p{Nd}T)|(?<=(?<![\p{L}\p{N}])\p{Nd}+(?:\.\p{Nd}+)?(?:\p{L}{1,2}\p{Nd}+(?:\.\p{Nd}+)?){0,6}\p{L}{1,2}))-?\p{Nd}+(?:\.\p{Nd}+)?(?:e[+-]?\p{Nd}+)?/giu;
const SPACE = /\s+/g;
/**
 * What comes right before an HTTP status (`status 404`, `status code: 503`,
 * `HTTP 429`, `HTTP/1.1 500`, `statusCode=502`): the status is kept, not a
 * number like any other. It tells causes apart (a 404 does not recover, a 503
 * or a 429 does), and has few values.
 */
const STATUS_BEFORE = /(?:\bstatus(?:[ _-]?code)?|\bhttp(?:\/[\d.]+)?)\s*[:=]?\s*$/i;
const STATUS = /^[1-5]\d\d$/;
/** How far back `STATUS_BEFORE` is looked for. */
const STATUS_LOOKBACK = 24;

/** The signature of a failure: `Name: normalised message`, at most 200 characters. */
export function errorSignature(error: { name?: string; message: string }): string {
  const name = typeof error.name === 'string' && error.name.trim() !== '' ? error.name.trim() : 'Error';
  const message = String(error.message ?? '')
    .slice(0, MAX_INPUT)
    .replace(QUOTED, '?')
    .replace(UUID, '#')
    .replace(ULID, '#')
    .replace(HEX, '#')
    .replace(NUMBER, (n: string, at: number, text: string) => (STATUS.test(n) && STATUS_BEFORE.test(text.slice(Math.max(0, at - STATUS_LOOKBACK), at)) ? n : '#'))
    .replace(SPACE, ' ')
    .trim();
  return cutText(`${name.replace(SPACE, ' ')}: ${message}`, MAX_SIGNATURE_LENGTH);
}

