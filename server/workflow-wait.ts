/**
 * Long-polling a workflow instance (`GET /v1/workflows/:id/wait` and a start
 * that waits): until it has ended, or is in a state with a tag.
 *
 * How it waits: it reads the instance from the store, then again after a
 * pause that starts at `FIRST_POLL_MS` and grows to `MAX_POLL_MS`, so a
 * long wait costs one primary-key read a half second. Steps this api process
 * takes itself (a signal, a cancel) wake the waiters of their instance at
 * once (`WaitRoom.wake`); steps taken elsewhere (a child's end or a timer,
 * applied by the timers role, maybe in another process) are seen at the next
 * read. A wait stops when its condition is met, when the instance ended
 * without meeting it, at its timeout, when the client goes away, when the
 * app closes, and when its caller may no longer wait (`holds`: its API key
 * revoked, or keys required now), asked before each read: a revoked key is
 * not answered the instance as it is after its revocation.
 */
import type { Clock, WorkflowRecord } from '../engine/ports.js';
import type { WorkflowService } from '../engine/workflows.js';
import { hasTag } from '../machines/workflow-tags.js';

export const FIRST_POLL_MS = 50;
export const MAX_POLL_MS = 500;

/** What a wait waits for: the instance's end, or a state tagged `tag`. */
export type WaitCondition = { until: 'done' } | { until: 'tag'; tag: string };

/** `done` or `tag:NAME`, as the schemas' pattern has let it through. */
export function parseCondition(text: string | undefined): WaitCondition {
  if (text === undefined || text === 'done') return { until: 'done' };
  return { until: 'tag', tag: text.slice('tag:'.length) };
}

export const conditionText = (c: WaitCondition): string => (c.until === 'done' ? 'its end' : `a state tagged ${c.tag}`);

export type WaitOutcome =
  | { kind: 'met'; workflow: WorkflowRecord }
  /** The instance ended, and not in a way that meets the condition. */
  | { kind: 'unmet'; workflow: WorkflowRecord }
  | { kind: 'timeout'; workflow: WorkflowRecord }
  /** The instance is gone (deleted by retention while waited for). */
  | { kind: 'gone' }
  /** A tag wait on an instance whose definition version this process lacks (its tags are unknown here). */
  | { kind: 'definition-missing'; workflow: WorkflowRecord }
  /** The client went away or the app is closing (`signal` aborted). */
  | { kind: 'aborted'; reason: unknown }
  /** The caller may no longer wait: its key stopped working while it waited (`holds` said no). */
  | { kind: 'refused' };

/** Where the waiters of each instance wait to be woken. */
export class WaitRoom {
  private readonly waiting = new Map<string, Set<() => void>>();

  /** Wakes every waiter of instance `id` (a step of it committed in this process). */
  wake(id: string): void {
    const set = this.waiting.get(id);
    if (!set) return;
    this.waiting.delete(id);
    for (const wake of set) wake();
  }

  /** Resolves on the next `wake(id)`; `cancel` forgets the waiter. */
  next(id: string): { woken: Promise<void>; cancel(): void } {
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    let set = this.waiting.get(id);
    if (!set) this.waiting.set(id, (set = new Set()));
    set.add(wake);
    return {
      woken,
      cancel: () => {
        const s = this.waiting.get(id);
        if (!s) return;
        s.delete(wake);
        if (s.size === 0) this.waiting.delete(id);
      },
    };
  }

  /** Instances with a waiter now (tests). */
  get size(): number {
    return this.waiting.size;
  }
}

/** Whether `wf` meets `c` now; null when it cannot be told here (a tag wait without a definition that holds its state). */
function meets(service: WorkflowService, wf: WorkflowRecord, c: WaitCondition): boolean | null {
  if (c.until === 'done') return wf.state.status !== 'active';
  // Without a definition that can hold its state (its version missing here, or changed under the same version): not told.
  const def = service.placeableDefinitionOf(wf);
  return def ? hasTag(def, wf.state, c.tag) : null;
}

/** What `wf` as read now ends the wait with, or null to wait on. */
function settle(service: WorkflowService, wf: WorkflowRecord, c: WaitCondition): WaitOutcome | null {
  const met = meets(service, wf, c);
  if (met === null) return { kind: 'definition-missing', workflow: wf };
  if (met) return { kind: 'met', workflow: wf };
  return wf.state.status === 'active' ? null : { kind: 'unmet', workflow: wf };
}

/**
 * Waits until `first` (the instance as the caller read it, of `tenant`) meets
 * `condition`, for at most `timeoutMs`, reading it again after each pause or
 * wake-up, once `holds` (when given) says the caller may still read it.
 * Never throws for an abort: it ends `aborted`.
 */
export async function waitFor(
  deps: { service: WorkflowService; clock: Clock; room: WaitRoom; holds?: (() => Promise<boolean>) | undefined },
  first: WorkflowRecord,
  tenant: string,
  condition: WaitCondition,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<WaitOutcome> {
  const { service, clock, room } = deps;
  const deadline = clock.now() + timeoutMs;
  let wf = first;
  let pauseMs = FIRST_POLL_MS;
  // Registered before each read, so that a step committed after the read wakes the pause after it.
  let waiter = room.next(wf.id);
  try {
    for (;;) {
      const outcome = settle(service, wf, condition);
      if (outcome) return outcome;
      if (signal.aborted) return { kind: 'aborted', reason: signal.reason };
      const left = deadline - clock.now();
      if (left <= 0) return { kind: 'timeout', workflow: wf };
      await pause(clock, Math.min(pauseMs, left), signal, waiter.woken);
      if (signal.aborted) return { kind: 'aborted', reason: signal.reason };
      pauseMs = Math.min(MAX_POLL_MS, pauseMs * 2);
      waiter.cancel();
      waiter = room.next(wf.id);
      if (deps.holds && !(await deps.holds())) return { kind: 'refused' };
      const now = await service.get(wf.id, tenant);
      if (!now) return { kind: 'gone' };
      wf = now;
    }
  } finally {
    waiter.cancel();
  }
}

/** Sleeps `ms`, or less when woken or aborted; leaves no timer or listener behind. */
async function pause(clock: Clock, ms: number, signal: AbortSignal, woken: Promise<void>): Promise<void> {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.race([clock.sleep(ms, stop.signal).catch(() => undefined), woken]);
  } finally {
    signal.removeEventListener('abort', onAbort);
    stop.abort();
  }
}
