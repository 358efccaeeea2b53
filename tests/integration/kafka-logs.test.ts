/**
 * kafkajs's log on the real broker, through the scheduler's logger at honest
 * levels: the scheduler started twice on the same topics (the second start
 * finds them: kafkajs logs the broker's TOPIC_ALREADY_EXISTS answer at ERROR)
 * writes no error or warning line about them; the answer is there, at debug,
 * with kafkajs's own level beside it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { createKafkaLog } from '../../adapters/kafka/index.js';
import { SETTINGS } from '../../cli/config.js';
import { lanesOf } from '../../engine/lanes.js';
import { TOPICS, type Logger } from '../../engine/ports.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../helpers/kafka.js';
import { startUntilReady } from '../helpers/processes.js';
type Line = Record<string, unknown>;

const prefix = randomTopicPrefix();
const dir = mkdtempSync(join(tmpdir(), 'ats-kafka-logs-'));

before(async () => {
  await requireKafka();
});
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await deleteTopicsWithPrefix(prefix).catch(() => undefined);
});

/** `ats start` (every role, the embedded store, the real broker) until `ats ready`, then SIGTERM: its log lines. */
async function startAndStop(run: number): Promise<Line[]> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const s of Object.values(SETTINGS)) delete env[s.env];
  delete env.NODE_TEST_CONTEXT;
  Object.assign(env, {
    PORT: '0', HOST: '127.0.0.1', ATS_DATA_DIR: join(dir, String(run)), LOG_LEVEL: 'debug',
    KAFKA_BROKERS: kafkaBrokers().join(','), ATS_TOPIC_PREFIX: prefix, ATS_WORKER_GROUP: `${prefix}workers`,
  });
  const { code, stdout, stderr } = await startUntilReady(env, 90_000);
  assert.equal(code, 0, `run ${run} exited ${code}:\n${stdout}\n${stderr}`);
  assert.match(stdout, /ats ready/);
  return stdout.split('\n').filter(Boolean).map((l) => {
    try {
      return JSON.parse(l) as Line;
    } catch {
      return assert.fail(`run ${run}: not a JSON line: ${l}`);
    }
  });
}

/** kafkajs's line for the broker's answer to a createTopics on existing topics, or the event log's own. */
const mentionsExistingTopic = (l: Line) =>
  /already exists|TOPIC_ALREADY_EXISTS/i.test(JSON.stringify(l)) || /^Response CreateTopics/.test(String(l.msg)) || l.msg === 'kafka: topic exists';
const show = (lines: Line[]) => lines.map((l) => JSON.stringify(l)).join('\n');

it('a second start on existing topics logs no error or warning about them; kafkajs\'s answer is at debug', { timeout: 240_000 }, async () => {
  const first = await startAndStop(1);
  const second = await startAndStop(2);
  for (const [run, lines] of [[1, first], [2, second]] as const) {
    const loud = lines.filter((l) => (l.level === 'error' || l.level === 'warn') && mentionsExistingTopic(l));
    assert.deepEqual(loud, [], `run ${run}: error/warn lines about existing topics:\n${show(loud)}`);
  }
  // Run 1 created the topics (the three, and the default queue's other two dispatch lanes, which its
  // worker reads); run 2 found them. kafkajs's ERROR for the broker's answer is at debug.
  const topics = [...new Set([...Object.values(TOPICS), ...lanesOf('default')])].sort();
  assert.deepEqual(first.filter((l) => l.msg === 'kafka: topic created').map((l) => [l.level, l.topic]).sort(),
    topics.map((t) => ['info', prefix + t]), show(first));
  assert.equal(second.filter((l) => l.msg === 'kafka: topic exists' && l.level === 'debug').length, topics.length, show(second));
  const answers = second.filter((l) => l.component === 'kafkajs' && mentionsExistingTopic(l));
  assert.ok(answers.length >= 1, `run 2 logged no answer to createTopics at all:\n${show(second)}`);
  for (const l of answers) assert.deepEqual([l.level, l.kafkaLevel], ['debug', 'ERROR'], JSON.stringify(l));
  // Nothing else of a healthy start is an error either (a rebalance, the coordinator starting up).
  const errors = [...first, ...second].filter((l) => l.level === 'error');
  assert.deepEqual(errors, [], `error lines on a healthy start:\n${show(errors)}`);
});

it('a topic the broker will not create: the event log\'s error line names each topic\'s error (kafkajs\'s own summary is at debug)', { timeout: 60_000 }, async () => {
  const lines: Line[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, ...fields });
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  // '/' is not allowed in a topic name: the broker answers INVALID_TOPIC_EXCEPTION.
  const log = createKafkaLog({ brokers: kafkaBrokers(), topicPrefix: 'bad/name.', connectTimeoutMs: 5000, logLevel: 'info', logger });
  try {
    await assert.rejects(log.ensureTopics());
  } finally {
    await log.close();
  }
  const failed = lines.filter((l) => l.msg === 'kafka: creating a topic failed');
  assert.equal(failed.length, Object.values(TOPICS).length, show(lines));
  for (const l of failed) {
    assert.equal(l.level, 'error');
    assert.match(String(l.err), /^Topic creation errors: bad\/name\.ats\.\w+: INVALID_TOPIC_EXCEPTION$/);
  }
  const summaries = lines.filter((l) => /^Response CreateTopics/.test(String(l.msg)));
  assert.ok(summaries.length >= 1 && summaries.every((l) => l.level === 'debug'), show(lines));
});
