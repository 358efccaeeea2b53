/**
 * A handler's payload schema (TypeBox, i.e. JSON Schema), compiled once to a
 * check that names the first problem. The API runs it on every submit of the
 * type (a bad payload is a 400 before anything is written) and the worker
 * before the handler (a job stored before the schema existed fails without
 * retries instead of reaching `run` with the wrong shape).
 *
 * The Ajv options are the API's for request bodies: no coercion, no defaults,
 * no removal of unknown fields (the payload is stored as sent), formats from
 * ajv-formats, and the first error only.
 */
import { Ajv, type ErrorObject } from 'ajv';
import formats from 'ajv-formats';
import type { TSchema } from '@sinclair/typebox';
import { quoteCut } from './errors.js';

/** null when `payload` fits, else the first problem as `<path> <what>`, e.g. `/to must be string`. */
export type PayloadCheck = (payload: unknown) => string | null;

/** Longest problem text: the path and the value names in it are the caller's. */
const MAX_PROBLEM = 300;
const MAX_NAME = 100;

let ajv: Ajv | null = null;
function shared(): Ajv {
  if (!ajv) {
    ajv = new Ajv({
      allErrors: false, removeAdditional: false, useDefaults: false, coerceTypes: false,
      strict: true, strictTypes: false, strictRequired: false, discriminator: true,
      // Each handler's schema stands alone: two modules may use the same `$id`.
      addUsedSchema: false,
    });
    formats.default(ajv);
  }
  return ajv;
}

/** Throws when `schema` is not a JSON Schema Ajv can compile (e.g. TypeBox's Type.Date). */
export function compilePayloadSchema(schema: TSchema): PayloadCheck {
  const validate = shared().compile(schema);
  return (payload) => (validate(payload) ? null : describe(validate.errors?.[0]));
}

function describe(e: ErrorObject | undefined): string {
  if (!e) return 'is not valid';
  const path = quoteCut(e.instancePath, MAX_NAME);
  let what: string;
  if (e.keyword === 'additionalProperties') what = `has an unknown field '${quoteCut(String(e.params.additionalProperty), MAX_NAME)}'`;
  else if (e.keyword === 'enum') what = `must be one of: ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  else what = e.message ?? 'is not valid';
  return quoteCut(path ? `${path} ${what}` : what, MAX_PROBLEM);
}
