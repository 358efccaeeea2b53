/**
 * `ensureTopics` is what a start does first with Kafka: on a Kafka that
 * cannot be reached it must say so, once, within about the connect timeout
 * (as an unreachable MySQL does), whether the broker refuses connections or
 * accepts them and never answers, and leave no connection of its own open.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../../tests/helpers/kafka.js';
import { refuseEveryAddress } from '../../tests/helpers/refused-everywhere.js';
import { startTcpProxy } from '../../tests/helpers/tcp-proxy.js';
import { createKafkaLog } from './index.js';

/** How long a test waits for `ensureTopics` to give up: well above the 1 s connect timeout, well below kafkajs' 30 s request timeout. */
const GIVE_UP_BOUND_MS = 10_000;

/** The error `promise` rejects with, or a failed assertion once it has not settled within `ms`. */
async function rejection(promise: Promise<unknown>, ms: number): Promise<Error & { code?: string }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new assert.AssertionError({ message: `ensureTopics had not settled after ${ms} ms` })), ms);
  });
  try {
    await Promise.race([promise.then(() => assert.fail('ensureTopics resolved')), late]);
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    return error as Error & { code?: string };
  } finally {
    clearTimeout(timer);
  }
  throw new Error('unreachable');
}

/** A server that accepts connections and never answers (a frozen broker), counting those accepted and those still open. */
async function silentBroker(): Promise<{ port: number; accepted: () => number; open: () => number; close(): void }> {
  const accepted: Socket[] = [];
  const open = new Set<Socket>();
  const server = createServer((socket) => {
    accepted.push(socket);
    open.add(socket);
    // Reads (and drops) what comes, so that it sees the client's end: a paused socket never does.
    socket.on('error', () => {}).on('close', () => open.delete(socket)).resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    accepted: () => accepted.length,
    open: () => open.size,
    close: () => {
      for (const s of accepted) s.destroy();
      server.close();
    },
  };
}

// Before any test is declared (tests/test-files.test.ts says why).
const kafkaUp = await requireKafka();

describe('ensureTopics on a Kafka it cannot reach', () => {
  it('refused: "Kafka is not reachable at <brokers>: <why>", the reason once', async () => {
    const log = createKafkaLog({ brokers: ['127.0.0.1:1'], connectTimeoutMs: 1000, logLevel: 'nothing' });
    try {
      const error = await rejection(log.ensureTopics(), GIVE_UP_BOUND_MS);
      assert.equal(error.code, 'ATS_ERR_NOT_READY');
      assert.match(error.message, /^Kafka is not reachable at 127\.0\.0\.1:1: .*ECONNREFUSED 127\.0\.0\.1:1$/);
      assert.equal(error.message.split('ECONNREFUSED').length, 2, error.message);
    } finally {
      await log.close();
    }
  });

  it('refused at every address of its host name: the reason names each address, not an empty "Connection error: "', async () => {
    const restore = refuseEveryAddress();
    const log = createKafkaLog({ brokers: ['kafka.test:9092'], connectTimeoutMs: 1000, logLevel: 'nothing' });
    try {
      const error = await rejection(log.ensureTopics(), GIVE_UP_BOUND_MS);
      assert.equal(error.code, 'ATS_ERR_NOT_READY');
      assert.equal(error.message, 'Kafka is not reachable at kafka.test:9092: Connection error: connect ECONNREFUSED ::1:9092; connect ECONNREFUSED 127.0.0.1:9092');
    } finally {
      restore();
      await log.close();
    }
  });

  it('silent: gives up after the connect timeout, saying so, and cuts the connections it opened', async () => {
    const broker = await silentBroker();
    const log = createKafkaLog({ brokers: [`127.0.0.1:${broker.port}`], connectTimeoutMs: 1000, logLevel: 'nothing' });
    try {
      const error = await rejection(log.ensureTopics(), GIVE_UP_BOUND_MS);
      assert.equal(error.code, 'ATS_ERR_NOT_READY');
      assert.equal(error.message, `Kafka is not reachable at 127.0.0.1:${broker.port}: no answer within 1000 ms`);
      assert.ok(broker.accepted() > 0, 'the log connected');
      // Cut when it gave up, before any close: nothing of it waits on the broker in the background.
      for (let i = 0; i < 40 && broker.open() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(broker.open(), 0, `${broker.open()} of ${broker.accepted()} connections still open`);
    } finally {
      await log.close();
      broker.close();
    }
  });
});

if (kafkaUp) {
  it('a broker that stops answering, then answers again: ensureTopics gives up, and the next call creates the topics', { timeout: 60_000 }, async () => {
    const [host, port] = kafkaBrokers()[0]!.split(':') as [string, string];
    const proxy = await startTcpProxy({ host, port: Number(port) });
    const topicPrefix = randomTopicPrefix();
    const log = createKafkaLog({ brokers: [`127.0.0.1:${proxy.port}`], topicPrefix, connectTimeoutMs: 1000, logLevel: 'nothing' });
    try {
      proxy.stall();
      const error = await rejection(log.ensureTopics(), GIVE_UP_BOUND_MS);
      assert.equal(error.message, `Kafka is not reachable at 127.0.0.1:${proxy.port}: no answer within 1000 ms`);
      proxy.unstall();
      // A new admin: the one given up on was cut and is not reused.
      await log.ensureTopics();
      assert.ok((await log.listTopics()).length >= 3);
    } finally {
      await log.close();
      proxy.unstall();
      await proxy.close();
      await deleteTopicsWithPrefix(topicPrefix);
    }
  });
} else {
  it('ensureTopics with a broker that stops answering', { skip: 'no Kafka broker reachable and ATS_ALLOW_SKIP=1' }, () => {});
}
