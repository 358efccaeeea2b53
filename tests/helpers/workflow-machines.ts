/**
 * Workflow machines the API tests register: small, without jobs, each with a
 * shape a test needs (a tagged state, a final state at once).
 */
import { createMachine } from 'xstate';

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
