/**
 * `JobStore.keepDispatches` over one "run this statement" function, shared by
 * both stores: the jobs whose dispatches a live worker holds back for their
 * limit get a later update time, a statement per chunk of ids, in id order
 * (the order InnoDB locks rows in, as a claim's locking read does).
 */
import type { JobStore } from '../../engine/ports.js';
import type { Exec } from './program.js';
import { keepDispatches } from './statements.js';

/** Ids a statement names at most. */
const CHUNK = 500;

export function createSqlKeptDispatches(exec: Exec): Pick<JobStore, 'keepDispatches'> {
  return {
    keepDispatches: async (jobIds, at) => {
      const ids = [...new Set(jobIds)].sort();
      let changed = 0;
      for (let i = 0; i < ids.length; i += CHUNK) {
        const chunk = ids.slice(i, i + CHUNK);
        changed += (await exec(keepDispatches(chunk.length), [at, ...chunk, at])).changes;
      }
      return changed;
    },
  };
}
