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
