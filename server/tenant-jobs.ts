/**
 * A job as a caller may see it: only its own tenant's. Another tenant's job is
 * answered exactly as a job that does not exist (404 ATS_ERR_JOB_NOT_FOUND,
 * the same message), never 403: a caller must not learn that an id is taken.
 * Cancel, redrive and delete check through here before they write anything,
 * so a 404 changes nothing (a job's tenant never changes: the check cannot go
 * stale before the write).
 */
import type { Principal } from '../engine/auth.js';
import { AtsError } from '../engine/errors.js';
import type { JobRecord } from '../engine/ports.js';
import type { AppDeps } from './deps.js';

export const jobNotFound = (id: string): AtsError => new AtsError('ATS_ERR_JOB_NOT_FOUND', `No job has id ${id}`);

/** The job `id` if it is `principal`'s tenant's; else throws the 404 of a job that does not exist. */
export async function tenantJob(deps: Pick<AppDeps, 'store'>, id: string, principal: Principal): Promise<JobRecord> {
  const job = await deps.store.getJob(id);
  if (!job || job.tenant !== principal.tenant) throw jobNotFound(id);
  return job;
}

/** Tenants whose shared answers are kept at most; beyond, the cache starts over. */
const SHARED_TENANTS_MAX = 1000;

/**
 * `sharedFor` (answer-cache.ts) per tenant: one answer for every caller of a
 * tenant during `ms`, never one tenant's answer to another.
 */
export function sharedPerTenant<T>(make: (tenant: string) => (now?: number) => Promise<T>): (tenant: string) => Promise<T> {
  const byTenant = new Map<string, (now?: number) => Promise<T>>();
  return (tenant) => {
    let read = byTenant.get(tenant);
    if (!read) {
      if (byTenant.size >= SHARED_TENANTS_MAX) byTenant.clear();
      byTenant.set(tenant, (read = make(tenant)));
    }
    return read();
  };
}
