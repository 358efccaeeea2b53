/**
 * TypeBox schemas of the admin routes: API keys (`/v1/keys`) and the audit
 * log (`/v1/audit`), in the style of schemas.ts. The named ones are
 * components of the OpenAPI document; `app.ts` adds them only with the routes
 * that use them (`KEY_SCHEMAS` with deps.auth, `AUDIT_SCHEMAS` with deps.audit).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { KEY_NAME_PATTERN, SCOPES, type Scope } from '../engine/auth.js';
import { ref, ULID_PATTERN } from './schemas.js';

/** Most keys `GET /v1/keys` lists (the store's cap, adapters/sql/keys.ts). */
export const MAX_KEYS_LISTED = 1000;
/**
 * Most keys of a tenant `POST /v1/keys` lets it hold: at most that many not
 * revoked, and at most that many with the revoked ones (a new key deletes the
 * longest-revoked beyond), so that every key of a tenant is listed.
 */
export const MAX_KEYS_PER_TENANT = MAX_KEYS_LISTED;
/** Most entries one `GET /v1/audit` answers (the store's cap, adapters/sql/audit.ts). */
export const MAX_AUDIT_PAGE = 1000;
export const DEFAULT_AUDIT_PAGE = 100;

const IsoTime = (description: string) => Type.String({ format: 'date-time', description });
const Nullable = <T extends TSchema>(schema: T, description: string) => Type.Union([schema, Type.Null()], { description });
const KeyId = (description: string) => Type.String({ pattern: ULID_PATTERN, minLength: 26, maxLength: 26, description });
const ScopeSchema = Type.Unsafe<Scope>({
  type: 'string', enum: [...SCOPES],
  description: `A scope: ${SCOPES.join(', ')} (docs/security.md says which routes each opens; admin: keys and the audit log)`,
});
const SCOPE_LIST = `Its scopes, one or more of ${SCOPES.join(', ')}`;

export const CreateKeyBody = Type.Object(
  {
    name: Type.String({
      minLength: 1, maxLength: 100, pattern: KEY_NAME_PATTERN.source,
      description: 'A label for people (e.g. ci-bot): 1 to 100 of A-Z a-z 0-9 . _ : -, starting with a letter or digit',
    }),
    scopes: Type.Array(ScopeSchema, { minItems: 1, maxItems: 16, description: SCOPE_LIST }),
  },
  {
    $id: 'CreateApiKeyRequest', additionalProperties: false,
    description: 'A new key of the caller\'s tenant: its name and scopes',
  },
);
export type CreateKeyBody = Static<typeof CreateKeyBody>;

export const KeyParams = Type.Object({ id: KeyId('The key\'s id (the ULID inside the key, as `GET /v1/keys` lists it)') }, { additionalProperties: false });
export type KeyParams = Static<typeof KeyParams>;

export const KeyView = Type.Object({
  id: Type.String({ description: 'The key\'s id (a ULID; public: the part of the key after `ats_`)' }),
  tenant: Type.String({ description: 'The tenant the key acts for' }),
  name: Type.String({ description: 'The label it was created with' }),
  scopes: Type.Array(ScopeSchema, { description: 'What it may do' }),
  createdAt: IsoTime('When it was created'),
  revokedAt: Nullable(IsoTime('When it was revoked'), 'When it was revoked; null while it works'),
  createdBy: Nullable(Type.String({ description: 'A key id' }), 'The id of the key that created it; null when made with the CLI or in the open mode'),
}, { $id: 'ApiKey', description: 'An API key as listed: never its secret or its hash' });
export type KeyView = Static<typeof KeyView>;

export const CreatedKeyView = Type.Intersect([
  ref(KeyView),
  Type.Object({
    key: Type.String({ description: 'The key itself (`ats_<id>_<secret>`), to send as `Authorization: Bearer <key>`: shown in this answer only, never again' }),
  }),
], { $id: 'CreatedApiKey', description: 'A key just created, with its secret' });
export type CreatedKeyView = KeyView & { key: string };

export const KeyList = Type.Object({
  keys: Type.Array(ref(KeyView), { description: `The caller's tenant's keys, revoked ones too, newest first (at most ${MAX_KEYS_LISTED})` }),
}, { $id: 'ApiKeyList', description: 'The keys' });
export type KeyList = Static<typeof KeyList>;

export const AuditQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_AUDIT_PAGE, default: DEFAULT_AUDIT_PAGE, description: 'Most entries answered' })),
  },
  { additionalProperties: false },
);
export type AuditQuery = Static<typeof AuditQuery>;

export const AuditEntryView = Type.Object({
  at: IsoTime('When it was done'),
  keyId: Nullable(Type.String({ description: 'A key id' }), 'The key that did it; null in the open mode (no keys)'),
  tenant: Type.String({ description: 'The tenant it was done in' }),
  action: Type.String({ description: 'What was done: job.cancel, job.redrive, job.delete, workflow.cancel, workflow.delete, key.create, key.revoke' }),
  target: Type.String({ description: 'What it was done to: a job id, a workflow instance id or a key id' }),
}, { $id: 'AuditEntry', description: 'One operator action and the key that did it' });
export type AuditEntryView = Static<typeof AuditEntryView>;

export const AuditLog = Type.Object({
  entries: Type.Array(ref(AuditEntryView), { description: 'The caller\'s tenant\'s entries, newest first' }),
}, { $id: 'AuditLog', description: 'The audit log of a tenant' });
export type AuditLog = Static<typeof AuditLog>;

/** The named schemas of `/v1/keys`: `app.ts` adds them only when it serves those routes (deps.auth). */
export const KEY_SCHEMAS: readonly TSchema[] = Object.freeze([CreateKeyBody, KeyView, CreatedKeyView, KeyList]);
/** The named schemas of `GET /v1/audit`: `app.ts` adds them only when it serves that route (deps.audit). */
export const AUDIT_SCHEMAS: readonly TSchema[] = Object.freeze([AuditEntryView, AuditLog]);
