/**
 * The MySQL / MariaDB JobStore.
 *
 * ```ts
 * const store = await createMysqlStore({ url: 'mysql://root@127.0.0.1:3306/ats' });
 * await store.migrate();
 * ```
 */
import type { Logger } from '../../engine/ports.js';
import { SYSTEM_CLOCK, type SqlStoreOptions } from '../sql/options.js';
import { openPool } from './connect.js';
import { mysqlStore, type MysqlStore } from './mysql-store.js';

export type { MysqlStore } from './mysql-store.js';
export type { StoreClock, StoreFaults } from '../sql/options.js';
export { redactUrl } from './connect.js';

export interface MysqlStoreOptions extends SqlStoreOptions {
  /** `mysql://user:password@host:port/database`; query parameters become mysql2 options. */
  url: string;
  /** Connections in the pool. @defaultValue 10 */
  poolSize?: number;
  /** How long to wait for the first connection before failing. @defaultValue 5000 */
  connectTimeoutMs?: number;
  /**
   * Longest wait for the server's answer to one statement (one round trip);
   * then the operation rejects with ATS_ERR_STORE_UNAVAILABLE and the
   * connection is dropped. Migrations are not bounded by it.
   * @defaultValue 60000 (above InnoDB's default lock wait of 50 s)
   */
  queryTimeoutMs?: number;
  /** Where the pool's connection failures and driver warnings go (see pool-log.ts). @defaultValue nowhere */
  logger?: Logger;
}

/**
 * Connect a pool and check it works: rejects with ATS_ERR_STORE_UNAVAILABLE,
 * naming the URL without its password, when the server is not reachable
 * within `connectTimeoutMs`. Does not migrate: call `migrate()`.
 */
export async function createMysqlStore(opts: MysqlStoreOptions): Promise<MysqlStore> {
  const pool = await openPool({
    url: opts.url,
    poolSize: opts.poolSize ?? 10,
    connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
    logger: opts.logger,
  });
  return mysqlStore(pool, opts.clock ?? SYSTEM_CLOCK, opts.faults, opts.metrics, opts.queryTimeoutMs);
}
