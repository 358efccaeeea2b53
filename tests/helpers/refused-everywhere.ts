/**
 * Every `net.connect` fails as Node's does when it tried each address of a
 * host name and each refused (autoSelectFamily): an AggregateError without a
 * message of its own, its code the first inner error's (kafkajs keeps only the
 * message). The addresses are `::1` and `127.0.0.1`, port 9092. Returns the
 * undo, to call in a `finally`.
 */
import net from 'node:net';

export function refuseEveryAddress(): () => void {
  const refusedAt = (address: string) => Object.assign(new Error(`connect ECONNREFUSED ${address}:9092`), {
    errno: -111, code: 'ECONNREFUSED', syscall: 'connect', address, port: 9092,
  });
  const connect = net.connect;
  net.connect = (() => {
    const socket = new net.Socket();
    socket.destroy(Object.assign(new AggregateError([refusedAt('::1'), refusedAt('127.0.0.1')]), { code: 'ECONNREFUSED' }));
    return socket;
  }) as unknown as typeof net.connect;
  return () => {
    net.connect = connect;
  };
}
