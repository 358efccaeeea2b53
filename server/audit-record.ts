/**
 * The audit record of an operator action the API has done (`GET /v1/audit`),
 * written after the action committed. A failed record is logged, not answered
 * as an error: the client would retry an action that happened. (Key changes
 * write theirs in the key's own transaction: server/routes/keys.ts.)
 */
import type { Principal } from '../engine/auth.js';
import { errorFields } from '../engine/logger.js';
import type { AppDeps } from './deps.js';

/** The actions recorded after they committed (engine/ports.ts `AuditEntry.action`). */
export type DoneAction = 'job.cancel' | 'job.redrive' | 'job.delete' | 'workflow.cancel' | 'workflow.delete';

/** Records `action`, done to `target` (a job or workflow instance id) with `principal`'s key. */
export async function recordDone(deps: Pick<AppDeps, 'audit' | 'clock' | 'logger'>, principal: Principal, action: DoneAction, target: string): Promise<void> {
  if (!deps.audit) return;
  try {
    await deps.audit.recordAudit({ at: deps.clock.now(), keyId: principal.keyId, tenant: principal.tenant, action, target });
  } catch (err) {
    deps.logger?.error('api: the audit record of an operator action could not be written', { ...errorFields(err), action, target, keyId: principal.keyId });
  }
}
