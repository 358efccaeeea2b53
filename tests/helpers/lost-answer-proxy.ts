/**
 * A proxy a test puts in front of a scheduler to lose answers: the first time
 * a request (method and path) comes, it is sent on and done there, and its
 * answer is lost (the connection dropped); the same request again is sent on
 * and answered. So a client that sends a request again after a lost answer
 * meets the answer to the retry (a DELETE's 404, say). Only the method and
 * the path are sent on: no body, no headers.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { closeLocal, listenLocal } from './local-server.js';

export interface LostAnswerProxy {
  /** `http://127.0.0.1:<port>`: the scheduler as the client reaches it. */
  url: string;
  /** Every request that came, in order, as `METHOD /path`. */
  seen: string[];
  close(): Promise<void>;
}

/** Starts the proxy in front of `target` (the scheduler's URL, no trailing slash). */
export async function startLostAnswerProxy(target: string): Promise<LostAnswerProxy> {
  const seen: string[] = [];
  const proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method} ${req.url}`);
    const first = seen.filter((s) => s === `${req.method} ${req.url}`).length === 1;
    void fetch(target + req.url, { method: req.method }).then(async (answer) => {
      const body = await answer.text();
      if (first) return void req.socket.destroy();
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' }).end(body);
    });
  });
  const url = await listenLocal(proxy);
  return { url, seen, close: () => closeLocal(proxy) };
}
