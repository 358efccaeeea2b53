/** The JobStore contract on the real MariaDB/MySQL, each case in its own database. */
import { test } from 'node:test';
import { storeContract } from '../../tests/contracts/store.contract.js';
import { createTestDatabase, requireMysql } from '../../tests/helpers/mysql.js';
import { createMysqlStore } from './index.js';

if (await requireMysql()) {
  storeContract('mysql', async () => {
    const db = await createTestDatabase();
    const store = await createMysqlStore({ url: db.url, poolSize: 4 }).catch(async (err) => {
      await db.drop();
      throw err;
    });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await db.drop();
      },
    };
  });
} else {
  test('JobStore contract: mysql', (t) => t.skip('MariaDB not reachable'));
}
