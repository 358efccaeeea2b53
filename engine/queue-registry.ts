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
import { DEFAULT_TENANT, tenantShare } from './auth.js';
import { AtsError } from './errors.js';
import type { Clock, QueueShare, QueueStore } from './ports.js';

export interface QueueRegistryDeps {
  store: Pick<QueueStore, 'admitQueues' | 'countQueues'>;
  clock: Pick<Clock, 'now'>;
  /** Most queues listed (ATS_MAX_QUEUES). */
  max: number;
  /** The queue of a job submitted without one: always admitted. */
  defaultQueue: string;
}

const NONE: ReadonlyMap<string, AtsError> = new Map();

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
   * it), each with the error its job is answered; the others are admitted.
   * `tenant`: whose jobs name them (default: the default tenant).
   */
  async refused(names: Iterable<string>, tenant: string = DEFAULT_TENANT): Promise<ReadonlyMap<string, AtsError>> {
    let unknown: Set<string> | undefined;
    for (const n of names) if (!this.known.has(n)) (unknown ??= new Set()).add(n);
    if (!unknown) return NONE;
    const { store, clock, max, defaultQueue } = this.deps;
    // The default queue is listed whatever the count: a job submitted without a queue is never refused.
    if (unknown.delete(defaultQueue)) {
      await this.list(defaultQueue);
      if (unknown.size === 0) return NONE;
    }
    const share = this.shareOf(tenant);
    const refused = await store.admitQueues([...unknown], max, clock.now(), share);
    for (const n of unknown) if (!refused.includes(n)) this.known.add(n);
    if (refused.length === 0) return NONE;
    // Which bound refused them, for the message: the whole list, or the tenant's part of it.
    const byShare = share !== undefined && (await store.countQueues()) < max;
    return new Map(refused.map((n) => [n, this.refusal(n, byShare ? share : undefined)]));
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
    for (const error of (await this.refused(names, tenant)).values()) throw error;
  }

  /** The error of a job naming queue `name`, refused for the whole list, or for `share` (its tenant's part of it). */
  private refusal(name: string, share: QueueShare | undefined): AtsError {
    const { max } = this.deps;
    return new AtsError(
      'ATS_ERR_QUEUE_LIMIT',
      share
        ? `queue '${name}' is new, and your tenant named ${share.max} of the ${max} queues (ATS_MAX_QUEUES) first, a tenant's most: name a queue in use, or ask the operator to raise the limit (docs/queues.md)`
        : `queue '${name}' is new, and the queue list is full (ATS_MAX_QUEUES = ${max}): name a queue in use, or raise the limit (docs/queues.md)`,
    );
  }

  /** `tenant`'s share of the list; none for the default tenant's jobs. */
  private shareOf(tenant: string): QueueShare | undefined {
    return tenant === DEFAULT_TENANT ? undefined : { tenant, max: tenantShare(this.deps.max) };
  }
}
