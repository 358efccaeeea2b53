/**
 * A job is one trace across processes: api, relay, worker and timers each run
 * as their own `ats start --role ...` on MariaDB and Kafka (a fresh database
 * and topic prefix), configured only by the standard OTEL_* variables and
 * exporting over OTLP/HTTP (JSON) to a receiver in this test. One job that
 * fails once and is retried (the timers dispatch the retry) gives spans from
 * the api, the relay and the worker that all share one trace id, linked
 * submit → send → process for both attempts. The spans arrive when the
 * processes stop (no export runs on a timer here): a SIGTERM flushes what
 * the SDK buffered.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../helpers/kafka.js';
import { createTestDatabase, type TestDatabase } from '../helpers/mysql.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { freePort } from '../helpers/ports.js';
import { startRole, type RoleProcess } from '../helpers/processes.js';
import { childEnv, FAST } from '../helpers/system.js';

const SERVER = 2;
const PRODUCER = 4;
const CONSUMER = 5;

let db: TestDatabase;
let receiver: OtlpReceiver;
const prefix = randomTopicPrefix();
const children: RoleProcess[] = [];
let apiUrl: string;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      assert.fail(`${what} within ${timeoutMs} ms; outputs:\n${children.map((c) => `--- ${c.name}\n${c.output()}`).join('\n')}`);
    }
    await sleep(200);
  }
}

before(async () => {
  await requireKafka();
  db = await createTestDatabase();
  receiver = await startOtlpReceiver();
  const port = await freePort();
  apiUrl = `http://127.0.0.1:${port}`;
  const env = {
    ...childEnv({ ...FAST, mysqlUrl: db.url, kafkaBrokers: kafkaBrokers().join(','), topicPrefix: prefix }),
    ATS_WORKER_GROUP: `${prefix}workers`, LOG_LEVEL: 'warn', PORT: String(port), HOST: '127.0.0.1',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    // No export on a timer during the test: what arrives was flushed by the shutdown.
    OTEL_BSP_SCHEDULE_DELAY: '600000',
  };
  for (const role of ['api', 'relay', 'worker', 'timers']) children.push(startRole(`tracing-${role}`, role, env));
  await until('the api answers /readyz', 90_000, async () => ((await fetch(`${apiUrl}/readyz`)).ok ? true : undefined));
});
after(async () => {
  await Promise.all(children.map((c) => c.kill()));
  await receiver?.close();
  await db?.drop();
  await deleteTopicsWithPrefix(prefix).catch(() => undefined);
});

it('the api, relay and worker processes’ spans of one job share one trace id, retry included', async (t) => {
  const res = await fetch(`${apiUrl}/v1/jobs`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'demo.fail', payload: { failTimes: 1 }, maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 10 } }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const { id } = (await res.json()) as { id: string };
  await until(`job ${id} done`, 90_000, async () => {
    const job = (await (await fetch(`${apiUrl}/v1/jobs/${id}`)).json()) as { state: string; attempt: number };
    return job.state === 'done' ? job : undefined;
  });
  assert.equal(receiver.spans.length, 0, 'nothing exported before the processes stop');
  // A graceful stop flushes each process's spans (and exits 0).
  const codes = await Promise.all(children.map((c) => c.stop()));
  assert.deepEqual(codes, [0, 0, 0, 0], children.map((c) => `--- ${c.name}\n${c.output()}`).join('\n'));

  const mine = receiver.spans.filter((s) => s.attributes.get('ats.job.id') === id);
  const of = (service: string, kind: number) => mine.filter((s) => s.service === service && s.kind === kind);
  const describe = () => mine.map((s) => `${s.service} ${s.name} ${s.traceId}/${s.spanId}<-${s.parentSpanId}`).join('\n');
  const [submit, ...moreSubmits] = of('ats-api', SERVER);
  const sends = of('ats-relay', PRODUCER);
  const attempts = of('ats-worker', CONSUMER).sort((a, b) => Number(a.attributes.get('ats.job.attempt')) - Number(b.attributes.get('ats.job.attempt')));
  assert.ok(submit && moreSubmits.length === 0, `one submit span from the api process:\n${describe()}`);
  assert.equal(sends.length, 2, `a send span from the relay process per dispatch:\n${describe()}`);
  assert.equal(attempts.length, 2, `an attempt span from the worker process per attempt:\n${describe()}`);

  const traceIds = new Set(mine.map((s) => s.traceId));
  assert.equal(traceIds.size, 1, `one trace:\n${describe()}`);
  assert.match(submit.traceId, /^[0-9a-f]{32}$/);
  assert.equal(submit.parentSpanId, '', 'the submit started the trace');
  for (const s of sends) assert.equal(s.parentSpanId, submit.spanId, 'each dispatch continues the submit');
  const sendIds = new Set(sends.map((s: ReceivedSpan) => s.spanId));
  for (const a of attempts) assert.ok(sendIds.has(a.parentSpanId), `attempt ${a.attributes.get('ats.job.attempt')} continues a send`);
  assert.deepEqual(attempts.map((a) => [a.attributes.get('ats.job.attempt'), a.attributes.get('ats.job.outcome'), a.statusCode]), [[1, 'failed', 2], [2, 'succeeded', 0]]);
  assert.equal(attempts[0]!.attributes.get('ats.job.type'), 'demo.fail');
  assert.equal(receiver.rejected, 0);
  t.diagnostic(`the job's trace (service span trace/span<-parent):\n${describe()}`);
});
