/**
 * Which limits exist, as a worker process last read them: what tells a claim
 * whether a job without a concurrency key falls under a default limit
 * (`type:<type>` or `queue:<queue>`, engine/limits.ts `limitKeyOf`) without a
 * read per claim. Read at start and every `pollMs`: a default limit applies
 * to claims from the next read on; a job's own key needs no read at all.
 * It holds the stored keys of every tenant's default limits (tenant-qualified,
 * engine/limits.ts `storedLimitKey`), as `limitKeyOf` asks for them; a job's
 * own concurrency key is never looked up here.
 */
import { errorFields } from './logger.js';
import { BackgroundLoop, pollUntilAborted } from './loop.js';
import type { Clock, LimitStore, Logger } from './ports.js';

/** Default limits read a statement (all of them are read, page by page: a tenant has at most 1,000 limits, server/schemas.ts MAX_LIMITS_LISTED). */
export const LIMITS_PAGE = 10_000;

export class LimitDirectory {
  private names: ReadonlySet<string> = new Set();
  private readonly loop = new BackgroundLoop((signal) => pollUntilAborted(signal, {
    clock: this.deps.clock, logger: this.deps.logger, failure: 'limits: read failed', pollMs: this.pollMs,
    pass: async () => {
      await this.read();
      return false;
    },
  }));

  constructor(private readonly deps: { store: Pick<LimitStore, 'defaultLimitKeys'>; clock: Clock; logger: Logger }, private readonly pollMs = 1000) {}

  /** Whether a limit of this stored key existed at the last read. */
  has(key: string): boolean {
    return this.names.has(key);
  }

  /** Reads once (a failure is logged: the last read stands), then keeps reading. */
  async start(): Promise<void> {
    await this.read().catch((err: unknown) => this.deps.logger.warn('limits: reading the limits failed; will read again', errorFields(err)));
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async read(): Promise<void> {
    const names = new Set<string>();
    for (let after: string | undefined; ;) {
      const page = await this.deps.store.defaultLimitKeys(LIMITS_PAGE, after);
      for (const key of page) names.add(key);
      if (page.length < LIMITS_PAGE) break;
      after = page.at(-1);
    }
    this.names = names;
  }
}
