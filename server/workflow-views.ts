/**
 * What the API shows of a workflow instance and its history: stored records
 * in, JSON out (times as ISO strings, as the job views). `accepts` and the
 * children's states come from WorkflowService, never from a list kept here,
 * so the API cannot offer a signal the engine would refuse.
 */
import { LAST_INSTANT_MS } from '../machines/job-bounds.js';
import type { WorkflowEventRecord, WorkflowRecord } from '../engine/ports.js';
import type { ChildView, WorkflowService } from '../engine/workflows.js';
import { iso } from './job-views.js';
import type { WorkflowEventView, WorkflowView } from './schemas.js';

/** The instance as the API shows it, with its children's jobs read now. */
export async function toWorkflowView(service: WorkflowService, wf: WorkflowRecord): Promise<WorkflowView> {
  return viewOf(service, wf, await service.children(wf));
}

/** The instances of a page as the API shows them, their children's jobs read together. */
export async function toWorkflowViews(service: WorkflowService, wfs: readonly WorkflowRecord[]): Promise<WorkflowView[]> {
  const children = await service.childrenOf(wfs);
  return wfs.map((wf, i) => viewOf(service, wf, children[i]!));
}

function viewOf(service: WorkflowService, wf: WorkflowRecord, children: readonly ChildView[]): WorkflowView {
  const s = wf.state;
  return {
    id: wf.id,
    name: wf.name,
    definitionVersion: wf.definitionVersion,
    version: wf.version,
    status: s.status,
    value: s.value,
    context: s.context ?? null,
    input: wf.input ?? null,
    output: s.output ?? null,
    error: s.error ?? null,
    children: children as WorkflowView['children'],
    // A timer stored before timers were held to 1970..9999 shows at the nearer end: a date-time here has four digits.
    timers: s.timers.map((t) => ({ id: t.id, dueAt: iso(Math.min(Math.max(t.dueAt, 0), LAST_INSTANT_MS)) })),
    accepts: service.accepts(wf),
    idempotencyKey: wf.idempotencyKey,
    createdAt: iso(wf.createdAt),
    updatedAt: iso(wf.updatedAt),
  };
}

export function toWorkflowEventView(e: WorkflowEventRecord): WorkflowEventView {
  return { seq: e.seq, type: e.type, at: iso(e.at), data: e.data, status: e.status, value: e.value ?? null };
}
