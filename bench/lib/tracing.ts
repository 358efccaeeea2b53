/**
 * `BENCH_TRACING=1`: the in-process scheduler cases trace every job, as
 * `ats start` does with an OTLP exporter configured (cli/tracing.ts: batching
 * processor, http/protobuf). The spans go to a receiver in a process of its
 * own that reads and drops them, so the benchmark process pays for making and
 * exporting spans, not for receiving them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { startTracing, type Tracing } from '../../cli/tracing.js';

const RECEIVER = `
const server = require('node:http').createServer((req, res) => {
  req.resume();
  req.on('end', () => { res.writeHead(200, { 'content-type': 'application/x-protobuf' }); res.end(); });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

export interface BenchTracing {
  tracing: Tracing;
  stop(): Promise<void>;
}

export const tracingOn = (): boolean => process.env.BENCH_TRACING === '1';

/** Tracing for a case when BENCH_TRACING=1, else null. */
export async function benchTracing(roles: readonly string[]): Promise<BenchTracing | null> {
  if (!tracingOn()) return null;
  const receiver: ChildProcess = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [chunk] = (await once(receiver.stdout!, 'data')) as [Buffer];
  const port = Number(chunk.toString().trim());
  const tracing = await startTracing({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${port}/v1/traces`, OTEL_SERVICE_NAME: 'ats-bench' }, roles);
  if (!tracing) throw new Error('BENCH_TRACING=1: tracing did not start');
  return {
    tracing,
    async stop() {
      await tracing.shutdown().catch(() => undefined);
      receiver.kill();
    },
  };
}
