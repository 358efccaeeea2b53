/**
 * The store's edge for outages: a driver error that means the database cannot
 * be reached or used now becomes AtsError('ATS_ERR_STORE_UNAVAILABLE') (503,
 * retry later), with the driver's error as its cause for the log. Each store
 * says which of its driver's errors those are; no caller above the adapter
 * ever inspects driver codes or messages.
 */
import { AtsError } from '../../engine/errors.js';
import type { JobStore } from '../../engine/ports.js';

/** The driver error as ATS_ERR_STORE_UNAVAILABLE when `isUnavailable` says so; otherwise unchanged. */
export function asUnavailable(err: unknown, isUnavailable: (err: unknown) => boolean): unknown {
  return isUnavailable(err) ? new AtsError('ATS_ERR_STORE_UNAVAILABLE', undefined, { cause: err }) : err;
}

/** `store` with every method's outage errors mapped (sync throws and rejections alike). */
export function guardStore<S extends JobStore>(store: S, isUnavailable: (err: unknown) => boolean): S {
  const guarded = { ...store } as Record<string, unknown>;
  for (const [key, value] of Object.entries(store)) {
    if (typeof value !== 'function') continue;
    const fn = value as (...args: unknown[]) => unknown;
    guarded[key] = (...args: unknown[]) => {
      let result: unknown;
      try {
        result = fn(...args);
      } catch (err) {
        throw asUnavailable(err, isUnavailable);
      }
      return result instanceof Promise ? result.catch((err: unknown) => { throw asUnavailable(err, isUnavailable); }) : result;
    };
  }
  return guarded as S;
}
