import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderTables, type FloorResult, type RunResults } from './report.js';

const floor = (jobsPerSec: number, settings: string): FloorResult => ({ jobs: 20_000, seconds: 20_000 / jobsPerSec, jobsPerSec, settings, cpuPer1k: { bench: 0.01 } });

/** Results with only the component floors and one scheduler case. */
function results(limits: RunResults['limits']): RunResults {
  return {
    options: { jobs: 20_000, latencySeconds: 20, concurrency: 50, bulkSize: 1000, only: null },
    cases: [{ system: 'ats-mysql', workload: 'throughput', jobsPerSec: 3_000, jobs: 20_000, submitSeconds: 1, cpu: {}, cpuPer1k: {}, peakMiB: {}, loadAvg1: 1 }],
    limits, failures: [],
  } as unknown as RunResults;
}

describe('the component limit table', () => {
  it('judges against the Kafka floor of the records the scheduler sends: packed transitions when measured', () => {
    const md = renderTables(results({ sql: floor(30_000, 'sql'), kafka: floor(10_000, 'five records'), kafkaPacked: floor(40_000, 'packed') }));
    assert.match(md, /\| raw kafkajs, transitions packed \| 40,000 \| packed \|/);
    assert.match(md, /Lower floor: \*\*30,000 jobs\/s\*\* \(SQL\)/);
    assert.match(md, /3,000 jobs\/s = \*\*10.0%\*\* of it/);
  });

  it('without the packed floor, the record-per-message one', () => {
    assert.match(renderTables(results({ sql: floor(30_000, 'sql'), kafka: floor(10_000, 'five records') })), /Lower floor: \*\*10,000 jobs\/s\*\* \(Kafka\)/);
  });
});
