/**
 * `GET /v1/audit`: what operators did in the caller's tenant (job cancel,
 * redrive, delete, workflow cancel and delete, key changes) and with which key, newest
 * first. Needs the `admin` scope (the auth hook enforces it). Served only
 * when the app is given the audit store (`deps.audit`).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { AuditEntry } from '../../engine/ports.js';
import type { RouteOptions } from '../deps.js';
import { iso } from '../job-views.js';
import { AuditLog, AuditQuery, DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE, type AuditEntryView } from '../key-schemas.js';
import { described, errorResponses, ref } from '../schemas.js';

const listSchema = {
  operationId: 'listAudit',
  summary: 'The audit log of the caller\'s tenant',
  description:
    `The operator actions of the caller's tenant, newest first (\`limit\`, default ${DEFAULT_AUDIT_PAGE}, at most ${MAX_AUDIT_PAGE}): ` +
    'job.cancel, job.redrive, job.delete, workflow.cancel, workflow.delete, key.create and key.revoke, each with the key that did it and what it was done to.',
  tags: ['audit'],
  querystring: AuditQuery,
  response: { 200: described(ref(AuditLog), 'The entries'), ...errorResponses(400) },
};

export const toAuditView = (e: AuditEntry): AuditEntryView => ({ at: iso(e.at), keyId: e.keyId, tenant: e.tenant, action: e.action, target: e.target });

export const auditRoutes: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const audit = deps.audit;
  if (!audit) throw new Error('auditRoutes: the app was given no audit store (deps.audit)');
  app.get<{ Querystring: AuditQuery }>('/v1/audit', { schema: listSchema }, async (request) => ({
    entries: (await audit.listAudit(request.principal.tenant, request.query.limit ?? DEFAULT_AUDIT_PAGE)).map(toAuditView),
  }));
};
