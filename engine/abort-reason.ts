/**
 * Why a handler's signal was aborted (`ctx.signal.reason`): its own module,
 * so the handler API (`ai-task-scheduler/handlers`) exports the type without
 * the worker's imports.
 */
export type AbortKind = 'timeout' | 'cancelled' | 'lease-lost' | 'shutdown';

/** `ctx.signal.reason` once the signal aborts: `kind` says why. */
export class AbortReason extends Error {
  constructor(readonly kind: AbortKind, message: string) {
    super(message);
    this.name = kind === 'timeout' ? 'TimeoutError' : 'AbortError';
  }
}
