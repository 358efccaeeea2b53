/**
 * Workflow machines the tests register: small, each with a shape a test needs
 * (a tagged state, a final state at once, one child job).
 */
import { createMachine, setup } from 'xstate';
import { HandlerRegistry } from '../../engine/handlers.js';
import { job, type WorkflowJobOptions } from '../../machines/workflow.js';

/** Idle until ASK (then in a state tagged approval) or FINISH; APPROVE ends it in a final state tagged paid. No jobs. */
export const gate = createMachine({
  id: 'gate', initial: 'idle',
  states: {
    idle: { on: { ASK: 'asking', FINISH: 'finished' } },
    asking: { tags: ['approval'], on: { APPROVE: 'approved', FINISH: 'finished' } },
    approved: { type: 'final', tags: ['paid'] },
    finished: { type: 'final' },
  },
});

/** Ends as it starts: its first state is final. */
export const instant = createMachine({ id: 'instant', initial: 'over', states: { over: { type: 'final' } }, output: () => ({ ok: true }) });

/**
 * Definitions holding one workflow, `name`: it invokes one child job of `jobType` (invocation
 * `step`) and ends in the final state `ok` on the child's end, `failed` on its error.
 */
export function oneStepWorkflow(name: string, jobType: string, options: WorkflowJobOptions = {}): HandlerRegistry {
  const machine = setup({ actors: { step: job(jobType, options) } }).createMachine({
    id: name, initial: 'working',
    states: {
      working: { invoke: { id: 'step', src: 'step', onDone: 'ok', onError: 'failed' } },
      ok: { type: 'final' },
      failed: { type: 'final' },
    },
  });
  const definitions = new HandlerRegistry();
  definitions.workflow(name, machine, { version: 1 });
  return definitions;
}
