/**
 * What the API shows of a concurrency and rate limit (engine/limits.ts): the
 * stored record and the key's running attempts in, JSON out (times as ISO
 * strings, like the job views). The rate's state (`tat`) stays inside.
 */
import { splitLimitKey, type LimitRecord, type LimitSpec } from '../engine/limits.js';
import { AtsError } from '../engine/errors.js';
import { iso } from './job-views.js';
import type { LimitView, PutLimitBody } from './schemas.js';

/** The view of a limit: its key as its tenant names it (the stored key without the tenant). */
export function toLimitView(limit: LimitRecord, running: number): LimitView {
  return {
    key: splitLimitKey(limit.key).key,
    concurrency: limit.concurrency,
    rate: limit.rate === null ? null : { max: limit.rate.max, intervalMs: limit.rate.intervalMs },
    running,
    createdAt: iso(limit.createdAt),
    updatedAt: iso(limit.updatedAt),
  };
}

/**
 * The limit a validated `PUT /v1/limits/:key` body sets: what it leaves out
 * is no cap (a PUT replaces the whole limit). Throws 400 ATS_ERR_VALIDATION
 * when it caps nothing: a limit without either would only hide that the key
 * is unlimited (delete the limit for that).
 */
export function toLimitSpec(body: PutLimitBody): LimitSpec {
  const spec: LimitSpec = {
    concurrency: body.concurrency ?? null,
    rate: body.rate ? { max: body.rate.max, intervalMs: body.rate.intervalMs } : null,
  };
  if (spec.concurrency === null && spec.rate === null) {
    throw new AtsError(
      'ATS_ERR_VALIDATION',
      'body must set concurrency or rate (or both) to a value that is not null; to lift the limit of a key, DELETE it',
    );
  }
  return spec;
}
