/**
 * `promise`, or the error `timedOut` makes once it has gone unsettled `ms`.
 * The work behind `promise` goes on (nothing here can stop it); its later
 * failure is nobody's to hear and does not become an unhandled rejection.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, timedOut: () => Error = () => new Error(`timed out after ${ms} ms`)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut()), ms);
  });
  promise.catch(() => {});
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * `promise`'s value, or null as soon as `signal` is aborted (at once if it
 * already is). As with {@link withTimeout}, the work behind `promise` goes on;
 * its later failure is nobody's to hear.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T | null> {
  if (!signal) return promise;
  promise.catch(() => {});
  if (signal.aborted) return Promise.resolve(null);
  let onAbort!: () => void;
  const aborted = new Promise<null>((resolve) => {
    onAbort = () => resolve(null);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([promise, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}
