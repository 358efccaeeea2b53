/**
 * One answer for every caller: while a read runs, every caller gets it (a
 * slow read is never started again by callers polling meanwhile), and once it
 * answered, for `ms` after (several open consoles polling a stats route cost
 * one store read). A failed read is not kept, so the next caller tries again.
 */
import type { Clock } from '../engine/ports.js';

export function sharedFor<T>(ms: number, clock: Clock, read: (now: number) => Promise<T>): (now?: number) => Promise<T> {
  /** `answeredAt`: null while the read runs. */
  let cached: { answeredAt: number | null; value: Promise<T> } | null = null;
  return (now = clock.now()) => {
    if (cached && (cached.answeredAt === null || now - cached.answeredAt < ms)) return cached.value;
    const entry: { answeredAt: number | null; value: Promise<T> } = { answeredAt: null, value: read(now) };
    cached = entry;
    entry.value.then(
      () => {
        entry.answeredAt = clock.now();
      },
      () => {
        if (cached === entry) cached = null;
      },
    );
    return entry.value;
  };
}
