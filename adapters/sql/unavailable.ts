/**
 * The store's edge for outages: a driver error that means the database cannot
 * be reached or used now becomes AtsError('ATS_ERR_STORE_UNAVAILABLE') (503,
 * retry later), with the driver's error as its cause for the log. Each store
 * says which of its driver's errors those are; no caller above the adapter
 * ever inspects driver codes or messages.
 */
import { AtsError, STORE_UNAVAILABLE_WHY, type StoreUnavailableWhy } from '../../engine/errors.js';
import type { JobStore } from '../../engine/ports.js';

/** Whether a driver error is an outage, and, when the caller may be told more than "not reachable", which (`why`). */
export type Unavailable = (err: unknown) => boolean | StoreUnavailableWhy;

/** The driver error as ATS_ERR_STORE_UNAVAILABLE when `isUnavailable` says so; otherwise unchanged. */
export function asUnavailable(err: unknown, isUnavailable: Unavailable): unknown {
  const why = isUnavailable(err);
  if (why === false) return err;
  return new AtsError('ATS_ERR_STORE_UNAVAILABLE', why === true ? undefined : STORE_UNAVAILABLE_WHY[why], { cause: err });
}

type Method = (...args: unknown[]) => unknown;

/** A copy of `store` whose methods are `wrap(name, method)` (those it answers `undefined` for stay as they are). */
export function wrapMethods<S extends object>(store: S, wrap: (name: string, method: Method) => Method | undefined): S {
  const wrapped = { ...store } as Record<string, unknown>;
  for (const [name, value] of Object.entries(store)) {
    if (typeof value === 'function') wrapped[name] = wrap(name, value as Method) ?? value;
  }
  return wrapped as S;
}

/**
 * `store` with every method's outage errors mapped (sync throws and
 * rejections alike), and, given `isLostRace`, a race its statement lost that
 * no retry took up (a deadlock or a lock wait timeout of a statement run on
 * its own) as ATS_ERR_CONCURRENT_UPDATE, 409 "try again", as a transaction
 * that lost every try is: nothing was written.
 */
export function guardStore<S extends JobStore>(store: S, isUnavailable: Unavailable, isLostRace?: (err: unknown) => boolean): S {
  const mapped = (err: unknown): unknown => isLostRace?.(err)
    ? new AtsError('ATS_ERR_CONCURRENT_UPDATE', undefined, { cause: err })
    : asUnavailable(err, isUnavailable);
  return wrapMethods(store, (_name, fn) => (...args: unknown[]) => {
    let result: unknown;
    try {
      result = fn(...args);
    } catch (err) {
      throw mapped(err);
    }
    return result instanceof Promise ? result.catch((err: unknown) => { throw mapped(err); }) : result;
  });
}
