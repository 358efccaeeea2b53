/**
 * Hostile HTTP traffic for tests/integration/hostile-fuzz.test.ts: requests
 * generated (fast-check) from the server's own OpenAPI document, hand-written
 * framing nasties, and a raw HTTP/1.1 client over node:net that sends any
 * bytes and reads what comes back.
 *
 * A generated request is every route of the document (and the routes it does
 * not describe: /metrics, the console, the stream, the docs) with:
 * - path parameters: ids of the caller's tenant, of the other tenant, unknown,
 *   huge, unicode, encoded slashes, prototype names, bad percent-encoding;
 * - query parameters: valid per the schema, wrong types, repeated, huge,
 *   injection strings, prototype names (a wait's `timeoutMs` kept short:
 *   FUZZ_WAIT_MAX_MS);
 * - bodies valid per the schema (a small JSON-schema-to-arbitrary for the
 *   subset the document uses, with hints where the schema says too little:
 *   cron expressions, time zones, handler types), then mutated: wrong types,
 *   extra and prototype keys, deep nesting, huge strings, NaN-ish numbers,
 *   duplicate keys, invalid UTF-8, truncated JSON;
 * - headers: Authorization (none, each key, revoked, malformed, huge),
 *   Content-Type variants, Idempotency-Key nasties, Host and Origin
 *   variants, Expect, Upgrade, Connection;
 * - framing: Content-Length right (mostly), chunked, and now and then wrong
 *   (shorter or longer than the body, twice, unparsable, beside
 *   Transfer-Encoding, Transfer-Encoding tricks, bad chunk sizes).
 *
 * Every string here is a byte string (latin1: one char a byte), so a request
 * can hold any byte; `utf8Bytes` turns text into its UTF-8 bytes first.
 */
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';

// ---------------------------------------------------------------- the world the generator aims at

/** A fuzz run's size from the environment (`name`), else `fallback`; anything but a positive integer is refused. */
export function positiveInt(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${text}`);
  return n;
}

export type Tenant = 'acme' | 'globex';

/** A key the generator may present. `working` false: revoked, or not a key at all. */
export interface FuzzKey {
  label: string;
  tenant: Tenant | null;
  scopes: readonly string[];
  working: boolean;
  /** The Authorization header value; null: no header. */
  header: string | null;
}

/** What exists on the server when the run starts: ids and names of each tenant. */
export interface FuzzWorld {
  port: number;
  keys: readonly FuzzKey[];
  /** Job ids by tenant. */
  jobs: Readonly<Record<Tenant, readonly string[]>>;
  /** Key ids by tenant that the fuzz may revoke (never the ids of `keys`). */
  keyIds: Readonly<Record<Tenant, readonly string[]>>;
  schedules: Readonly<Record<Tenant, readonly string[]>>;
  limits: Readonly<Record<Tenant, readonly string[]>>;
  /** Workflow instance ids by tenant. */
  workflows: Readonly<Record<Tenant, readonly string[]>>;
  /** A working key id and secret whose secret the fuzz may mistype. */
  sampleKey: string;
}

// ---------------------------------------------------------------- the OpenAPI subset read here

export type Schema = Record<string, unknown>;

export interface Parameter {
  name: string;
  schema: Schema;
}

/** An operation's answers by status: each one's media types and schemas. */
export type Responses = Record<string, { content?: Record<string, { schema: Schema }> }>;

export interface Operation {
  method: string;
  /** The path template, `/v1/jobs/{id}`. */
  path: string;
  pathParams: Parameter[];
  queryParams: Parameter[];
  headerParams: Parameter[];
  /** The JSON body's schema; null: the route takes none. */
  body: Schema | null;
  bodyRequired: boolean;
  responses: Responses;
  /** The operation's security requirements (the document's when it names none); empty: public. */
  security: unknown[];
}

interface OpenApiDoc {
  security?: unknown[];
  paths: Record<string, Record<string, {
    security?: unknown[];
    parameters?: Array<{ in: string; name: string; required?: boolean; schema: Schema }>;
    requestBody?: { required?: boolean; content: Record<string, { schema: Schema }> };
    responses?: Responses;
  }>>;
  components?: { schemas?: Record<string, Schema> };
}

const METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options']);

/** Every operation of the document. */
export function operationsOf(doc: unknown): Operation[] {
  const d = doc as OpenApiDoc;
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries(d.paths)) {
    for (const [m, op] of Object.entries(item)) {
      if (!METHODS.has(m)) continue;
      const params = op.parameters ?? [];
      const pick = (where: string) => params.filter((p) => p.in === where).map((p) => ({ name: p.name, schema: p.schema }));
      ops.push({
        method: m.toUpperCase(), path, pathParams: pick('path'), queryParams: pick('query'), headerParams: pick('header'),
        body: op.requestBody?.content['application/json']?.schema ?? null, bodyRequired: op.requestBody?.required === true,
        responses: op.responses ?? {}, security: op.security ?? d.security ?? [],
      });
    }
  }
  return ops;
}

/** Routes the document does not describe but the server serves (or refuses). */
export const UNDOCUMENTED: readonly Operation[] = [
  '/metrics', '/', '/ui', '/ui/', '/ui/assets/app.js', '/ui/assets/..%2f..%2fpackage.json', '/v1/stream', '/docs', '/docs/json', '/docs/static/index.html',
  '/favicon.ico', '/v1', '/v2/jobs',
].map((path) => ({ method: 'GET', path, pathParams: [], queryParams: [], headerParams: [], body: null, bodyRequired: false, responses: {}, security: [] }));

// ---------------------------------------------------------------- bytes

/** The UTF-8 bytes of `text`, as a byte string. */
export const utf8Bytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

// ---------------------------------------------------------------- valid values from a schema

/** Values where the schema alone would rarely make a valid request. */
const HINTS: ReadonlyMap<string, fc.Arbitrary<unknown>> = new Map<string, fc.Arbitrary<unknown>>([
  ['cron', fc.constantFrom('* * * * *', '0 3 * * *', '*/5 * * * *', '0 0 1 1 *', '0 0 * * * *', '0 0 12 * * ? 2030')],
  ['timezone', fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata')],
  ['type', fc.constantFrom('demo.echo', 'demo.sleep', 'demo.fail')],
]);

const MAX_ITEMS = 4;
const MAX_TEXT = 40;

/** A JSON value valid per `schema` (the subset of JSON Schema the document uses). */
export function valueOf(schema: Schema, components: Record<string, Schema>, property?: string): fc.Arbitrary<unknown> {
  const ref = schema.$ref as string | undefined;
  if (ref) return valueOf(components[ref.replace('#/components/schemas/', '')] ?? {}, components, property);
  const hint = property === undefined ? undefined : HINTS.get(property);
  if (hint && (schema.type === 'string' || schema.type === undefined) && !schema.anyOf && !schema.oneOf) {
    return schema.type === 'string' ? hint : fc.oneof(hint, fc.jsonValue({ maxDepth: 2 }));
  }
  const alternatives = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (alternatives) return fc.oneof(...alternatives.map((s) => valueOf(s, components, property)));
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
  switch (schema.type) {
    case 'object': {
      const props = (schema.properties ?? {}) as Record<string, Schema>;
      const required = (schema.required ?? []) as string[];
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [name, s] of Object.entries(props)) model[name] = valueOf(s, components, name);
      const min = (schema.minProperties as number | undefined) ?? 0;
      return fc.record(model, { requiredKeys: required }).filter((o) => Object.keys(o).length >= min);
    }
    case 'array': {
      const items = (schema.items ?? {}) as Schema;
      const minLength = (schema.minItems as number | undefined) ?? 0;
      const maxLength = Math.max(minLength, Math.min((schema.maxItems as number | undefined) ?? MAX_ITEMS, MAX_ITEMS));
      return fc.array(valueOf(items, components), { minLength, maxLength });
    }
    case 'string': {
      const minLength = (schema.minLength as number | undefined) ?? 0;
      const maxLength = (schema.maxLength as number | undefined) ?? MAX_TEXT;
      if (schema.format === 'date-time') {
        return fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString());
      }
      if (typeof schema.pattern === 'string') {
        return fc.stringMatching(new RegExp(schema.pattern), { maxLength: Math.min(maxLength, MAX_TEXT) }).filter((s) => s.length >= minLength);
      }
      return fc.string({ minLength, maxLength: Math.max(minLength, Math.min(maxLength, MAX_TEXT)) });
    }
    case 'integer': {
      const min = (schema.minimum as number | undefined) ?? -1_000_000;
      const max = (schema.maximum as number | undefined) ?? 1_000_000;
      return fc.oneof(fc.constantFrom(min, max), fc.integer({ min: Math.max(min, Number.MIN_SAFE_INTEGER), max: Math.min(max, Number.MAX_SAFE_INTEGER) }));
    }
    case 'number':
      return fc.double({ noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    default:
      // No type: any JSON value (a job's payload).
      return fc.jsonValue({ maxDepth: 3 });
  }
}

// ---------------------------------------------------------------- nasty pieces

const INJECTIONS = [
  "' OR '1'='1", "'; DROP TABLE jobs; --", '" OR ""="', '1 UNION SELECT hash FROM api_keys', '$(reboot)', '`id`', '; ls -la',
  '<script>alert(1)</script>', '{{7*7}}', '${7*7}', '${jndi:ldap://127.0.0.1/a}', '../../../../etc/passwd', '..\\..\\windows\\win.ini',
  '%00', '\\u0000', '%n%s%x', 'null', 'undefined', 'NaN', '-1', '1e309', 'true', '[]', '{}', '*', '%', '\\', '/', 'a/b', 'ats_',
];
const PROTO_NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];
const UNICODE = ['é', 'ü', '漢字', '😀', '\u202e', '\u200b', '\ufeff', 'ǅ', 'İ', '\u0301', '\udbff\udfff', 'Ａ'];

/** A string someone should not have sent (a byte string). */
const nastyText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...INJECTIONS, ...PROTO_NAMES, '', ' ', '\t', '\r\n', '\u0000'),
  fc.constantFrom(...UNICODE).map(utf8Bytes),
  fc.string({ unit: 'binary', maxLength: 30 }).map(utf8Bytes),
  fc.string({ unit: 'binary-ascii', maxLength: 30 }),
  fc.constantFrom(256, 1000, 5000).map((n) => 'x'.repeat(n)),
);

/** A raw JSON fragment that should upset a parser, a validator or a database. */
const nastyJsonFragment: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    'NaN', 'Infinity', '-Infinity', '1e309', '-1e309', '-0', '1e-400', '9007199254740993', '0.1e1', '01', '.5', '1.', '+1', '0x1F',
    'undefined', 'null', 'true', 'false', '[]', '{}', '""', '"\\ud800"', '"\\u0000"', '"\\uDFFF\\uD800"', '-1', '0', '2147483648',
    '-2147483649', '1.5', '1e2', '"1"', '"true"', '[1]', '{"kind":"fixed"}', '{"__proto__":{"polluted":1}}',
    '{"constructor":{"prototype":{"polluted":1}}}', '"__proto__"',
  ),
  fc.constantFrom(10, 33, 101, 1000, 20_000).map((d) => `${'['.repeat(d)}${']'.repeat(d)}`),
  fc.constantFrom(10, 33, 101, 1000, 20_000).map((d) => `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`),
  fc.constantFrom(1000, 70_000, 300_000).map((n) => JSON.stringify('x'.repeat(n))),
  nastyText.map((t) => utf8Bytes(JSON.stringify(Buffer.from(t, 'latin1').toString('utf8')))),
);

/** Placeholder text replaced by a raw fragment after JSON.stringify. */
const SLOT = '\u0001SLOT\u0001';
const SLOT_JSON = JSON.stringify(SLOT);

/** A body: its bytes (a byte string), or null for none. */
export interface FuzzBody {
  kind: string;
  text: string | null;
}

/** A JSON body for `schema`: valid, mutated, or broken at the byte level. */
function bodyArb(schema: Schema, components: Record<string, Schema>): fc.Arbitrary<FuzzBody> {
  const valid = valueOf(schema, components);
  const json = (v: unknown) => utf8Bytes(JSON.stringify(v) ?? 'null');
  const keysOf = (v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.keys(v) : []);
  return fc.oneof(
    { weight: 30, arbitrary: valid.map((v) => ({ kind: 'valid', text: json(v) })) },
    // One field's value replaced by a raw fragment (wrong type, NaN-ish, deep, huge, prototype).
    {
      weight: 15,
      arbitrary: fc.tuple(valid, fc.nat(), nastyJsonFragment).map(([v, i, frag]) => {
        const keys = keysOf(v);
        if (keys.length === 0) return { kind: 'fragment-root', text: frag };
        const k = keys[i % keys.length]!;
        const copy = { ...(v as Record<string, unknown>), [k]: SLOT };
        return { kind: `fragment-${k}`, text: json(copy).replace(SLOT_JSON, () => frag) };
      }),
    },
    // An extra field: unknown, prototype-named, or a duplicate of an existing key (raw JSON keeps both).
    {
      weight: 8,
      arbitrary: fc.tuple(valid, fc.oneof(fc.constantFrom(...PROTO_NAMES, 'extra', 'tenant', 'id', 'keyId'), fc.nat()), nastyJsonFragment)
        .map(([v, which, frag]) => {
          const keys = keysOf(v);
          const text = json(v);
          if (!text.startsWith('{')) return { kind: 'extra-not-object', text };
          const name = typeof which === 'number' ? (keys.length ? keys[which % keys.length]! : 'dup') : which;
          const inner = text.slice(1);
          return { kind: `extra-${typeof which === 'number' ? 'duplicate' : name}`, text: `{${JSON.stringify(name)}:${frag}${inner === '}' ? '}' : `,${inner}`}` };
        }),
    },
    // A required field left out, or the whole body of the wrong type.
    {
      weight: 5,
      arbitrary: fc.tuple(valid, fc.nat()).map(([v, i]) => {
        const keys = keysOf(v);
        if (keys.length === 0) return { kind: 'wrong-root', text: '{}' };
        const copy = { ...(v as Record<string, unknown>) };
        delete copy[keys[i % keys.length]!];
        return { kind: 'missing-field', text: json(copy) };
      }),
    },
    { weight: 5, arbitrary: nastyJsonFragment.map((text) => ({ kind: 'wrong-root', text })) },
    // Byte-level: truncated, invalid UTF-8 inside a string, a BOM, trailing garbage, two documents, padding.
    {
      weight: 10,
      arbitrary: fc.tuple(valid, fc.nat(), fc.constantFrom('truncate', 'bad-utf8', 'bom', 'trailing', 'two-docs', 'padding', 'nul', 'empty', 'spaces', 'form', 'xml'))
        .map(([v, i, how]) => {
          const text = json(v);
          const at = text.length === 0 ? 0 : i % text.length;
          const inString = text.indexOf('"', 1);
          switch (how) {
            case 'truncate': return { kind: how, text: text.slice(0, at) };
            case 'bad-utf8': {
              const bad = ['\xff', '\xc3\x28', '\xc0\xaf', '\xed\xa0\x80', '\xf4\x90\x80\x80', '\xe2\x82'][i % 6]!;
              const p = inString > 0 ? inString : at;
              return { kind: how, text: `${text.slice(0, p)}${bad}${text.slice(p)}` };
            }
            case 'bom': return { kind: how, text: `\xef\xbb\xbf${text}` };
            case 'trailing': return { kind: how, text: `${text}x` };
            case 'two-docs': return { kind: how, text: `${text}${text}` };
            case 'padding': return { kind: how, text: `${' '.repeat(1000 + (i % 5000))}${text}` };
            case 'nul': return { kind: how, text: `${text.slice(0, at)}\x00${text.slice(at)}` };
            case 'empty': return { kind: how, text: '' };
            case 'spaces': return { kind: how, text: ' \r\n\t ' };
            case 'form': return { kind: how, text: 'type=demo.echo&payload=1' };
            default: return { kind: how, text: '<?xml version="1.0"?><job/>' };
          }
        }),
    },
    // Over the body limit (1 MiB by default).
    { weight: 1, arbitrary: fc.constantFrom(1024 * 1024 + 1, 2 * 1024 * 1024).map((n) => ({ kind: 'over-limit', text: `{"type":"demo.echo","payload":"${'x'.repeat(n)}"}` })) },
    { weight: 4, arbitrary: fc.constant({ kind: 'none', text: null }) },
  );
}

// ---------------------------------------------------------------- path and query parameters

const ULID_LIKE = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

/** Values of a path parameter: the caller's tenant's, the other tenant's, unknown, broken. */
function pathValueArb(param: { name: string; schema: Schema }, op: Operation, world: FuzzWorld, components: Record<string, Schema>): fc.Arbitrary<PathValue> {
  const pool = (t: Tenant): readonly string[] => {
    if (op.path.startsWith('/v1/jobs')) return world.jobs[t];
    if (op.path.startsWith('/v1/keys')) return world.keyIds[t];
    if (op.path.startsWith('/v1/schedules')) return world.schedules[t];
    if (op.path.startsWith('/v1/limits')) return world.limits[t];
    if (op.path.startsWith('/v1/workflows')) return world.workflows[t];
    return [];
  };
  const tenantValues = (t: Tenant) => (pool(t).length ? [fc.constantFrom(...pool(t)).map((v) => ({ value: v, owner: t, raw: false }))] : []);
  const plain = (a: fc.Arbitrary<string>, raw = false) => a.map((value) => ({ value, owner: null, raw }));
  const ulidish = ULID_LIKE.source === (param.schema.pattern as string | undefined);
  return fc.oneof(
    ...tenantValues('acme').map((arbitrary) => ({ weight: 4, arbitrary })),
    ...tenantValues('globex').map((arbitrary) => ({ weight: 4, arbitrary })),
    { weight: 3, arbitrary: plain(ulidish ? fc.ulid() : (valueOf(param.schema, components) as fc.Arbitrary<string>)) },
    {
      weight: 3,
      arbitrary: plain(fc.oneof(
        fc.constantFrom(
          '__proto__', 'constructor', 'prototype', 'toString', '%2F', 'a%2Fb', '..', '%2e%2e', '%2E%2E%2F%2E%2E', '%00', '%', '%zz', '%C0%AF',
          '%FF', '%ED%A0%80', "'%20OR%20'1'='1", '*', '%20', '+', '~', '.', 'a;b', 'a,b', '01ARZ3NDEKTSV4RRFFQ69G5FA', '01ARZ3NDEKTSV4RRFFQ69G5FAVX',
          '01arz3ndektsv4rrffq69g5fav', '81ARZ3NDEKTSV4RRFFQ69G5FAV', 'ZZZZZZZZZZZZZZZZZZZZZZZZZZ', '%5F%5Fproto%5F%5F', 'a'.repeat(201), 'a'.repeat(5000),
        ),
        fc.constantFrom(...UNICODE).map((u) => encodeURIComponent(u.normalize())),
        fc.constantFrom(...UNICODE).map(utf8Bytes),
        fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 30 }).map(encodeURIComponent),
      ), true),
    },
    { weight: 1, arbitrary: plain(fc.constantFrom(10_000, 20_000).map((n) => 'A'.repeat(n)), true) },
  );
}

interface PathValue {
  value: string;
  /** The tenant whose object this names; null: nobody's (as far as the run knows). */
  owner: Tenant | null;
  /** Already as it goes on the wire (not to be encoded). */
  raw: boolean;
}

const encodePathValue = (v: PathValue): string => (v.raw ? v.value : encodeURIComponent(v.value));

/** A query parameter's value: valid per its schema, or not. */
function queryPairArb(param: { name: string; schema: Schema }, components: Record<string, Schema>): fc.Arbitrary<string> {
  const name = encodeURIComponent(param.name);
  const valid = valueOf(param.schema, components).map((v) => `${name}=${encodeURIComponent(String(v))}`);
  return fc.oneof(
    { weight: 6, arbitrary: valid },
    { weight: 2, arbitrary: nastyText.map((t) => `${name}=${encodeURIComponent(Buffer.from(t, 'latin1').toString('utf8'))}`) },
    { weight: 1, arbitrary: fc.tuple(valid, valid).map(([a, b]) => `${a}&${b}`) },
    { weight: 1, arbitrary: fc.constantFrom('-1', '0', '1.5', '1e3', '99999999999999999999', 'true', '[]', 'abc', '').map((v) => `${name}=${v}`) },
    { weight: 1, arbitrary: fc.constantFrom(`${name}[]=1`, `${name}[a]=1`, `${name}`, `${name}=`, `${name}=%`, `${name}=%zz`, `${name}=${'9'.repeat(5000)}`, `${name}=a+b`, `${name}=%00`) },
  );
}

/**
 * The longest wait a generated request asks for. A wait (`GET
 * /v1/workflows/{id}/wait`, a start with `wait`) lasts its whole `timeoutMs`
 * on an instance that never ends, as the fuzz's do, and its default (30 s)
 * is past the fuzz's hang limit: so a wait always sends `timeoutMs`, and a
 * valid one is this short. (A nasty value the server takes, `1e3`, waits a
 * second at most.)
 */
export const FUZZ_WAIT_MAX_MS = 50;

/**
 * The query pairs of a request to `op`: some of its parameters, each valid or
 * not; a wait's `timeoutMs` always when the request waits (`until`, or `wait`
 * chosen), capped at FUZZ_WAIT_MAX_MS.
 */
function queryPairsArb(op: Operation, components: Record<string, Schema>): fc.Arbitrary<string[]> {
  const timeout = op.queryParams.find((p) => p.name === 'timeoutMs');
  const others = op.queryParams.filter((p) => p !== timeout);
  return fc.subarray(others).chain((picked) => {
    const arbs = picked.map((p) => queryPairArb(p, components));
    if (timeout) {
      const short = queryPairArb({ name: timeout.name, schema: { ...timeout.schema, maximum: FUZZ_WAIT_MAX_MS } }, components);
      const waits = op.queryParams.some((p) => p.name === 'until') || picked.some((p) => p.name === 'wait');
      arbs.push(waits ? short : fc.oneof(fc.constant(''), short));
    }
    return arbs.length ? fc.tuple(...arbs).map((pairs) => pairs.filter((q) => q !== '')) : fc.constant([] as string[]);
  });
}

/** Parameters no route declares. */
const strayQuery: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '__proto__[polluted]=1', 'constructor[prototype][polluted]=1', '__proto__=1', 'tenant=globex', 'tenant=acme', 'key=ats_x', 'limit=1&limit=2',
    'a=1&a=2&a=3', '&&&', '=', '==', '%', '%zz', '?', '#frag', `x=${'y'.repeat(10_000)}`, 'callback=alert(1)',
  ),
  fc.string({ unit: 'binary-ascii', maxLength: 20 }).map((s) => `q=${encodeURIComponent(s)}`),
);

// ---------------------------------------------------------------- headers

export type HeaderLine = [name: string, value: string];

function authArb(world: FuzzWorld): fc.Arbitrary<{ key: FuzzKey; lines: HeaderLine[] }> {
  const working = world.keys.filter((k) => k.header !== null);
  const sample = world.sampleKey;
  const broken = (label: string, header: string): { key: FuzzKey; lines: HeaderLine[] } => ({
    key: { label, tenant: null, scopes: [], working: false, header }, lines: [['Authorization', header]],
  });
  const malformed = fc.constantFrom(
    broken('bearer-empty', 'Bearer'), broken('bearer-space', 'Bearer '), broken('basic', 'Basic dXNlcjpwYXNz'),
    broken('wrong-secret', `Bearer ${sample.slice(0, -4)}AAAA`), broken('key-no-prefix', `Bearer ${sample.slice(4)}`),
    broken('unknown-id', `Bearer ats_01ARZ3NDEKTSV4RRFFQ69G5FAV_${'A'.repeat(43)}`), broken('trailing', `Bearer ${sample}x`),
    broken('two-tokens', `Bearer ${sample} ${sample}`), broken('token-only', sample), broken('huge', `Bearer ${'A'.repeat(8000)}`),
    broken('too-huge', `Bearer ${'A'.repeat(20_000)}`), broken('unicode', `Bearer ${utf8Bytes('ats_ÄÖÜ_😀')}`), broken('nul', `Bearer ats_\x00`),
    broken('sql', "Bearer ' OR 1=1 --"), broken('proto', 'Bearer __proto__'), broken('lower-id', `Bearer ${sample.toLowerCase()}`),
  );
  const none = fc.constant({ key: { label: 'none', tenant: null, scopes: [], working: false, header: null } as FuzzKey, lines: [] as HeaderLine[] });
  const present = fc.constantFrom(...working).map((key) => ({ key, lines: [['Authorization', key.header!]] as HeaderLine[] }));
  const twice = fc.tuple(fc.constantFrom(...working), fc.constantFrom(...working)).map(([a, b]) => ({
    // Node keeps the first Authorization of a request and drops the others.
    key: a, lines: [['Authorization', a.header!], ['Authorization', b.header!]] as HeaderLine[],
  }));
  return fc.oneof({ weight: 12, arbitrary: present }, { weight: 2, arbitrary: none }, { weight: 3, arbitrary: malformed }, { weight: 1, arbitrary: twice });
}

function hostArb(port: number): fc.Arbitrary<HeaderLine[]> {
  return fc.oneof(
    { weight: 20, arbitrary: fc.constant([['Host', `127.0.0.1:${port}`]] as HeaderLine[]) },
    {
      weight: 2,
      arbitrary: fc.constantFrom<HeaderLine[]>(
        [['Host', 'localhost']], [['Host', `localhost:${port}`]], [['Host', `[::1]:${port}`]], [['Host', 'LOCALHOST']], [['Host', 'evil.example']],
        [['Host', `evil.example:${port}`]], [['Host', '127.0.0.1.nip.io']], [['Host', '']], [['Host', '127.0.0.1:99999']], [['Host', 'a'.repeat(300)]],
        [['Host', utf8Bytes('lоcalhost')]], [['Host', '127.0.0.1@evil.example']], [['Host', '127.0.0.1 evil']], [],
        [['Host', `127.0.0.1:${port}`], ['Host', 'evil.example']], [['Host', 'evil.example'], ['Host', `127.0.0.1:${port}`]],
        [['Host', `127.0.0.1:${port}`], ['X-Forwarded-Host', 'evil.example'], ['X-Forwarded-For', '10.0.0.1']],
      ),
    },
  );
}

function originArb(port: number): fc.Arbitrary<HeaderLine[]> {
  return fc.oneof(
    { weight: 20, arbitrary: fc.constant([] as HeaderLine[]) },
    {
      weight: 2,
      arbitrary: fc.constantFrom<HeaderLine[]>(
        [['Origin', `http://127.0.0.1:${port}`]], [['Origin', `http://localhost:${port}`]], [['Origin', 'http://evil.example']], [['Origin', 'null']],
        [['Origin', 'garbage']], [['Origin', `https://127.0.0.1:${port}`]], [['Origin', `http://127.0.0.1:${port}.evil.example`]], [['Origin', 'x'.repeat(3000)]],
        [['Origin', 'file://']], [['Origin', `http://127.0.0.1:${port}`], ['Origin', 'http://evil.example']], [['Referer', 'http://evil.example/']],
      ),
    },
  );
}

const CONTENT_TYPES = [
  'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json;charset=UTF-8', 'application/json; charset=latin1', 'text/plain',
  'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '', 'application/json, text/plain', 'application/jsonx', 'application/vnd.api+json',
  'application/*', '*/*', 'json', 'application/json; boundary="', `application/json; ${'a=b; '.repeat(500)}`, 'application/json\x00', 'text/html',
];

function contentTypeArb(hasBody: boolean): fc.Arbitrary<HeaderLine[]> {
  return fc.oneof(
    { weight: hasBody ? 18 : 2, arbitrary: fc.constant([['Content-Type', 'application/json']] as HeaderLine[]) },
    { weight: hasBody ? 1 : 10, arbitrary: fc.constant([] as HeaderLine[]) },
    { weight: 2, arbitrary: fc.constantFrom(...CONTENT_TYPES).map((ct) => [['Content-Type', ct]] as HeaderLine[]) },
    { weight: 1, arbitrary: fc.constant([['Content-Type', 'application/json'], ['Content-Type', 'text/plain']] as HeaderLine[]) },
  );
}

const idempotencyArb: fc.Arbitrary<HeaderLine[]> = fc.oneof(
  { weight: 6, arbitrary: fc.constant([] as HeaderLine[]) },
  { weight: 3, arbitrary: fc.stringMatching(/^[\x21-\x7e]{1,40}$/).map((k) => [['Idempotency-Key', k]] as HeaderLine[]) },
  // The same few keys again and again: replays, and the same key with another body.
  { weight: 2, arbitrary: fc.constantFrom('fuzz-1', 'fuzz-2', '__proto__', 'constructor').map((k) => [['Idempotency-Key', k]] as HeaderLine[]) },
  {
    weight: 2,
    arbitrary: fc.constantFrom('', ' ', ' lead', 'trail ', 'a'.repeat(256), 'a'.repeat(5000), utf8Bytes('ключ'), 'a\tb', "'; DROP TABLE jobs; --", 'a\x7fb', '%00')
      .map((k) => [['Idempotency-Key', k]] as HeaderLine[]),
  },
  { weight: 1, arbitrary: fc.constant([['Idempotency-Key', 'fuzz-1'], ['Idempotency-Key', 'fuzz-2']] as HeaderLine[]) },
);

const miscHeaders: fc.Arbitrary<HeaderLine[]> = fc.oneof(
  { weight: 20, arbitrary: fc.constant([] as HeaderLine[]) },
  {
    weight: 3,
    arbitrary: fc.constantFrom<HeaderLine[]>(
      [['Expect', '100-continue']], [['Expect', 'garbage']], [['Connection', 'close']], [['Connection', 'keep-alive']], [['Connection', 'Upgrade'], ['Upgrade', 'h2c'], ['HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA']],
      [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==']],
      [['Upgrade', 'websocket']], [['Accept', 'text/html']], [['Accept', '*/*;q=0']], [['Accept-Encoding', 'gzip, deflate, br']], [['Range', 'bytes=0-1']],
      [['X-HTTP-Method-Override', 'DELETE']], [['X-Request-Id', '<script>']], [['Cookie', 'session=1; __proto__=x']], [['If-None-Match', '*']],
      [['Te', 'trailers']], [['Proxy-Connection', 'keep-alive']], [['X-Forwarded-Proto', 'https']], [['Max-Forwards', '0']],
      [['Sec-WebSocket-Protocol', 'ats.v1, ats.key.ats_01ARZ3NDEKTSV4RRFFQ69G5FAV_x']], [['Access-Control-Request-Method', 'DELETE'], ['Origin', 'http://evil.example']],
      [['X-Weird\x01', 'x']], [['', 'empty-name']], [['X-Many', 'a,'.repeat(2000)]], [['X-Big', 'b'.repeat(15_000)]], [['X-Bigger', 'b'.repeat(40_000)]],
      [['X-Unicode', utf8Bytes('ünïcødé 😀')]], [['X-Nul', 'a\x00b']], [['X-Cr', 'a\rb']],
    ),
  },
);

// ---------------------------------------------------------------- framing

/**
 * How the body is framed. `clean` framings leave the connection usable for
 * the next request; the others may leave bytes the server reads as another
 * request, or a body that never completes.
 */
const FRAMINGS = {
  length: true, chunked: true, 'chunked-ext': true,
  'cl-short': false, 'cl-long': false, 'cl-dup-same': false, 'cl-dup-diff': false, 'cl-bad': false, 'te-and-cl': false,
  'te-odd': false, 'chunked-bad': false, 'no-length': false,
} as const;
export type Framing = keyof typeof FRAMINGS;

const framingArb: fc.Arbitrary<{ framing: Framing; variant: number }> = fc.tuple(
  fc.oneof(
    { weight: 200, arbitrary: fc.constant<Framing>('length') },
    { weight: 8, arbitrary: fc.constantFrom<Framing>('chunked', 'chunked-ext') },
    { weight: 1, arbitrary: fc.constantFrom<Framing>('cl-short', 'cl-dup-same', 'cl-dup-diff', 'cl-bad', 'te-and-cl', 'te-odd', 'chunked-bad', 'no-length') },
    // A body shorter than its Content-Length waits for the body timeout: rarer.
    { weight: 1, arbitrary: fc.constant<Framing>('cl-long') },
  ),
  fc.nat(),
).map(([framing, variant]) => ({ framing, variant }));

// ---------------------------------------------------------------- the request

export interface FuzzRequest {
  /** The operation aimed at (`POST /v1/jobs/{id}/cancel`). */
  op: string;
  method: string;
  target: string;
  headers: HeaderLine[];
  body: FuzzBody;
  framing: Framing;
  variant: number;
  /** The key presented. */
  key: FuzzKey;
  /** Tenants whose objects the path names (empty: none known). */
  pathOwners: Tenant[];
  /** Whether the connection stays usable after the response (well framed). */
  clean: boolean;
  /** The request as sent. */
  wire: Buffer;
  [fc.toStringMethod](): string;
}

const EXOTIC_METHODS = ['HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'PURGE', 'get', 'G\x00T', 'GET\t', 'M'.repeat(300), 'CONNECT', 'PATCH', 'PUT', 'DELETE', 'POST', 'GET'];

function methodArb(op: Operation): fc.Arbitrary<string> {
  return fc.oneof({ weight: 20, arbitrary: fc.constant(op.method) }, { weight: 1, arbitrary: fc.constantFrom(...EXOTIC_METHODS) });
}

/**
 * Target shapes around the template and its query (`q`, with its `?`, or
 * empty): a trailing slash, doubled slashes, dot segments, case, a fragment,
 * a request line split by an injected header. What ends the target (`#`, the
 * injection) comes after the query, so a wait keeps the short `timeoutMs` the
 * query gives it.
 */
function pathShapeArb(): fc.Arbitrary<(p: string, q: string) => string> {
  return fc.oneof(
    { weight: 30, arbitrary: fc.constant((p: string, q: string) => `${p}${q}`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom<(p: string, q: string) => string>(
        (p, q) => `${p}/${q}`, (p, q) => `${p.replace(/\//g, '//')}${q}`, (p, q) => `/v1/../${p.slice(1)}${q}`, (p, q) => `/v1/./${p.slice(4)}${q}`, (p, q) => `${p.toUpperCase()}${q}`,
        (p, q) => `${p}%2F${q}`, (p, q) => `${p};x=1${q}`, (p, q) => `${p}${q}#frag`, (p, q) => `http://evil.example${p}${q}`, (p, q) => `http://127.0.0.1${p}${q}`, (p, q) => `${p.replace(/^\//, '')}${q}`,
        (p, q) => `${p}/..%2f..%2fkeys${q}`, (p, q) => `${p.replace('/v1/', '/v1%2F')}${q}`, (p, q) => `${p}\\${q}`, (p, q) => `${p}%00${q}`, (p, q) => `${p}\x00${q}`, (p, q) => `${p}${q} HTTP/1.1\r\nX-Injected: 1`,
        (p, q) => `${p}/${'a'.repeat(20_000)}${q}`, () => '*', () => '/', () => '',
      ),
    },
  );
}

function operationArb(op: Operation, world: FuzzWorld, components: Record<string, Schema>): fc.Arbitrary<FuzzRequest> {
  const pathArb = fc.tuple(...op.pathParams.map((p) => pathValueArb(p, op, world, components)));
  const queryArb = fc.tuple(
    queryPairsArb(op, components),
    fc.oneof({ weight: 8, arbitrary: fc.constant<string | null>(null) }, { weight: 1, arbitrary: strayQuery }),
  );
  const headerParamArb = fc.tuple(...op.headerParams.map(() => idempotencyArb));
  const hasSchemaBody = op.body !== null;
  const body: fc.Arbitrary<FuzzBody> = hasSchemaBody
    ? bodyArb(op.body!, components)
    : fc.oneof({ weight: 12, arbitrary: fc.constant({ kind: 'none', text: null }) }, { weight: 1, arbitrary: nastyJsonFragment.map((text) => ({ kind: 'unexpected', text })) });
  return fc.record({
    method: methodArb(op), shape: pathShapeArb(), path: pathArb, query: queryArb, auth: authArb(world), body, framing: framingArb,
    host: hostArb(world.port), origin: originArb(world.port), contentType: contentTypeArb(hasSchemaBody), idempotency: headerParamArb,
    misc: miscHeaders,
  }).map((r) => {
    let i = 0;
    const template = op.path.replace(/\{[^}]+\}/g, () => encodePathValue(r.path[i++]!));
    const [pairs, stray] = r.query;
    const query = [...pairs, ...(stray === null ? [] : [stray])];
    const target = r.shape(template, query.length ? `?${query.join('&')}` : '');
    const headers: HeaderLine[] = [...r.host, ...r.auth.lines, ...r.origin, ...(r.body.text === null ? [] : r.contentType), ...r.idempotency.flat(), ...r.misc];
    const owners = [...new Set(r.path.map((v) => v.owner).filter((o): o is Tenant => o !== null))];
    return makeRequest(`${op.method} ${op.path}`, r.method, target, headers, r.body, r.framing.framing, r.framing.variant, r.auth.key, owners);
  });
}

/** The generator: every operation of the document (and the undocumented routes), weighted by how much there is to try. */
export function fuzzRequestArb(doc: unknown, world: FuzzWorld): fc.Arbitrary<FuzzRequest> {
  const components = ((doc as OpenApiDoc).components?.schemas ?? {}) as Record<string, Schema>;
  const ops = operationsOf(doc);
  const weighted = ops.map((op) => ({ weight: op.body ? 4 : op.pathParams.length || op.queryParams.length ? 3 : 1, arbitrary: operationArb(op, world, components) }));
  const extra = UNDOCUMENTED.map((op) => ({ weight: 1, arbitrary: operationArb(op, world, components) }));
  return fc.oneof(...weighted, ...extra);
}

// ---------------------------------------------------------------- the bytes of a request

function framed(body: string | null, framing: Framing, variant: number): { headers: HeaderLine[]; payload: string } {
  if (body === null && (framing === 'length' || framing === 'chunked' || framing === 'chunked-ext')) return { headers: [], payload: '' };
  const b = body ?? '';
  const chunked = (text: string, ext = '') => {
    const parts: string[] = [];
    const size = Math.max(1 + (variant % 4096), Math.ceil(text.length / 1000));
    for (let at = 0; at < text.length; at += size) {
      const piece = text.slice(at, at + size);
      parts.push(`${piece.length.toString(16)}${ext}\r\n${piece}\r\n`);
    }
    return `${parts.join('')}0\r\n\r\n`;
  };
  switch (framing) {
    case 'length': return { headers: [['Content-Length', String(b.length)]], payload: b };
    case 'chunked': return { headers: [['Transfer-Encoding', 'chunked']], payload: chunked(b) };
    case 'chunked-ext': return { headers: [['Transfer-Encoding', 'chunked']], payload: `${chunked(b, ';ext=1').slice(0, -2)}X-Trailer: 1\r\n\r\n` };
    // The bytes past the length are read as the next request: ended with a blank line so that it is one at once.
    case 'cl-short': return { headers: [['Content-Length', String(Math.max(0, b.length - 1 - (variant % Math.max(1, b.length))))]], payload: `${b}\r\n\r\n` };
    case 'cl-long': return { headers: [['Content-Length', String(b.length + 1 + (variant % 100))]], payload: b };
    case 'cl-dup-same': return { headers: [['Content-Length', String(b.length)], ['Content-Length', String(b.length)]], payload: b };
    case 'cl-dup-diff': return { headers: [['Content-Length', String(b.length)], ['Content-Length', String(b.length + 1)]], payload: `${b}\r\n\r\n` };
    case 'cl-bad': {
      const bad = ['-1', `+${b.length}`, `0x${b.length.toString(16)}`, `${b.length} ${b.length}`, 'abc', '99999999999999999999', ` ${b.length}`, `${b.length}.0`, `${b.length},${b.length}`, ''];
      return { headers: [['Content-Length', bad[variant % bad.length]!]], payload: `${b}\r\n\r\n` };
    }
    case 'te-and-cl': return { headers: [['Content-Length', String(b.length)], ['Transfer-Encoding', 'chunked']], payload: `${chunked(b)}` };
    case 'te-odd': {
      const te = ['xchunked', 'chunked, identity', 'identity', ' chunked', 'gzip, chunked', 'chunked, gzip', 'Chunked', 'chunked\t', 'chunk', 'chunked;q=1'];
      return { headers: [['Transfer-Encoding', te[variant % te.length]!]], payload: `${chunked(b)}\r\n\r\n` };
    }
    case 'chunked-bad': {
      const bad = ['zz\r\nab\r\n0\r\n\r\n', '-1\r\nab\r\n0\r\n\r\n', 'fffffffffffffffffffff\r\nab\r\n0\r\n\r\n', '2\r\nabcdef\r\n0\r\n\r\n', ' 2\r\nab\r\n0\r\n\r\n', '2\nab\n0\n\n', '0x2\r\nab\r\n0\r\n\r\n', '2\r\nab0\r\n\r\n'];
      return { headers: [['Transfer-Encoding', 'chunked']], payload: `${bad[variant % bad.length]}\r\n\r\n` };
    }
    case 'no-length': return { headers: [], payload: `${b}\r\n\r\n` };
  }
}

function makeRequest(
  op: string, method: string, target: string, headers: HeaderLine[], body: FuzzBody, framing: Framing, variant: number, key: FuzzKey, pathOwners: Tenant[],
): FuzzRequest {
  const { headers: frame, payload } = framed(body.text, framing, variant);
  const all = [...headers, ...frame];
  const head = `${method} ${target} HTTP/1.1\r\n${all.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  const wire = bytes(head + payload);
  // A request line or header the parser refuses closes the connection anyway; an upgrade hands it over.
  const clean = FRAMINGS[framing];
  const request: FuzzRequest = {
    op, method, target, headers: all, body, framing, variant, key, pathOwners, clean, wire,
    [fc.toStringMethod]: () => describeRequest(request),
  };
  return request;
}

/** The request for a failure report: what was aimed at, and the bytes (long runs cut in the middle). */
export function describeRequest(r: Pick<FuzzRequest, 'op' | 'key' | 'body' | 'framing' | 'wire'>): string {
  return `${r.op} as ${r.key.label}, body ${r.body.kind}, framing ${r.framing}, ${r.wire.length} bytes:\n${printable(r.wire)}`;
}

/** Bytes as a JSON string literal; past 4 KiB, the first 3 KiB and the last 1 KiB. */
export function printable(wire: Buffer): string {
  const text = wire.toString('latin1');
  const cut = text.length > 4096 ? `${text.slice(0, 3072)}<... ${text.length - 4096} bytes ...>${text.slice(-1024)}` : text;
  return JSON.stringify(cut);
}

// ---------------------------------------------------------------- hand-written framing nasties

export type Step = { write: string } | { wait: number } | { end: true } | { destroy: true };

export interface RawCase {
  name: string;
  steps: Step[];
  /** May a response of it be a 2xx that writes (pipelined valid requests)? */
  mayWrite?: boolean;
}

/** Nasties in the framing itself, over one connection each. `auth` is a working key's header value with every scope. */
export function rawCases(port: number, auth: string, submitOnly: string): RawCase[] {
  const host = `Host: 127.0.0.1:${port}\r\n`;
  const a = `Authorization: ${auth}\r\n`;
  const job = '{"type":"demo.echo","payload":{"smuggled":true}}';
  const post = (extra: string, body: string) => `POST /v1/jobs HTTP/1.1\r\n${host}Authorization: ${submitOnly}\r\nContent-Type: application/json\r\n${extra}\r\n${body}`;
  const inner = `POST /v1/jobs HTTP/1.1\r\n${host}Authorization: ${submitOnly}\r\nContent-Type: application/json\r\nContent-Length: ${job.length}\r\n\r\n${job}`;
  const get = (path = '/v1/jobs?limit=1', extra = '') => `GET ${path} HTTP/1.1\r\n${host}${a}${extra}\r\n`;
  const w = (write: string): Step => ({ write });
  const cases: RawCase[] = [
    // Request lines.
    { name: 'empty line then EOF', steps: [w('\r\n'), { end: true }] },
    { name: 'leading blank lines', steps: [w(`\r\n\r\n${get()}`)] },
    { name: 'method only', steps: [w('GET\r\n\r\n')] },
    { name: 'HTTP/0.9 simple request', steps: [w('GET /healthz\r\n')] },
    { name: 'HTTP/0.9 then close', steps: [w('GET /\r\n'), { end: true }] },
    { name: 'HTTP/1.0 without Host', steps: [w(`GET /v1/jobs HTTP/1.0\r\n${a}\r\n`)] },
    { name: 'HTTP/1.1 without Host', steps: [w(`GET /v1/jobs HTTP/1.1\r\n${a}\r\n`)] },
    { name: 'HTTP/9.9', steps: [w(`GET / HTTP/9.9\r\n${host}\r\n`)] },
    { name: 'HTTP/2.0 in a request line', steps: [w(`GET / HTTP/2.0\r\n${host}\r\n`)] },
    { name: 'lower-case version', steps: [w(`GET / http/1.1\r\n${host}\r\n`)] },
    { name: 'three parts plus one', steps: [w(`GET / HTTP/1.1 extra\r\n${host}\r\n`)] },
    { name: 'double spaces', steps: [w(`GET  /  HTTP/1.1\r\n${host}\r\n`)] },
    { name: 'leading space', steps: [w(` GET / HTTP/1.1\r\n${host}\r\n`)] },
    { name: 'NUL in the method', steps: [w(`G\x00T / HTTP/1.1\r\n${host}\r\n`)] },
    { name: 'NUL in the path', steps: [w(`GET /v1/jobs\x00 HTTP/1.1\r\n${host}${a}\r\n`)] },
    { name: 'encoded NUL in the path', steps: [w(`GET /v1/jobs/%00 HTTP/1.1\r\n${host}${a}\r\n`)] },
    { name: 'bare LF line ends', steps: [w(`GET /v1/jobs HTTP/1.1\n${host.replace('\r\n', '\n')}${a.replace('\r\n', '\n')}\n`)] },
    { name: 'bare CR', steps: [w(`GET /v1/jobs HTTP/1.1\r${host}\r\n`)] },
    { name: 'a 100 KB request line', steps: [w(`GET /${'a'.repeat(100_000)} HTTP/1.1\r\n${host}\r\n`)] },
    { name: 'a 1000-char method', steps: [w(`${'G'.repeat(1000)} / HTTP/1.1\r\n${host}\r\n`)] },
    { name: 'absolute-form target', steps: [w(`GET http://evil.example/v1/jobs HTTP/1.1\r\n${host}${a}\r\n`)] },
    { name: 'authority-form CONNECT', steps: [w(`CONNECT 127.0.0.1:22 HTTP/1.1\r\n${host}\r\n`)] },
    { name: 'asterisk-form OPTIONS', steps: [w(`OPTIONS * HTTP/1.1\r\n${host}\r\n`)] },
    { name: 'TRACE with a body', steps: [w(`TRACE / HTTP/1.1\r\n${host}Content-Length: 5\r\n\r\nhello`)] },
    { name: 'HTTP/2 connection preface', steps: [w('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00')] },
    { name: 'TLS ClientHello', steps: [w('\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03' + '\x00'.repeat(64))] },
    { name: 'binary garbage', steps: [w(Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37 + 11) % 256)).toString('latin1'))] },
    // Headers.
    { name: 'obs-fold continuation line', steps: [w(`GET /v1/jobs HTTP/1.1\r\n${host}${a}X-Folded: a\r\n  b\r\n\r\n`)] },
    { name: 'folded Authorization', steps: [w(`GET /v1/jobs HTTP/1.1\r\n${host}Authorization: Bearer\r\n ${auth.slice(7)}\r\n\r\n`)] },
    { name: 'header without a colon', steps: [w(`GET / HTTP/1.1\r\n${host}NoColon\r\n\r\n`)] },
    { name: 'space before the colon', steps: [w(`GET /v1/jobs HTTP/1.1\r\nHost : 127.0.0.1:${port}\r\n${a}\r\n`)] },
    { name: 'space in a header name', steps: [w(`GET / HTTP/1.1\r\n${host}Bad Header: x\r\n\r\n`)] },
    { name: 'NUL in a header value', steps: [w(`GET /v1/jobs HTTP/1.1\r\n${host}${a}X-A: a\x00b\r\n\r\n`)] },
    { name: 'NUL in a header name', steps: [w(`GET / HTTP/1.1\r\n${host}X-\x00A: b\r\n\r\n`)] },
    { name: 'CR inside a header value', steps: [w(`GET / HTTP/1.1\r\n${host}X-A: a\rX-B: b\r\n\r\n`)] },
    { name: '2500 headers', steps: [w(`GET /v1/jobs HTTP/1.1\r\n${host}${a}${Array.from({ length: 2500 }, (_, i) => `X-${i}: 1\r\n`).join('')}\r\n`)] },
    { name: 'a 64 KB header', steps: [w(`GET / HTTP/1.1\r\n${host}X-Big: ${'b'.repeat(65_536)}\r\n\r\n`)] },
    { name: 'a 64 KB Authorization', steps: [w(`GET /v1/jobs HTTP/1.1\r\n${host}Authorization: Bearer ${'A'.repeat(65_536)}\r\n\r\n`)] },
    { name: 'two Hosts', steps: [w(`GET /v1/jobs HTTP/1.1\r\n${host}Host: evil.example\r\n${a}\r\n`)] },
    // Content-Length and Transfer-Encoding.
    { name: 'duplicate Content-Length, same value', steps: [w(post(`Content-Length: ${job.length}\r\nContent-Length: ${job.length}\r\n`, job))] },
    { name: 'duplicate Content-Length, different values', steps: [w(post(`Content-Length: ${job.length}\r\nContent-Length: 5\r\n`, job))] },
    { name: 'Content-Length list', steps: [w(post(`Content-Length: ${job.length}, ${job.length}\r\n`, job))] },
    { name: 'negative Content-Length', steps: [w(post('Content-Length: -1\r\n', job))] },
    { name: 'overflowing Content-Length', steps: [w(post('Content-Length: 18446744073709551617\r\n', job))] },
    { name: 'CL.TE smuggling shape', steps: [w(post(`Content-Length: ${5 + inner.length}\r\nTransfer-Encoding: chunked\r\n`, `0\r\n\r\n${inner}`))] },
    { name: 'TE.CL smuggling shape', steps: [w(post('Content-Length: 4\r\nTransfer-Encoding: chunked\r\n', `${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`))] },
    { name: 'TE.TE obfuscated (second TE)', steps: [w(post('Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n', `0\r\n\r\n${inner}`))] },
    { name: 'TE with a space before the colon', steps: [w(post(`Transfer-Encoding : chunked\r\nContent-Length: ${5 + inner.length}\r\n`, `0\r\n\r\n${inner}`))] },
    { name: 'TE with a tab', steps: [w(post('Transfer-Encoding:\tchunked\r\n', `0\r\n\r\n${inner}`))] },
    { name: 'TE xchunked with CL', steps: [w(post(`Transfer-Encoding: xchunked\r\nContent-Length: ${job.length}\r\n`, job))] },
    { name: 'TE chunked not last', steps: [w(post('Transfer-Encoding: chunked, identity\r\n', `${job.length.toString(16)}\r\n${job}\r\n0\r\n\r\n`))] },
    { name: 'TE on HTTP/1.0', steps: [w(`POST /v1/jobs HTTP/1.0\r\n${host}Authorization: ${submitOnly}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${inner}`)] },
    { name: 'chunk size not hex', steps: [w(post('Transfer-Encoding: chunked\r\n', 'zz\r\nab\r\n0\r\n\r\n'))] },
    { name: 'negative chunk size', steps: [w(post('Transfer-Encoding: chunked\r\n', '-5\r\nab\r\n0\r\n\r\n'))] },
    { name: 'overflowing chunk size', steps: [w(post('Transfer-Encoding: chunked\r\n', 'ffffffffffffffffffffffff\r\nab\r\n0\r\n\r\n'))] },
    { name: 'chunk longer than its size', steps: [w(post('Transfer-Encoding: chunked\r\n', `2\r\n${job}\r\n0\r\n\r\n`))] },
    { name: 'chunk shorter than its size, then silence', steps: [w(post('Transfer-Encoding: chunked\r\n', `ff\r\n${job}`))] },
    { name: 'no last chunk, then silence', steps: [w(post('Transfer-Encoding: chunked\r\n', `${job.length.toString(16)}\r\n${job}\r\n`))] },
    { name: 'chunk extension of 100 KB', steps: [w(post('Transfer-Encoding: chunked\r\n', `${job.length.toString(16)};${'e'.repeat(100_000)}\r\n${job}\r\n0\r\n\r\n`))] },
    { name: 'trailer smuggling a header', steps: [w(post('Transfer-Encoding: chunked\r\n', `${job.length.toString(16)}\r\n${job}\r\n0\r\nContent-Length: 5\r\nAuthorization: Bearer x\r\n\r\n`))], mayWrite: true },
    { name: 'body shorter than Content-Length, then silence', steps: [w(post(`Content-Length: ${job.length + 50}\r\n`, job))] },
    { name: 'body longer than Content-Length', steps: [w(post(`Content-Length: 10\r\n`, `${job}\r\n\r\n`))] },
    { name: 'GET with a body', steps: [w(`GET /v1/jobs HTTP/1.1\r\n${host}${a}Content-Length: ${job.length}\r\n\r\n${job}`)] },
    { name: 'Expect 100-continue then the body', steps: [w(post(`Expect: 100-continue\r\nContent-Length: ${job.length}\r\n`, '')), { wait: 100 }, w(job)], mayWrite: true },
    { name: 'Expect something else', steps: [w(post(`Expect: 200-ok\r\nContent-Length: ${job.length}\r\n`, job))] },
    // Timing.
    { name: 'slow partial headers, closed early', steps: [w('POST /v1/jobs HTTP/1.1\r\n'), { wait: 200 }, w(host), { wait: 200 }, { destroy: true }] },
    { name: 'slow partial body, closed early', steps: [w(post(`Content-Length: ${job.length}\r\n`, job.slice(0, 5))), { wait: 200 }, { destroy: true }] },
    { name: 'partial headers, then silence', steps: [w(`GET /v1/jobs HTTP/1.1\r\n${host}`)] },
    { name: 'slowloris: a header byte every 150 ms', steps: [w(`GET /v1/jobs HTTP/1.1\r\n${host}X-Slow: `), ...Array.from({ length: 12 }, () => [{ wait: 150 }, w('a')] as Step[]).flat()] },
    { name: 'half-close after a request', steps: [w(get()), { end: true }] },
    { name: 'half-close mid-request', steps: [w('GET /v1/jobs HTTP/1.1\r\nHo'), { end: true }] },
    { name: 'connect and close', steps: [{ destroy: true }] },
    // Pipelining.
    { name: 'three pipelined GETs', steps: [w(get() + get('/healthz') + get('/v1/stats'))] },
    { name: 'pipelined submits', steps: [w(inner + inner)], mayWrite: true },
    { name: 'pipelined: good, garbage, good', steps: [w(`${get()}GARBAGE\r\n\r\n${get()}`)] },
    { name: 'pipelined after Connection: close', steps: [w(get('/v1/jobs?limit=1', 'Connection: close\r\n') + inner)] },
    // An answer that closes the connection: what was pipelined behind it must not run unanswered.
    { name: 'malformed JSON, then a pipelined submit', steps: [w(post('Content-Length: 2\r\n', `{x${inner}`))] },
    { name: 'empty JSON body, then a pipelined submit', steps: [w(post('Content-Length: 0\r\n', inner))] },
    { name: '100 pipelined GETs', steps: [w(get('/healthz').repeat(100))] },
    // Upgrades.
    {
      name: 'WebSocket upgrade without a key',
      steps: [w(`GET /v1/stream HTTP/1.1\r\n${host}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`)],
    },
    {
      name: 'WebSocket upgrade with a key, then garbage frames',
      steps: [w(`GET /v1/stream HTTP/1.1\r\n${host}${a}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`), { wait: 50 }, w('\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff')],
    },
    { name: 'WebSocket upgrade on a REST route', steps: [w(`POST /v1/jobs HTTP/1.1\r\n${host}${a}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: ${job.length}\r\n\r\n${job}`)] },
    // A refused upgrade leaves Node's HTTP server: the connection must still be answered or closed.
    {
      name: 'WebSocket upgrade with a malformed path, then another request',
      steps: [w(`GET /v1/limits/%zz HTTP/1.1\r\n${host}${a}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`), { wait: 200 }, w(get('/healthz'))],
    },
    {
      name: 'h2c upgrade with an over-long path parameter, then another request',
      steps: [w(`GET /v1/jobs/${'A'.repeat(300)} HTTP/1.1\r\n${host}${a}Connection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`), { wait: 200 }, w(get('/healthz'))],
    },
    { name: 'h2c upgrade', steps: [w(`GET /v1/jobs HTTP/1.1\r\n${host}${a}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`)] },
  ];
  return cases;
}

// ---------------------------------------------------------------- a raw HTTP/1.1 client

export interface WireResponse {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

export interface WireResult {
  responses: WireResponse[];
  /** How the exchange ended: the server closed or reset the connection, left it open (kept), or did nothing in time (hang). */
  end: 'kept' | 'closed' | 'reset' | 'hang';
  ms: number;
}

/** Complete responses at the front of `buf`; `head`: the first answers a HEAD. */
function parseResponses(buf: Buffer, head: boolean, atEof: boolean): { responses: WireResponse[]; used: number; upgraded: boolean } {
  const responses: WireResponse[] = [];
  let at = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', at, 'latin1');
    if (end < 0) break;
    const lines = buf.subarray(at, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(lines[0] ?? '')?.[1] ?? NaN);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':');
      if (c > 0) headers.set(line.slice(0, c).trim().toLowerCase(), line.slice(c + 1).trim());
    }
    let bodyStart = end + 4;
    if (status === 101) {
      responses.push({ status, headers, body: Buffer.alloc(0) });
      return { responses, used: buf.length, upgraded: true };
    }
    if (status >= 100 && status < 200) {
      at = bodyStart;
      continue;
    }
    const noBody = (head && responses.length === 0) || status === 204 || status === 304;
    let body: Buffer;
    if (noBody) {
      body = Buffer.alloc(0);
    } else if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
      const parts: Buffer[] = [];
      let p = bodyStart;
      let done = false;
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', p, 'latin1');
        if (lineEnd < 0) break;
        const size = parseInt(buf.subarray(p, lineEnd).toString('latin1'), 16);
        if (!Number.isFinite(size)) break;
        if (size === 0) {
          const trailerEnd = buf.indexOf('\r\n\r\n', lineEnd, 'latin1');
          if (buf.subarray(lineEnd, lineEnd + 4).toString('latin1') === '\r\n\r\n') {
            p = lineEnd + 4;
            done = true;
          } else if (trailerEnd >= 0) {
            p = trailerEnd + 4;
            done = true;
          }
          break;
        }
        if (buf.length < lineEnd + 2 + size + 2) break;
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
      }
      if (!done) break;
      body = Buffer.concat(parts);
      bodyStart = p;
      responses.push({ status, headers, body });
      at = bodyStart;
      continue;
    } else if (headers.has('content-length')) {
      const n = Number(headers.get('content-length'));
      if (buf.length < bodyStart + n) break;
      body = buf.subarray(bodyStart, bodyStart + n);
      bodyStart += n;
    } else {
      // Read to the end of the connection.
      if (!atEof) break;
      body = buf.subarray(bodyStart);
      bodyStart = buf.length;
    }
    responses.push({ status, headers, body });
    at = bodyStart;
  }
  return { responses, used: at, upgraded: false };
}

/**
 * Sends raw bytes and reads raw responses. Clean requests reuse one
 * kept-alive connection (as a client library would); anything else gets a
 * connection of its own, read until the server closes it (or, once a
 * response came, until it has been quiet for `quietMs`). Bytes that arrive
 * on the kept connection between two requests (a response nobody asked
 * for) are parsed into `strays` and the connection is dropped.
 */
export class WireClient {
  private socket: Socket | null = null;
  private lastUsed = 0;
  private idleBytes: Buffer[] = [];
  private endedWhileIdle = false;
  private idleOff: (() => void) | null = null;
  /** Responses that arrived when no request was waiting on the kept connection. */
  readonly strays: WireResponse[] = [];

  constructor(private readonly port: number, private readonly hangMs: number, private readonly quietMs = 250) {}

  /**
   * One request: `clean` ones may share the kept-alive connection. `from`: the
   * local address to connect from (any of 127.0.0.0/8), as another client.
   */
  async send(wire: Buffer, opts: { clean: boolean; head?: boolean; from?: string }): Promise<WireResult> {
    const from = opts.from ?? '127.0.0.1';
    const socket = opts.clean ? await this.kept(from) : await this.open(from);
    return this.exchange(socket, [{ write: wire.toString('latin1') }], { head: opts.head ?? false, one: opts.clean });
  }

  /** A hand-written case on a connection of its own. */
  async run(steps: readonly Step[], from = '127.0.0.1'): Promise<WireResult> {
    const socket = await this.open(from);
    return this.exchange(socket, steps, { head: false, one: false });
  }

  close(): void {
    this.idleOff?.();
    this.idleOff = null;
    this.takeStrays();
    this.socket?.destroy();
    this.socket = null;
  }

  private takeStrays(): void {
    if (this.idleBytes.length === 0) return;
    const buf = Buffer.concat(this.idleBytes);
    this.idleBytes = [];
    const parsed = parseResponses(buf, false, true).responses;
    // Bytes that are no response at all still count: as a response with no status.
    this.strays.push(...(parsed.length ? parsed : [{ status: 0, headers: new Map<string, string>(), body: buf }]));
  }

  private async kept(from: string): Promise<Socket> {
    this.idleOff?.();
    this.idleOff = null;
    if (this.idleBytes.length) this.close();
    // Only a connection both sides still hold open, used well inside the server's keep-alive timeout (so that
    // the server never closes it while a request is on its way).
    const open = (x: Socket | null): x is Socket => !!x && !x.destroyed && x.writable && !x.readableEnded && !this.endedWhileIdle;
    if (open(this.socket) && this.socket.localAddress === from && Date.now() - this.lastUsed < 1000) return this.socket;
    this.close();
    this.socket = await this.open(from);
    return this.socket;
  }

  private open(from: string): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: this.port, localAddress: from, allowHalfOpen: true });
      s.setNoDelay(true);
      // Errors are read per exchange; one between exchanges must not be unhandled.
      s.on('error', () => undefined);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
  }

  private exchange(socket: Socket, steps: readonly Step[], opts: { head: boolean; one: boolean }): Promise<WireResult> {
    const started = Date.now();
    return new Promise<WireResult>((resolve) => {
      let buf: Buffer = Buffer.alloc(0);
      let responses: WireResponse[] = [];
      let settled = false;
      let hang: NodeJS.Timeout | null = null;
      let quiet: NodeJS.Timeout | null = null;
      const finish = (end: WireResult['end']) => {
        if (settled) return;
        settled = true;
        if (hang) clearTimeout(hang);
        if (quiet) clearTimeout(quiet);
        socket.off('data', onData);
        socket.off('close', onClose);
        socket.off('error', onError);
        socket.off('end', onEnd);
        const keep = end === 'kept' && opts.one && !socket.destroyed;
        if (keep) {
          if (buf.length) this.idleBytes.push(buf);
          this.endedWhileIdle = false;
          const onIdleData = (d: Buffer) => this.idleBytes.push(d);
          const onIdleEnd = () => (this.endedWhileIdle = true);
          socket.on('data', onIdleData);
          socket.once('end', onIdleEnd);
          this.idleOff = () => {
            socket.off('data', onIdleData);
            socket.off('end', onIdleEnd);
          };
        } else {
          socket.destroy();
          if (socket === this.socket) this.socket = null;
        }
        this.lastUsed = Date.now();
        resolve({ responses, end, ms: Date.now() - started });
      };
      const parse = (atEof: boolean) => {
        const r = parseResponses(buf, opts.head, atEof);
        if (r.responses.length) {
          responses = [...responses, ...r.responses];
          buf = buf.subarray(r.used);
        }
        if (r.upgraded) return finish('closed');
        if (responses.length === 0) return;
        if (opts.one) {
          const closing = /close/i.test(responses[responses.length - 1]!.headers.get('connection') ?? '');
          return finish(closing ? 'closed' : 'kept');
        }
        armQuiet();
      };
      // Quiet counts only once every step is written: a case may answer a first request and then send a second.
      let written = false;
      const armQuiet = () => {
        if (!written || settled || responses.length === 0) return;
        if (quiet) clearTimeout(quiet);
        quiet = setTimeout(() => finish('kept'), this.quietMs);
      };
      const onData = (chunk: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        parse(false);
      };
      const onEnd = () => {
        parse(true);
        finish('closed');
      };
      const onClose = () => {
        parse(true);
        finish('closed');
      };
      const onError = (err: NodeJS.ErrnoException) => {
        parse(true);
        finish(err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'reset' : 'closed');
      };
      socket.on('data', onData);
      socket.once('end', onEnd);
      socket.once('close', onClose);
      socket.on('error', onError);
      const armHang = () => {
        if (hang) clearTimeout(hang);
        hang = setTimeout(() => finish('hang'), this.hangMs);
      };
      void (async () => {
        for (const step of steps) {
          if (settled) return;
          if ('write' in step) {
            socket.write(bytes(step.write));
            armHang();
          } else if ('wait' in step) {
            await new Promise((r) => setTimeout(r, step.wait));
          } else if ('end' in step) {
            socket.end();
          } else {
            socket.destroy();
            return finish('closed');
          }
        }
        if (settled) return;
        written = true;
        armHang();
        armQuiet();
      })();
    });
  }
}
