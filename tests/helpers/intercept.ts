/**
 * A stand-in for an object (a store, a service) whose chosen methods run
 * `around` instead: it gets the original call and the arguments, to do
 * something first (a concurrent delete, a change landing between two writes)
 * or after. Every other member is the object's own, methods bound to it.
 */
export function intercept<T extends object>(
  target: T,
  which: (name: string) => boolean,
  around: (call: () => Promise<unknown>, args: unknown[], name: string) => Promise<unknown>,
): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (typeof prop !== 'string' || !which(prop)) return method.bind(obj);
      return (...args: unknown[]) => around(async () => method.apply(obj, args), args, prop);
    },
  });
}
