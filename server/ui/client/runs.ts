/**
 * Runs and attempts, read from a job's events. A REDRIVE starts a new run;
 * the machine keeps counting attempts across runs (`attempt` is the fence),
 * so a job redriven after two failed attempts shows `attempt: 3` on the first
 * attempt of its second run. This turns those numbers back into "run 2,
 * attempt 1 of 2". Pure (no DOM): tested under node.
 */

/** The part of an event this needs (`EventView` fits). */
export interface RunEvent {
  type: string;
  data: unknown;
}

export interface RunAttempt {
  /** 1 for the first run, +1 per REDRIVE. */
  run: number;
  /** The attempt within the run (1 = first), or null for an event without an attempt. */
  attempt: number | null;
}

const attemptOf = (e: RunEvent): number | null => {
  const a = (e.data as { attempt?: unknown } | null)?.attempt;
  return typeof a === 'number' && Number.isInteger(a) ? a : null;
};

/**
 * For each event, its run and its attempt within the run. The machine sets
 * the run's base to the attempt the job held at the REDRIVE, that is the
 * highest attempt STARTED before it (only STARTED moves the attempt).
 */
export function runsOf(events: readonly RunEvent[]): RunAttempt[] {
  let run = 1;
  let base = 0;
  let started = 0;
  return events.map((e) => {
    if (e.type === 'REDRIVE') {
      run++;
      base = started;
      return { run, attempt: null };
    }
    const a = attemptOf(e);
    if (e.type === 'STARTED' && a !== null) started = Math.max(started, a);
    return { run, attempt: a === null ? null : a - base };
  });
}

/** Where the job is now: its run, and the last attempt started in that run (0 before the first). */
export function currentRun(events: readonly RunEvent[], jobAttempt: number): { run: number; attempt: number } {
  let run = 1;
  let base = 0;
  let started = 0;
  for (const e of events) {
    if (e.type === 'REDRIVE') {
      run++;
      base = started;
    }
    const a = attemptOf(e);
    if (e.type === 'STARTED' && a !== null) started = Math.max(started, a);
  }
  return { run, attempt: Math.max(0, jobAttempt - base) };
}
