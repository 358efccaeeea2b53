/**
 * The queues jobs may name. Each queue ever named keeps three lane topics on
 * the brokers, and a consumer of each in every worker serving every queue,
 * for good (nothing deletes a topic): so a job may name a new queue only
 * while fewer than `max` are listed (ATS_MAX_QUEUES). Of those, the jobs of
 * one tenant other than the default may list a quarter (`tenantShare`): one
 * tenant's keys cannot take every place for good. A queue listed once is
 * always admitted, whoever listed it; the default queue always is, and is
 * listed (counted) as any other once named. The list lives in the store
 * (QueueStore), shared by every process; each process remembers the names it
 * saw admitted, so a job of a known queue costs no statement.
 */
import { DEFAULT_TENANT } from './auth.js';
import { AtsError } from './errors.js';
import type { Clock, QueueShare, QueueStore } from './ports.js';

export interface QueueRegistryDeps {
  store: Pick<QueueStore, 'admitQueues'>;
  clock: Pick<Clock, 'now'>;
  /** Most queues listed (ATS_MAX_QUEUES). */
  max: number;
  /** The queue of a job submitted without one: always admitted. */
  defaultQueue: string;
}

const NONE: ReadonlySet<string> = new Set();

/** The queues the jobs of one tenant other than the default may list, of `max` in all: a quarter, at least one. */
export function tenantShare(max: number): number {
  return Math.max(1, Math.floor(max / 4));
}

export class QueueRegistry {
  /** Names admitted, as this process saw them: at most what the store lists. */
  private readonly known = new Set<string>();

  constructor(private readonly deps: QueueRegistryDeps) {}

  /** Whether `name` is known admitted, without asking the store. */
  knows(name: string): boolean {
    return this.known.has(name);
  }

  /**
   * The names of `names` refused (the list is full, or `tenant`'s share of
   * it); the others are admitted. `tenant`: whose jobs name them (default: the default tenant).
   */
  async refused(names: Iterable<string>, tenant: string = DEFAULT_TENANT): Promise<ReadonlySet<string>> {
    let unknown: Set<string> | undefined;
    for (const n of names) if (!this.known.has(n)) (unknown ??= new Set()).add(n);
    if (!unknown) return NONE;
    const { store, clock, max, defaultQueue } = this.deps;
    // The default queue is listed whatever the count: a job submitted without a queue is never refused.
    if (unknown.delete(defaultQueue)) {
      await this.list(defaultQueue);
      if (unknown.size === 0) return NONE;
    }
    const refused = new Set(await store.admitQueues([...unknown], max, clock.now(), this.shareOf(tenant)));
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

  /** Admits every name of `names` for `tenant`'s jobs, or throws ATS_ERR_QUEUE_LIMIT (409) naming the first refused. */
  async admit(names: Iterable<string>, tenant: string = DEFAULT_TENANT): Promise<void> {
    const [first] = await this.refused(names, tenant);
    if (first !== undefined) throw this.refusal(first, tenant);
  }

  /** The error of a job of `tenant` naming queue `name`, refused. */
  refusal(name: string, tenant: string = DEFAULT_TENANT): AtsError {
    const { max } = this.deps;
    const share = this.shareOf(tenant);
    const full = `${max} queues are in use (ATS_MAX_QUEUES)`;
    return new AtsError(
      'ATS_ERR_QUEUE_LIMIT',
      share
        ? `queue '${name}' is new, and no place is left for it: ${full}, or ${share.max} of them, a tenant's most, were named first by your tenant: name a queue in use, or ask the operator to raise the limit (docs/queues.md)`
        : `queue '${name}' is new, and ${full}: name one of them, or raise the limit (docs/queues.md)`,
    );
  }

  /** `tenant`'s share of the list; none for the default tenant's jobs. */
  private shareOf(tenant: string): QueueShare | undefined {
    return tenant === DEFAULT_TENANT ? undefined : { tenant, max: tenantShare(this.deps.max) };
  }
}
