/**
 * The pause of a background loop after consecutive failed passes: `baseMs`,
 * doubling with each further failure up to `maxMs`, back to nothing after a
 * pass that worked. A loop whose database is down then retries (and logs)
 * a few times a minute instead of at every poll.
 */
export class ErrorBackoff {
  private failures = 0;

  constructor(private readonly baseMs: number, private readonly maxMs: number) {}

  /** Records a failed pass; returns how long to pause before the next one. */
  failed(): number {
    const ms = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return ms;
  }

  /** A pass worked: the next failure pauses `baseMs` again. */
  succeeded(): void {
    this.failures = 0;
  }

  /** Failed passes since the last one that worked. */
  get consecutiveFailures(): number {
    return this.failures;
  }
}
