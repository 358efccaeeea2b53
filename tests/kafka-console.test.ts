/**
 * `bash scripts/kafka/kafka.sh consume TOPIC`: Kafka's console consumer
 * (fetched from Maven Central on first use) prints each record's partition,
 * offset, headers, key and value. A record produced here with kafkajs to a
 * fresh topic must come back in that form.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from './helpers/kafka.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const script = 'scripts/kafka/kafka.sh';

/** Runs kafka.sh with `args` in the repository root; resolves its exit code and output. */
function kafkaSh(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, ...args], {
      cwd: root,
      env: { ...process.env, KAFKA_BROKERS: kafkaBrokers().join(',') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kafka.sh ${args.join(' ')} still running after ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

const up = await requireKafka();

describe('kafka.sh consume', { skip: !up && 'Kafka not reachable' }, () => {
  const prefix = randomTopicPrefix();
  const topic = `${prefix}console`;
  const group = `${prefix}console-group`;
  const kafka = new Kafka({ clientId: 'ats-test-console', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();

  before(async () => {
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    const producer = kafka.producer();
    await producer.connect();
    try {
      await producer.send({
        topic, acks: -1,
        messages: [{ key: 'job-01', value: '{"hello":"world"}', headers: { 'ats-kind': 'transition', 'ats-version': '1' } }],
      });
    } finally {
      await producer.disconnect();
    }
  });

  after(async () => {
    await admin.deleteGroups([group]).catch(() => undefined);
    await admin.disconnect();
    await deleteTopicsWithPrefix(prefix);
  });

  it('prints the record from the beginning: partition, offset, headers, key and value, tab-separated', async () => {
    // The first run may fetch kafka-tools from Maven Central.
    const r = await kafkaSh(['consume', topic, '--from-beginning', '--max-messages', '1', '--timeout-ms', '60000', '--group', group], 300_000);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n').filter(Boolean);
    assert.deepEqual(lines, ['Partition:0\tOffset:0\tats-kind:transition,ats-version:1\tjob-01\t{"hello":"world"}'], r.stderr);
    assert.match(r.stderr, /Processed a total of 1 messages/);
  });

  it('without --group commits no offset for the topic (the console consumer\'s rule: a look leaves no position behind)', async () => {
    const r = await kafkaSh(['consume', topic, '--from-beginning', '--max-messages', '1', '--timeout-ms', '60000'], 300_000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /job-01/);
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith('console-consumer-'));
    for (const groupId of groups) {
      const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
      const committed = offsets.flatMap((t) => t.partitions).filter((p) => p.offset !== '-1');
      assert.deepEqual(committed, [], `group ${groupId} committed offsets on ${topic}`);
    }
  });

  it('does not create a topic that does not exist (a misspelt name, or the wrong broker)', async () => {
    const missing = `${prefix}missing`;
    const r = await kafkaSh(['consume', missing, '--from-beginning', '--timeout-ms', '5000'], 300_000);
    assert.match(r.stderr, /Processed a total of 0 messages/);
    assert.ok(!(await admin.listTopics()).includes(missing), `consume created ${missing}`);
  });

  it('without a topic prints its usage and exits 2', async () => {
    const r = await kafkaSh(['consume'], 30_000);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage: .*consume TOPIC/);
    assert.equal(r.stdout, '');
  });
});
