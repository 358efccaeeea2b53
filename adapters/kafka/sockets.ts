/**
 * The socket factory of every kafkajs client here (the event log's and the
 * metrics' consumer lag): kafkajs' own (plain TCP: neither sets TLS), whose
 * sockets name an AggregateError refusal (see `nameAggregate`).
 */
import net from 'node:net';
import type { ISocketFactory } from 'kafkajs';
import { isInstance, messageOf } from '../../engine/thrown.js';

/** As kafkajs' own factory: TCP keep-alive after 60 s. */
const KEEP_ALIVE_DELAY_MS = 60_000;

/** kafkajs' own socket factory for plain TCP, its sockets' errors named by `nameAggregate`. */
export const plainSockets: ISocketFactory = ({ host, port, onConnect }) => {
  // `net.connect` looked up at each call, as kafkajs's factory does (tests redirect it).
  const socket = net.connect({ host, port }, onConnect);
  socket.setKeepAlive(true, KEEP_ALIVE_DELAY_MS);
  // Heard before kafkajs's own listener, which is added after the factory returns.
  socket.on('error', nameAggregate);
  return socket;
};

/**
 * Gives an AggregateError without a message of its own (Node's connect to a
 * host name whose every address refused: `AggregateError [ECONNREFUSED]`)
 * its inner errors' messages as its message. kafkajs keeps nothing of a
 * socket's error but its message and code (`Connection error: ${e.message}`),
 * which would otherwise say "Connection error: " and nothing after, in its
 * log lines, in the "Kafka is not reachable" of a start and in a failed read
 * of the consumer lag.
 */
function nameAggregate(err: unknown): void {
  if (!isInstance(err, AggregateError) || (err as AggregateError).message !== '') return;
  const named = messageOf(err as AggregateError);
  try {
    if (named !== '') Object.defineProperty(err, 'message', { value: named, writable: true, configurable: true, enumerable: false });
  } catch {
    // A frozen error keeps its message: a listener that threw would end the process.
  }
}
