/**
 * Wrappers that let the property tests see and steer I/O without touching the
 * engine: a store that counts calls in flight, and a log that records what
 * was acknowledged, tracks which dispatch messages were handled, injects
 * produce failures, and lets each worker's deliveries be gated and faulted.
 */
import { isLane } from '../engine/lanes.js';
import type { TransitionMessage } from '../engine/messages.js';
import {
  OUTBOX_ID_HEADER, TOPICS, type ConsumeOptions, type EventLog, type JobStore, type LogMessage, type LogRecord,
} from '../engine/ports.js';
import { transitionsOf } from '../engine/transition-records.js';

/** A header our log adds to every message: which `publish` copy it is (settling tracks it). */
export const NONCE_HEADER = 'x-prop-nonce';

/**
 * A JobStore that counts its calls: in flight (the test waits for 0 before it
 * calls the system settled), started, and writes (insert, update) started.
 */
export type CountingStore = JobStore & { readonly inFlight: number; readonly calls: number; readonly writes: number };

export function countingStore(store: JobStore): CountingStore {
  let inFlight = 0;
  let calls = 0;
  let writes = 0;
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'inFlight') return inFlight;
      if (prop === 'calls') return calls;
      if (prop === 'writes') return writes;
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const out = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (!(out instanceof Promise)) return out;
        calls++;
        if (prop === 'update' || prop === 'insert') writes++;
        inFlight++;
        return out.finally(() => { inFlight--; });
      };
    },
  }) as CountingStore;
}

/**
 * How the next `publish` fails (a relay that dies while producing), or `lose`:
 * the log acks it, but its dispatch messages never reach a consumer (data a
 * broker lost after its ack, a topic emptied by hand). One-shot.
 */
export type PublishFault = 'none' | 'fail' | 'half' | 'lose';

/** Around one worker's `handle`: may gate, fault (throw) or observe a delivery. */
export interface DeliveryHooks {
  before(records: readonly LogRecord[]): Promise<void>;
  after(records: readonly LogRecord[]): void;
}

export class TrackedLog implements EventLog {
  /** Dispatch messages the log acknowledged, in order (copies we injected included). */
  readonly dispatches: LogMessage[] = [];
  /** Outbox ids of every message the log acknowledged. */
  readonly ackedOutboxIds = new Set<string>();
  /** The transitions the log acknowledged on `ats.events`, as `describeTransition` writes them. */
  readonly ackedTransitions = new Set<string>();
  /** Dispatch messages published but not yet handled successfully by any worker: nonce → `job#attempt`, since when. */
  readonly unhandled = new Map<string, { what: string; since: number }>();
  publishFault: PublishFault = 'none';
  /** Dispatch messages acked and then lost on purpose (`lose`): only the timers' lost-dispatch repair recovers them. */
  lostDispatches = 0;
  inFlight = 0;
  private nonce = 0;

  constructor(private readonly base: EventLog) {}

  ensureTopics(): Promise<void> {
    return this.base.ensureTopics();
  }

  async publish(messages: LogMessage[]): Promise<void> {
    const fault = this.publishFault;
    this.publishFault = 'none';
    if (fault === 'fail' && messages.length > 0) throw new InjectedFault('the relay died while producing (nothing acked)');
    const stamped: LogMessage[] = messages.map((m) => ({ ...m, headers: { ...m.headers, [NONCE_HEADER]: String(++this.nonce) } }));
    const lost = fault === 'lose' ? stamped.filter(isDispatch) : [];
    const sent = fault === 'half' ? stamped.slice(0, Math.ceil(stamped.length / 2)) : stamped.filter((m) => !lost.includes(m));
    // Tracked before the send: a broker may deliver before the producer sees its ack.
    const tracked = sent.filter(isDispatch).map((m) => m.headers[NONCE_HEADER]!);
    for (const m of sent.filter(isDispatch)) this.unhandled.set(m.headers[NONCE_HEADER]!, { what: describeDispatch(m.value), since: Date.now() });
    this.inFlight++;
    try {
      await this.base.publish(sent);
    } catch (err) {
      for (const n of tracked) this.unhandled.delete(n);
      throw err;
    } finally {
      this.inFlight--;
    }
    this.lostDispatches += lost.length;
    for (const m of [...sent, ...lost]) {
      if (m.headers[OUTBOX_ID_HEADER] !== undefined) this.ackedOutboxIds.add(m.headers[OUTBOX_ID_HEADER]);
      if (m.topic === TOPICS.events) for (const t of transitionsOf(m)) this.ackedTransitions.add(describeTransition(t));
      // A lost message is not there to be duplicated or re-sent.
      if (isDispatch(m) && !lost.includes(m)) this.dispatches.push(m);
    }
    if (fault === 'half' && sent.length < messages.length) throw new InjectedFault('the relay died mid-produce (half the batch acked)');
  }

  partitioner(topic: string): Promise<(key: string) => number> {
    return this.base.partitioner(topic);
  }

  consume(options: ConsumeOptions): Promise<import('../engine/ports.js').Subscription> {
    return this.base.consume(options);
  }

  unreadBefore(topic: string, groupId: string, before: number): Promise<ReadonlySet<number>> {
    return this.base.unreadBefore(topic, groupId, before);
  }

  listTopics(): Promise<string[]> {
    return this.base.listTopics();
  }

  /** The log as one worker sees it: its dispatch deliveries pass through `hooks`. */
  forWorker(hooks: DeliveryHooks): EventLog {
    return {
      ensureTopics: () => this.ensureTopics(),
      publish: (m) => this.publish(m),
      partitioner: (topic) => this.partitioner(topic),
      unreadBefore: (topic, group, before) => this.base.unreadBefore(topic, group, before),
      listTopics: () => this.base.listTopics(),
      ping: () => this.base.ping(),
      close: async () => undefined,
      consume: (options) => {
        if (!isLane(options.topic)) return this.base.consume(options);
        return this.base.consume({
          ...options,
          handle: async (records, batch) => {
            await hooks.before(records);
            await options.handle(records, batch);
            hooks.after(records);
            for (const r of records) this.unhandled.delete(r.headers[NONCE_HEADER] ?? '');
          },
        });
      },
    };
  }

  ping(): Promise<void> {
    return this.base.ping();
  }

  close(): Promise<void> {
    return this.base.close();
  }
}

/** A fault the test injected on purpose (commands expect these and nothing else). */
export class InjectedFault extends Error {
  constructor(message: string) {
    super(`injected: ${message}`);
    this.name = 'InjectedFault';
  }
}

const isDispatch = (m: { topic: string }): boolean => isLane(m.topic);

/** `j001 seq 3 STARTED published→running`: a transition, as its history row or its message on `ats.events` tells it. */
export function describeTransition(t: Pick<TransitionMessage, 'jobId' | 'seq' | 'type' | 'from' | 'to'>): string {
  return `${t.jobId} seq ${t.seq} ${t.type} ${t.from ?? '∅'}→${t.to}`;
}

/** `j001#2` for a dispatch message's value. */
export function describeDispatch(value: string): string {
  try {
    const m = JSON.parse(value) as { jobId: string; attempt: number };
    return `${m.jobId}#${m.attempt}`;
  } catch {
    return '?';
  }
}
