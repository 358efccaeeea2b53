/**
 * State tags of a stored workflow instance: whether the state it is in has a
 * tag (`tags: ['approval']` on a state node), for `GET /v1/workflows/:id/wait
 * ?until=tag:approval`. Pure, as machines/workflow.ts: the stored state value
 * and context are resolved through the instance's own definition, nothing
 * runs.
 */
import type { PersistedWorkflow, WorkflowDefinition } from './workflow.js';

/**
 * Whether instance state `state` is in a state node tagged `tag`. An instance
 * that ended `error` or `cancelled` is in no state any more (its stored value
 * is where it stopped): it has no tag. A `done` one is in its final state,
 * whose tags count.
 */
export function hasTag(def: WorkflowDefinition, state: Pick<PersistedWorkflow, 'value' | 'context' | 'status'>, tag: string): boolean {
  if (state.status === 'error' || state.status === 'cancelled') return false;
  const snapshot = def.machine.resolveState({ value: state.value, context: state.context as never });
  return snapshot.hasTag(tag);
}
