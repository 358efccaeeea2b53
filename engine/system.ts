/** The real clock, random source and id generator, for production wiring. */
import type { Clock, Random } from './ports.js';

export { ulidIds } from './job-ids.js';

export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  elapsed: () => performance.now(),
  sleep,
});

/**
 * Resolves after `ms`, or rejects with the signal's reason once it aborts.
 * Not `timers/promises`' setTimeout: that one builds an AbortError (with its
 * stack) for each aborted sleep, and every finished job aborts two (its
 * timeout and its heartbeat).
 */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (!signal) return new Promise((resolve) => setTimeout(resolve, ms));
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export const mathRandom: Random = Object.freeze({ next: () => Math.random() });
