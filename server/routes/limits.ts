/**
 * `/v1/limits`: set, read and delete the concurrency and rate limits of
 * concurrency keys (engine/limits.ts, docs/limits.md). A job submitted with
 * `concurrencyKey` counts against its key's limit: a claim over it waits,
 * published, burning no attempt. Each view carries the key's attempts running
 * now. Served only when the app is given the limit store (`deps.limitStore`).
 *
 * A limit belongs to the caller's tenant (`request.principal`, set by
 * server/auth.ts) and holds only that tenant's jobs. The key in the path is
 * the key as the tenant names it; the store keeps it tenant-qualified
 * (engine/limits.ts `storedLimitKey`), and the view shows it bare again.
 * Another tenant's limit of the same key is not there (404, never 403).
 */
import type { FastifyPluginAsync } from 'fastify';
import { AtsError } from '../../engine/errors.js';
import { storedLimitKey, type LimitRecord } from '../../engine/limits.js';
import type { LimitStore } from '../../engine/ports.js';
import type { RouteOptions } from '../deps.js';
import { toLimitSpec, toLimitView } from '../limit-views.js';
import { relativeLocation } from '../location.js';
import {
  BODY_STATUSES, described, withLocation, errorResponses, LimitList, LimitParams, LimitView, MAX_LIMITS_LISTED, PutLimitBody, ref,
} from '../schemas.js';

const putSchema = {
  operationId: 'putLimit',
  summary: 'Set the limit of a concurrency key',
  description:
    'Creates (201, with its Location) or replaces (200) the limit of the key: `concurrency` caps the attempts of its jobs running at once ' +
    'across all workers, `rate` caps their starts per interval (spaced evenly), and at least one of them must not be null. ' +
    'A field left out or null is no cap: the PUT replaces the whole limit. Jobs of the key over the limit wait (published), ' +
    'burning no attempt; jobs whose key has no limit are not limited. The limit belongs to the caller\'s tenant and holds only its jobs: ' +
    'another tenant\'s jobs of the same key are not counted or held. A tenant has at most ' + `${MAX_LIMITS_LISTED}` + ' limits: a new key ' +
    'beyond that is a 409 ATS_ERR_TOO_MANY_LIMITS, writing nothing (delete one first).',
  tags: ['limits'],
  params: LimitParams,
  body: ref(PutLimitBody),
  response: {
    201: withLocation(described(ref(LimitView), 'Created'), 'the limit'),
    200: described(ref(LimitView), 'Replaced'),
    ...errorResponses(400, 409, ...BODY_STATUSES),
  },
};

const listSchema = {
  operationId: 'listLimits',
  summary: 'Every limit, by key',
  description: `The limits of the caller's tenant (at most ${MAX_LIMITS_LISTED}), ordered by key, each with the attempts of its key running now.`,
  tags: ['limits'],
  response: { 200: described(ref(LimitList), 'The limits'), ...errorResponses() },
};

const getSchema = {
  operationId: 'getLimit',
  summary: 'The limit of a concurrency key',
  description: 'The limit of the key and the attempts of its key running now (those with a lease that holds); 404 ATS_ERR_LIMIT_NOT_FOUND when the caller\'s tenant has none on the key.',
  tags: ['limits'],
  params: LimitParams,
  response: { 200: described(ref(LimitView), 'The limit'), ...errorResponses(400, 404) },
};

const deleteSchema = {
  operationId: 'deleteLimit',
  summary: 'Lift the limit of a concurrency key',
  description: 'Deletes the caller\'s tenant\'s limit: its jobs of the key are no longer limited (404 ATS_ERR_LIMIT_NOT_FOUND when it had none). The jobs keep their key.',
  tags: ['limits'],
  params: LimitParams,
  response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses(400, 404, ...BODY_STATUSES) },
};

// The key matches NAME_PATTERN and is at most 200 characters: quoting it whole in a message needs no escaping.
const notFound = (key: string) => new AtsError('ATS_ERR_LIMIT_NOT_FOUND', `No limit is set on key '${key}'`);

export const limitRoutes: FastifyPluginAsync<RouteOptions> = async (app, { deps }) => {
  const store: LimitStore | undefined = deps.limitStore;
  if (!store) throw new Error('limitRoutes: the app was given no limit store (deps.limitStore)');
  const withRunning = async (limit: LimitRecord) =>
    toLimitView(limit, (await store.runningByKey([limit.key], deps.clock.now())).get(limit.key) ?? 0);

  app.put<{ Params: LimitParams; Body: PutLimitBody }>('/v1/limits/:key', { schema: putSchema }, async (request, reply) => {
    const { key } = request.params;
    const spec = toLimitSpec(request.body);
    // At most as many a tenant as the list shows: every limit of a tenant can be listed.
    const { limit, created } = await store.putLimit(storedLimitKey(request.principal.tenant, key), spec, deps.clock.now(), MAX_LIMITS_LISTED);
    if (created) reply.header('location', relativeLocation(request.url, ['v1', 'limits', key]));
    return reply.code(created ? 201 : 200).send(await withRunning(limit));
  });

  app.get('/v1/limits', { schema: listSchema }, async (request) => {
    const limits = await store.listLimits(MAX_LIMITS_LISTED, request.principal.tenant);
    const running = limits.length === 0 ? new Map<string, number>() : await store.runningByKey(limits.map((l) => l.key), deps.clock.now());
    return { limits: limits.map((l) => toLimitView(l, running.get(l.key) ?? 0)) };
  });

  app.get<{ Params: LimitParams }>('/v1/limits/:key', { schema: getSchema }, async (request) => {
    const limit = await store.getLimit(storedLimitKey(request.principal.tenant, request.params.key));
    if (!limit) throw notFound(request.params.key);
    return withRunning(limit);
  });

  app.delete<{ Params: LimitParams }>('/v1/limits/:key', { schema: deleteSchema }, async (request, reply) => {
    if (!(await store.deleteLimit(storedLimitKey(request.principal.tenant, request.params.key)))) throw notFound(request.params.key);
    return reply.code(204).send();
  });
};
