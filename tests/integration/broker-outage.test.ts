/**
 * The broker stops while the API takes submits: a whole system on MariaDB and
 * a private Kafka broker (its own port, so the shared one is never touched).
 * While the broker is down, `POST /v1/jobs` keeps answering 201 promptly (the
 * relay's claim, stuck in the produce, blocks no writer); once the broker is
 * back, every job accepted meanwhile is done within 60 s. The latencies and
 * the recovery time are printed.
 *
 * OUTAGE_KAFKA_PORT picks the private broker's port (default 19100; its
 * controller takes the next one).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, it } from 'node:test';
import { HandlerRegistry } from '../../engine/handlers.js';
import { isTerminal } from '../../machines/lifecycle.js';
import { probeKafka } from '../helpers/kafka.js';
import { requireMysql } from '../helpers/mysql.js';
import { startTestSystem, type TestSystem } from '../helpers/system.js';

const PORT = Number(process.env.OUTAGE_KAFKA_PORT ?? 19100);
const BROKER = `127.0.0.1:${PORT}`;
const KAFKA_SH = fileURLToPath(new URL('../../scripts/kafka/kafka.sh', import.meta.url));
const SUBMITS = 20;
/** A generous bound: a submit normally answers in a few ms. */
const SUBMIT_BOUND_MS = 2000;
const RECOVERY_BOUND_MS = 60_000;

const run = promisify(execFile);
const broker = (cmd: 'start' | 'stop') =>
  run('bash', [KAFKA_SH, cmd], { env: { ...process.env, KAFKA_PORT: String(PORT) }, timeout: 180_000 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let t: TestSystem;

before(async () => {
  await requireMysql();
  await broker('start');
  await probeKafka([BROKER]);
  const registry = new HandlerRegistry().register('test.outage', async () => 'ok');
  t = await startTestSystem({ registry, raw: { kafkaBrokers: BROKER } });
});

after(async () => {
  await t?.stop();
  await broker('stop');
});

/** POST one job; its latency, or a failure after `SUBMIT_BOUND_MS`. */
async function submit(n: number): Promise<{ id: string; ms: number }> {
  const app = t.system.app!;
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`submit ${n} unanswered after ${SUBMIT_BOUND_MS} ms with the broker down`)), SUBMIT_BOUND_MS);
  });
  try {
    const r = await Promise.race([
      app.inject({ method: 'POST', url: '/v1/jobs', payload: { type: 'test.outage', payload: { n }, queue: 'outage' } }),
      bound,
    ]);
    assert.equal(r.statusCode, 201, r.body);
    return { id: (r.json() as { id: string }).id, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

async function waitAllDone(ids: readonly string[], timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const jobs = await Promise.all(ids.map((id) => t.system.store.getJob(id)));
    const open = jobs.filter((j) => !j || !isTerminal(j.snapshot.value));
    if (open.length === 0) {
      assert.deepEqual(jobs.filter((j) => j!.snapshot.value !== 'done').map((j) => j!.id), [], 'every job ends done');
      return Date.now() - started;
    }
    if (Date.now() - started > timeoutMs) {
      assert.fail(`${open.length} of ${ids.length} jobs not done ${timeoutMs} ms after the broker returned: `
        + open.slice(0, 5).map((j) => `${j?.id} ${j?.snapshot.value}`).join(', '));
    }
    await sleep(100);
  }
}

const summary = (ms: number[]) => {
  const s = [...ms].sort((a, b) => a - b);
  return `p50 ${s[Math.floor(s.length / 2)]!.toFixed(1)} ms, max ${s[s.length - 1]!.toFixed(1)} ms`;
};

it('with the broker stopped, submits answer 201 promptly, and all run once it is back', async () => {
  const warm = [];
  for (let i = 0; i < 5; i++) warm.push(await submit(i));
  await waitAllDone(warm.map((w) => w.id), 30_000);

  await broker('stop');
  // Let the relay run into the dead broker (its claim is then held open in the produce).
  await sleep(1000);
  const down: { id: string; ms: number }[] = [];
  for (let i = 0; i < SUBMITS; i++) {
    down.push(await submit(100 + i));
    await sleep(100);
  }

  const restarted = Date.now();
  await broker('start');
  const startMs = Date.now() - restarted;
  const doneMs = await waitAllDone(down.map((d) => d.id), RECOVERY_BOUND_MS) + startMs;
  console.log(`submit latency before the outage: ${summary(warm.map((w) => w.ms))}; broker down: ${summary(down.map((d) => d.ms))}`);
  console.log(`broker start took ${startMs} ms; all ${SUBMITS} jobs done ${doneMs} ms after the restart began`);
  assert.ok(doneMs - startMs < RECOVERY_BOUND_MS);
});
