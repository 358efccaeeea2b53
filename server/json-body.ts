/**
 * The only body the API reads is JSON. fastify's default parser (secure-json-parse)
 * stays in charge of prototype poisoning: a `__proto__` key, or a
 * `constructor.prototype`, anywhere in the body is an error, never an object
 * that later pollutes a prototype. This wrapper only tells the two failures
 * apart, so a caller learns whether the JSON was broken or a key was refused,
 * and refuses a body that is compressed (Content-Encoding) or said to be in
 * another charset than UTF-8 (both a 415), one whose bytes are not UTF-8, the
 * JSON null, or one holding an integer JSON.parse would not give back as
 * written (machines/json-integers.ts).
 */
import type { FastifyInstance } from 'fastify';
import { AtsError, cutText } from '../engine/errors.js';
import { inexactIntegerIn, inexactIntegerProblem } from '../machines/json-integers.js';

/** Replace every content-type parser by a JSON one: any other content type is a 415. */
export function installJsonParser(app: FastifyInstance): void {
  const secureParse = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    // Compressed bodies are not read: as they are, they would be refused as broken JSON, which they are not.
    // An empty header names no coding: the body is as sent, as with identity.
    const encoding = request.headers['content-encoding'];
    const coding = encoding?.trim().toLowerCase();
    if (encoding !== undefined && coding !== '' && coding !== 'identity') {
      return done(new AtsError('ATS_ERR_UNSUPPORTED_MEDIA_TYPE', `Content-Encoding ${cutText(encoding, 50)} is not supported: send the body uncompressed`), undefined);
    }
    // Read as UTF-8 whatever the header said, a body in another charset would be broken JSON, or stored unlike the one sent.
    const charset = charsetOf(request.headers['content-type']);
    if (charset !== undefined && !UTF8_NAMES.has(charset.toLowerCase())) {
      return done(new AtsError('ATS_ERR_UNSUPPORTED_MEDIA_TYPE', `A body in charset ${cutText(charset, 50)} is not read: send it as UTF-8 (charset=utf-8, or none)`), undefined);
    }
    if (bytes.length === 0) return done(new AtsError('ATS_ERR_MALFORMED_JSON', 'The request body is empty'), undefined);
    // JSON is UTF-8 (RFC 8259). Decoded loosely, each bad byte would become U+FFFD: a body kept unlike the one sent.
    let text: string;
    try {
      text = UTF8.decode(bytes);
    } catch (cause) {
      return done(new AtsError('ATS_ERR_MALFORMED_JSON', `${ERR_JSON}: it is not UTF-8`, { cause }), undefined);
    }
    secureParse(request, text, (err, value) => {
      if (err) return done(classify(text), undefined);
      // Every body the API reads is an object (or its items'); fastify hands a route whose body is
      // optional the JSON null as if no body had been sent: refused here, where the two differ.
      if (value === null) return done(new AtsError('ATS_ERR_VALIDATION', 'The request body is null: send an object, or no body where the body is optional'), undefined);
      // JSON.parse rounded such an integer without a word; stored, it would be another number than the one sent.
      const inexact = inexactIntegerIn(text);
      if (inexact) return done(new AtsError('ATS_ERR_VALIDATION', `In the request body, ${inexactIntegerProblem(inexact)}`), undefined);
      return done(null, value);
    });
  });
}

function classify(text: string): AtsError {
  try {
    JSON.parse(text);
  } catch (cause) {
    const detail = cause instanceof Error ? `: ${cutText(cause.message, 200)}` : '';
    return new AtsError('ATS_ERR_MALFORMED_JSON', `${ERR_JSON}${detail}`, { cause });
  }
  // Plain JSON.parse accepted it, so secure-json-parse refused a key.
  return new AtsError('ATS_ERR_VALIDATION', 'The request body holds a forbidden key (__proto__ or constructor.prototype)');
}

/** The charset parameter of a Content-Type header, unquoted, or undefined when it has none. */
function charsetOf(contentType: string | undefined): string | undefined {
  for (const param of (contentType ?? '').split(';').slice(1)) {
    const eq = param.indexOf('=');
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    const value = param.slice(eq + 1).trim();
    return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  }
  return undefined;
}

/** The names of UTF-8 a Content-Type may give (lowercased). */
const UTF8_NAMES = new Set(['utf-8', 'utf8']);
const ERR_JSON = 'The request body is not valid JSON';
/** Strict: a byte sequence that is not UTF-8 throws. A leading byte order mark is dropped, as before. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The bytes of `value` (a parsed JSON value) as compact JSON, what
 * `Buffer.byteLength(JSON.stringify(value))` answers; counting stops once it
 * passes `cap`. Iterative: JSON.stringify recurses, and a hostile body nested
 * a hundred thousand deep (which JSON.parse takes) would overflow the stack.
 */
export function jsonByteLength(value: unknown, cap = Infinity): number {
  let bytes = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0 && bytes <= cap) {
    const v = pending.pop();
    if (v === null || typeof v !== 'object') {
      bytes += Buffer.byteLength(JSON.stringify(v));
    } else if (Array.isArray(v)) {
      // The brackets and the commas between the items.
      bytes += 2 + Math.max(v.length - 1, 0);
      for (const item of v) pending.push(item);
    } else {
      const keys = Object.keys(v);
      // The braces, the commas between the members and a colon in each.
      bytes += 2 + Math.max(keys.length - 1, 0) + keys.length;
      for (const key of keys) {
        bytes += Buffer.byteLength(JSON.stringify(key));
        pending.push((v as Record<string, unknown>)[key]);
      }
    }
  }
  return bytes;
}
