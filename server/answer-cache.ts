/**
 * One answer for every caller during `ms`: several open consoles polling a
 * stats route cost one store read. A failed read is not kept, so the next
 * caller tries again.
 */
import type { Clock } from '../engine/ports.js';

export function sharedFor<T>(ms: number, clock: Clock, read: (now: number) => Promise<T>): (now?: number) => Promise<T> {
  let cached: { at: number; value: Promise<T> } | null = null;
  return (now = clock.now()) => {
    if (cached && now - cached.at < ms) return cached.value;
    const entry = { at: now, value: read(now) };
    cached = entry;
    entry.value.catch(() => {
      if (cached === entry) cached = null;
    });
    return entry.value;
  };
}
