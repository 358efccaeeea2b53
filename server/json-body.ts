/**
 * The only body the API reads is JSON. fastify's default parser (secure-json-parse)
 * stays in charge of prototype poisoning: a `__proto__` key, or a
 * `constructor.prototype`, anywhere in the body is an error, never an object
 * that later pollutes a prototype. This wrapper only tells the two failures
 * apart, so a caller learns whether the JSON was broken or a key was refused.
 */
import type { FastifyInstance } from 'fastify';
import { AtsError } from '../engine/errors.js';

/** Replace every content-type parser by a JSON one: any other content type is a 415. */
export function installJsonParser(app: FastifyInstance): void {
  const secureParse = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (text.length === 0) return done(new AtsError('ATS_ERR_MALFORMED_JSON', 'The request body is empty'), undefined);
    secureParse(request, text, (err, value) => (err ? done(classify(text), undefined) : done(null, value)));
  });
}

function classify(text: string): AtsError {
  try {
    JSON.parse(text);
  } catch (cause) {
    const detail = cause instanceof Error ? `: ${cause.message.slice(0, 200)}` : '';
    return new AtsError('ATS_ERR_MALFORMED_JSON', `${ERR_JSON}${detail}`, { cause });
  }
  // Plain JSON.parse accepted it, so secure-json-parse refused a key.
  return new AtsError('ATS_ERR_VALIDATION', 'The request body holds a forbidden key (__proto__ or constructor.prototype)');
}

const ERR_JSON = 'The request body is not valid JSON';
