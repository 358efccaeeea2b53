/**
 * Request validation, one Ajv per kind of input.
 *
 * fastify's default Ajv coerces types (`"3"` becomes 3) and silently removes
 * unknown properties. For JSON bodies that would accept wrong input and store
 * something the caller did not send, so bodies get a strict Ajv: no coercion,
 * no removal, no defaults (the route applies defaults, so the idempotency hash
 * sees what the caller sent plus what the server chose, never a guess by Ajv).
 * Query strings, params and headers are text on the wire, so their Ajv coerces
 * scalars (never arrays: `?state=a&state=b` is an error, "given more than once") and fills defaults;
 * a number among them must be written in decimal digits (`decimalNumbers`).
 */
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import formats from 'ajv-formats';
import { OptionalKind } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest, FastifySchema, FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import { AtsError, cutText } from '../engine/errors.js';
import { PATTERN_WORDS } from './schemas.js';

const common: Options = {
  allErrors: false, // allErrors on hostile input is a known DoS vector
  removeAdditional: false,
  discriminator: true,
  strict: true,
  strictTypes: false, // TypeBox unions carry no top-level `type`
  strictRequired: false, // the discriminator needs `required: ['kind']` beside `oneOf`, whose branches define it
};

/** `shared`: the schemas with an `$id` that a schema may `$ref` (what the app gives `addSchema`). */
function makeAjv(options: Options, shared: readonly object[]): Ajv {
  const ajv = new Ajv({ ...common, ...options, schemas: [...shared] });
  formats.default(ajv);
  return ajv;
}

/** A validator compiler per httpPart; pass to `app.setValidatorCompiler`. */
export function createValidatorCompiler(shared: readonly object[] = []): FastifySchemaCompiler<FastifySchema> {
  const bodyAjv = makeAjv({ coerceTypes: false, useDefaults: false }, shared);
  const textAjv = makeAjv({ coerceTypes: true, useDefaults: true }, shared);
  return ({ schema, httpPart }) => {
    if (httpPart === 'querystring') return singleValues(schema, decimalNumbers(schema, finiteNumbers(textAjv.compile(schema as object))));
    if (httpPart !== 'body') return decimalNumbers(schema, finiteNumbers(textAjv.compile(schema as object)));
    const validate = bodyAjv.compile(schema as object);
    return isOptional(schema) ? optionalBody(validate) : validate;
  };
}

/**
 * A strict body validator (the body Ajv's options) used outside fastify's
 * compile step: the batch route validates its envelope through fastify and
 * each item with this.
 */
export function compileBodySchema(schema: object, shared: readonly object[] = []): ValidateFunction {
  return makeAjv({ coerceTypes: false, useDefaults: false }, shared).compile(schema);
}

/**
 * Coercion turns a digit string longer than a double into Infinity, which Ajv
 * lets through `integer` and `maximum` alike: a query, param or header
 * coerced to a number that is not finite is refused like any bad value.
 */
function finiteNumbers(validate: ValidateFunction): ValidateFunction {
  const wrapped = ((data: unknown) => {
    const ok = validate(data);
    wrapped.errors = validate.errors;
    if (!ok || typeof data !== 'object' || data === null) return ok;
    for (const [key, value] of Object.entries(data)) {
      if (typeof value === 'number' && !Number.isFinite(value)) {
        wrapped.errors = [{ instancePath: `/${key}`, schemaPath: '#/type', keyword: 'type', params: {}, message: 'must be a finite number' }];
        return false;
      }
    }
    return true;
  }) as ValidateFunction;
  return wrapped;
}

/** How a number is written in a query, param or header: decimal digits, a minus before them where negatives are allowed (the schema's minimum says). */
const DECIMAL: Record<'integer' | 'number', RegExp> = { integer: /^-?\d+$/, number: /^-?\d+(?:\.\d+)?$/ };

/**
 * Ajv's coercion reads text as JavaScript's Number does: `0x10` is 16, `1e2`
 * is 100, ` 5` and `+5` are 5, `5.0` an integer. A number in a query string,
 * param or header is refused unless it is written in decimal digits, before
 * coercion reads it (the value is text until then).
 */
function decimalNumbers(schema: unknown, validate: ValidateFunction): ValidateFunction {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
  const numeric = new Map<string, RegExp>();
  for (const [key, s] of Object.entries(properties)) {
    if (s.type === 'integer' || s.type === 'number') numeric.set(key, DECIMAL[s.type]);
  }
  if (numeric.size === 0) return validate;
  return checkedFirst(validate, (data) => {
    for (const [key, decimal] of numeric) {
      const value = data[key];
      if (typeof value === 'string' && !decimal.test(value)) return [key, `must be ${decimal === DECIMAL.integer ? 'an integer' : 'a number'} in decimal digits`];
    }
    return null;
  });
}

/**
 * A query parameter given more than once (`?state=done&state=dead`) reaches
 * the validator as an array: refused as such, not as a value of the wrong
 * type ("must be string"), which names nothing the caller did. A parameter
 * the schema declares an array (none does today) is let through.
 */
function singleValues(schema: unknown, validate: ValidateFunction): ValidateFunction {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
  return checkedFirst(validate, (data) => {
    for (const [key, value] of Object.entries(data)) {
      if (Array.isArray(value) && Object.hasOwn(properties, key) && properties[key]!.type !== 'array') return [key, 'is given more than once: give it once'];
    }
    return null;
  });
}

/**
 * `validate`, after `check` of an object's fields: the first field it names,
 * with its message, is the one error (Ajv's shape); none, and Ajv decides.
 */
function checkedFirst(validate: ValidateFunction, check: (data: Record<string, unknown>) => [key: string, message: string] | null): ValidateFunction {
  const wrapped = ((data: unknown) => {
    const refused = typeof data === 'object' && data !== null ? check(data as Record<string, unknown>) : null;
    if (refused) {
      wrapped.errors = [{ instancePath: `/${refused[0]}`, schemaPath: '#/type', keyword: 'type', params: {}, message: refused[1] }];
      return false;
    }
    const ok = validate(data);
    wrapped.errors = validate.errors;
    return ok;
  }) as ValidateFunction;
  return wrapped;
}

const isOptional = (schema: unknown): boolean =>
  (schema as Record<symbol, unknown>)[OptionalKind] === 'Optional';

/** fastify hands an absent body to the validator as null: let it through. */
function optionalBody(validate: ValidateFunction): ValidateFunction {
  const wrapped = ((data: unknown) => {
    if (data === null) return true;
    const ok = validate(data);
    wrapped.errors = validate.errors;
    return ok;
  }) as ValidateFunction;
  return wrapped;
}

/** fastify's `schemaErrorFormatter`: one sentence naming the field. */
export function formatValidationError(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const e = errors[0] as ErrorObject | undefined;
  if (!e) return new Error(`${dataVar} is not valid`);
  const where = `${dataVar}${e.instancePath}`;
  if (e.keyword === 'additionalProperties') {
    return new Error(`${where} has an unknown field '${cutText(String(e.params.additionalProperty), 100)}'`);
  }
  if (e.keyword === 'enum') {
    return new Error(`${where} must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}`);
  }
  // What the pattern asks, in words, where the API says so; Ajv's names the regular expression.
  const words = e.keyword === 'pattern' ? PATTERN_WORDS.get(String(e.params.pattern)) : undefined;
  if (words) return new Error(`${where} ${words}`);
  // A value of one of several shapes (anyOf: runAt is a date-time or epoch ms) failed each: name what each
  // asked, not only the first ("must be string" of a number that was out of range).
  const alternatives = errors.some((o) => o.keyword === 'anyOf' && o.instancePath === e.instancePath)
    ? [...new Set(errors.filter((o) => o.keyword !== 'anyOf' && o.instancePath === e.instancePath).map((o) => o.message ?? 'is not valid'))]
    : [];
  if (alternatives.length > 1) return new Error(`${where} ${alternatives.join(' or ')}`);
  return new Error(`${where} ${e.message ?? 'is not valid'}`);
}

/**
 * The value of a header that names one thing (an Idempotency-Key), or a 400
 * when the request sends it more than once. Node joins the lines of a header
 * it does not know with ", ", and the result may well pass the header's
 * pattern: `Idempotency-Key: a` and `Idempotency-Key: b` would act as the one
 * key `a, b`, a key the caller never chose. `name` is in lower case.
 */
export function singleHeader(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  if (value === undefined) return undefined;
  const raw = request.raw.rawHeaders;
  let lines = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === name && ++lines > 1) {
      throw new AtsError('ATS_ERR_VALIDATION', `headers/${name} is given more than once: send one`);
    }
  }
  return Array.isArray(value) ? value[0] : value;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Where a route that takes its idempotency key in the body reads it, as its refusal of the Idempotency-Key header names it. */
    idempotencyKeyField?: string;
  }
}

/** Whether a route's headers schema declares an Idempotency-Key: the routes that read one (a submit, a signal). */
const readsKeyHeader = (schema: FastifySchema | undefined): boolean =>
  Object.hasOwn((schema?.headers as { properties?: object } | undefined)?.properties ?? {}, 'idempotency-key');

/**
 * A 400 when a write route that does not read an Idempotency-Key header is
 * sent one: ignored, the header would make a retry look safe while each one
 * was done again (a second key made, a second instance started). A route
 * that takes its key in the body names that field (`idempotencyKeyField`).
 */
function refuseKeyHeader(request: FastifyRequest): void {
  if (request.headers['idempotency-key'] === undefined || readsKeyHeader(request.routeOptions.schema)) return;
  const field = request.routeOptions.config?.idempotencyKeyField;
  throw new AtsError('ATS_ERR_VALIDATION', field === undefined
    ? `headers/idempotency-key is not read by ${request.method} ${request.routeOptions.url}: it takes no idempotency key, and a request sent again is done again`
    : `headers/idempotency-key is not read here: send the key as ${field}`);
}

/** Methods whose routes change something: what they are sent is never dropped unread. */
const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * A write route of `/v1` that declares no query string refuses one, as the
 * routes that declare theirs refuse a parameter they do not know: a field
 * sent there by mistake (`POST /v1/jobs?queue=email`) was dropped, and the
 * write done without it. Likewise one that declares no body (a DELETE)
 * refuses a body that says anything (`{}` says nothing), and one that reads
 * no Idempotency-Key header refuses that (`refuseKeyHeader`). Reads that take
 * no input still ignore a query.
 */
export function refuseUndeclaredInput(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    if (!WRITES.has(request.method) || !request.routeOptions.url?.startsWith('/v1/')) return;
    const schema = request.routeOptions.schema as FastifySchema | undefined;
    if (schema?.querystring === undefined) {
      const first = Object.keys(request.query as object)[0];
      if (first !== undefined) throw new AtsError('ATS_ERR_VALIDATION', `querystring has an unknown field '${cutText(first, 100)}'`);
    }
    if (schema?.body === undefined && request.body !== undefined && !isEmptyObject(request.body)) {
      throw new AtsError('ATS_ERR_VALIDATION', `${request.method} ${request.routeOptions.url} takes no body`);
    }
    refuseKeyHeader(request);
  });
}

const isEmptyObject = (v: unknown): boolean =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
