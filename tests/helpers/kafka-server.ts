/**
 * A private Kafka broker for tests that must stop it (the shared dev broker
 * is never touched): `scripts/kafka/kafka.sh` on its own port (controller on
 * port + 1) and its own data dir, fresh at `create`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface PrivateKafka {
  port: number;
  brokers: string;
  /** Starts the broker (fresh data on the first start) and waits until it is ready. */
  start(): Promise<void>;
  /** SIGTERM and wait for the exit (the data dir stays). */
  stop(): Promise<void>;
  /** Stops it and deletes its data dir. */
  destroy(): Promise<void>;
}

function script(port: number, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['scripts/kafka/kafka.sh', command], {
      cwd: root, env: { ...process.env, KAFKA_PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`kafka.sh ${command} (port ${port}) exited ${code}:\n${out.slice(-3000)}`))));
  });
}

/** A broker on `port` with an empty data dir (`kafka.sh reset` first); call `start()` next. */
export async function createPrivateKafka(port: number): Promise<PrivateKafka> {
  await script(port, 'reset');
  return {
    port, brokers: `127.0.0.1:${port}`,
    start: () => script(port, 'start'),
    stop: () => script(port, 'stop'),
    destroy: () => script(port, 'reset'),
  };
}
