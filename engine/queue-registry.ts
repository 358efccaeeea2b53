/**
 * The queues jobs may name. Each queue ever named keeps three lane topics on
 * the brokers, and a consumer of each in every worker serving every queue,
 * for good (nothing deletes a topic): so a job may name a new queue only
 * while fewer than `max` are listed (ATS_MAX_QUEUES). A queue listed once is
 * always admitted; the default queue always is, and is listed (counted) as
 * any other once named. The list lives in the store (QueueStore), shared by
 * every process; each process remembers the names it saw admitted, so a job
 * of a known queue costs no statement.
 */
import { AtsError } from './errors.js';
import type { Clock, QueueStore } from './ports.js';

export interface QueueRegistryDeps {
  store: Pick<QueueStore, 'admitQueues'>;
  clock: Pick<Clock, 'now'>;
  /** Most queues listed (ATS_MAX_QUEUES). */
  max: number;
  /** The queue of a job submitted without one: always admitted. */
  defaultQueue: string;
}

const NONE: ReadonlySet<string> = new Set();

export class QueueRegistry {
  /** Names admitted, as this process saw them: at most what the store lists. */
  private readonly known = new Set<string>();

  constructor(private readonly deps: QueueRegistryDeps) {}

  /** Whether `name` is known admitted, without asking the store. */
  knows(name: string): boolean {
    return this.known.has(name);
  }

  /** The names of `names` refused (the list is full); the others are admitted. */
  async refused(names: Iterable<string>): Promise<ReadonlySet<string>> {
    let unknown: Set<string> | undefined;
    for (const n of names) if (!this.known.has(n)) (unknown ??= new Set()).add(n);
    if (!unknown) return NONE;
    const { store, clock, max, defaultQueue } = this.deps;
    // The default queue is listed whatever the count: a job submitted without a queue is never refused.
    if (unknown.delete(defaultQueue)) {
      await this.list(defaultQueue);
      if (unknown.size === 0) return NONE;
    }
    const refused = new Set(await store.admitQueues([...unknown], max, clock.now()));
    for (const n of unknown) if (!refused.has(n)) this.known.add(n);
    return refused;
  }

  /**
   * Lists `name` whatever the count: for a queue admitted before (a stored
   * schedule's, which was admitted when it was set or listed by the upgrade).
   */
  async list(name: string): Promise<void> {
    if (this.known.has(name)) return;
    await this.deps.store.admitQueues([name], Number.MAX_SAFE_INTEGER, this.deps.clock.now());
    this.known.add(name);
  }

  /** Admits every name of `names`, or throws ATS_ERR_QUEUE_LIMIT (409) naming the first refused. */
  async admit(names: Iterable<string>): Promise<void> {
    const [first] = await this.refused(names);
    if (first !== undefined) throw this.refusal(first);
  }

  /** The error of a job naming queue `name`, refused. */
  refusal(name: string): AtsError {
    return new AtsError(
      'ATS_ERR_QUEUE_LIMIT',
      `queue '${name}' is new, and ${this.deps.max} queues are in use (ATS_MAX_QUEUES): name one of them, or raise the limit (docs/queues.md)`,
    );
  }
}
