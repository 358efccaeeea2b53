/**
 * The ProgressStore port over one "run this statement" function, shared by
 * both stores: one row a job in `job_progress`, written only while the job
 * runs the reporting attempt (the INSERT selects from `jobs` under that
 * condition), replaced at each report.
 */
import type { JobProgress, ProgressStore } from '../../engine/ports.js';
import type { Dialect } from './dialect.js';
import { toNum, type Row } from './rows.js';
import type { Exec } from './program.js';

const COLUMNS = 'job_id, type, queue, attempt, value, at';

/**
 * The progress rows with their job's tenant: one primary-key lookup in `jobs`
 * per row (a progress row goes with its job, so the join drops none).
 */
const JOINED = `p.job_id, j.tenant, p.type, p.queue, p.attempt, p.value, p.at FROM job_progress p JOIN jobs j ON j.id = p.job_id`;

function rowToProgress(r: Row): JobProgress {
  return {
    jobId: String(r.job_id), tenant: String(r.tenant), type: String(r.type), queue: String(r.queue), attempt: toNum(r.attempt),
    value: JSON.parse(String(r.value)), at: toNum(r.at),
  };
}

export function createSqlProgress(exec: Exec, d: Dialect): ProgressStore {
  const onConflict = d.setOnConflict('job_id', ['value', 'at', 'attempt']);
  // Params: value, at, job id, attempt (and value, at, attempt again where the dialect rebinds them).
  const upsert = `INSERT INTO job_progress (${COLUMNS}) SELECT id, type, queue, attempt, ?, ? FROM jobs WHERE id = ? AND state = 'running' AND attempt = ? ${onConflict.sql}`;
  return {
    setProgress: async (jobId, attempt, valueJson, at) => {
      const params = [valueJson, at, jobId, attempt, ...(onConflict.rebind ? [valueJson, at, attempt] : [])];
      return (await exec(upsert, params)).changes > 0;
    },
    getProgress: async (jobId) => {
      const [r] = (await exec(`SELECT ${JOINED} WHERE p.job_id = ?`, [jobId])).rows;
      return r ? rowToProgress(r) : null;
    },
    readProgressSince: async (at, limit) =>
      (await exec(`SELECT ${JOINED} WHERE p.at >= ? ORDER BY p.at, p.job_id LIMIT ?`, [at, limit])).rows.map(rowToProgress),
  };
}
