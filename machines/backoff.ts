/**
 * Retry backoff as a pure function: the random source is passed in, so the
 * same inputs always give the same delay (property tests and replay rely on it).
 */

/** Exponential backoff: `baseMs * 2^(n-1)`, capped at `maxMs`, with jitter. */
export interface ExponentialBackoff {
  kind: 'exponential';
  /** Delay before the first retry. @defaultValue 1000 */
  baseMs: number;
  /** Upper bound of any delay. @defaultValue 60000 */
  maxMs: number;
  /**
   * `full`: uniform in [0, d]; `equal`: d/2 + uniform in [0, d/2]; `none`: d.
   * @defaultValue 'full'
   */
  jitter: 'full' | 'equal' | 'none';
}

/** The same delay before every retry. */
export interface FixedBackoff {
  kind: 'fixed';
  delayMs: number;
}

export type BackoffPolicy = ExponentialBackoff | FixedBackoff;

export const DEFAULT_BACKOFF: ExponentialBackoff = Object.freeze({
  kind: 'exponential',
  baseMs: 1000,
  maxMs: 60_000,
  jitter: 'full',
}) as ExponentialBackoff;

/**
 * Delay in ms before the retry that follows failed attempt `failures` (1-based
 * within the current run of attempts). `rand` is a number in [0, 1).
 */
export function backoffDelay(policy: BackoffPolicy, failures: number, rand: number): number {
  if (policy.kind === 'fixed') return Math.max(0, Math.round(policy.delayMs));
  const exponent = Math.min(Math.max(failures - 1, 0), 52);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  const r = Math.min(Math.max(rand, 0), 1);
  switch (policy.jitter) {
    case 'none':
      return Math.round(ceiling);
    case 'equal':
      return Math.round(ceiling / 2 + (ceiling / 2) * r);
    case 'full':
      return Math.round(ceiling * r);
  }
}
