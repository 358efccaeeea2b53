/** The real clock, random source and id generator, for production wiring. */
import { setTimeout as delay } from 'node:timers/promises';
import { monotonicFactory } from 'ulid';
import type { Clock, IdGenerator, Random } from './ports.js';

export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  sleep: (ms: number, signal?: AbortSignal) => delay(ms, undefined, signal ? { signal } : undefined),
});

export const mathRandom: Random = Object.freeze({ next: () => Math.random() });

/** ULIDs, monotonic within this process (ids created in one ms still sort). */
export function ulidIds(): IdGenerator {
  const next = monotonicFactory();
  return { jobId: () => next() };
}
