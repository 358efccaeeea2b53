/**
 * Runs and attempts, read from a job's events. A REDRIVE starts a new run;
 * the machine keeps counting attempts across runs (`attempt` is the fence),
 * so a job redriven after two failed attempts shows `attempt: 3` on the first
 * attempt of its second run. This turns those numbers back into "run 2,
 * attempt 1 of 2", for the console and the `ats` command line. Pure.
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
 * Reads a job's events one at a time, in order: the run each is in, and the
 * run's base. The machine sets the base to the attempt the job held at the
 * REDRIVE, that is the highest attempt STARTED before it (only STARTED moves
 * the attempt); attempts of the run are `attempt - base`.
 */
export class RunCounter {
  /** 1 for the first run, +1 per REDRIVE. */
  run = 1;
  /** The attempt the job held at the last REDRIVE (0 before one). */
  base = 0;
  private started = 0;

  /** A counter that has read `events`. */
  static of(events: readonly RunEvent[]): RunCounter {
    const runs = new RunCounter();
    for (const e of events) runs.see(e);
    return runs;
  }

  /** Takes the next event; returns its attempt, if it carries one. */
  see(e: RunEvent): number | null {
    if (e.type === 'REDRIVE') {
      this.run++;
      this.base = this.started;
    }
    const a = attemptOf(e);
    if (e.type === 'STARTED' && a !== null) this.started = Math.max(this.started, a);
    return a;
  }
}

/** For each event, its run and its attempt within the run. */
export function runsOf(events: readonly RunEvent[]): RunAttempt[] {
  const runs = new RunCounter();
  return events.map((e) => {
    const a = runs.see(e);
    return { run: runs.run, attempt: e.type === 'REDRIVE' || a === null ? null : a - runs.base };
  });
}

/** Where the job is now: its run, and the last attempt started in that run (0 before the first). */
export function currentRun(events: readonly RunEvent[], jobAttempt: number): { run: number; attempt: number } {
  const runs = RunCounter.of(events);
  return { run: runs.run, attempt: Math.max(0, jobAttempt - runs.base) };
}
