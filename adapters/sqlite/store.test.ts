/** The JobStore contract on SQLite, each case on its own temporary file. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeContract } from '../../tests/contracts/store.contract.js';
import { createSqliteStore } from './index.js';

storeContract('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-sqlite-'));
  const store = createSqliteStore({ file: join(dir, 'nested', 'ats.sqlite') });
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
