/**
 * What fastify logs of each request, through the process's pino (each line
 * carries fastify's request id as `reqId`).
 *
 * One line per request, at debug: `request completed` with the method, the
 * URL, the status and the time taken. Not at info: the hot path is submits
 * (thousands a second under load) and the UI's and probes' polls, and at info
 * those lines would be most of the log and most of its cost, burying the
 * roles' own lines. What needs a person's eye is logged anyway at warn or
 * error: every 5xx by the error handler (`error-handler.ts`, with the same
 * `reqId`), and a response that could not be written. fastify's separate
 * `incoming request` line is left out (the completion says the same, and more).
 */
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import { errorFields } from '../engine/logger.js';
import { clip } from './error-log.js';

const DEBUG_ON: ReadonlySet<string> = new Set(['debug', 'trace']);

export class RequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) {
      reply.log.warn({ method: request.method, url: clip(request.url), statusCode: reply.statusCode, ...errorFields(error) }, 'request errored');
      return;
    }
    if (!DEBUG_ON.has(reply.log.level)) return; // the URL's redaction is paid only for a line written
    reply.log.debug(
      { method: request.method, url: clip(request.url), statusCode: reply.statusCode, responseTime: Math.round(reply.elapsedTime * 100) / 100 },
      'request completed',
    );
  }

  override streamError(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    // The client went away while a streamed reply was being written: its choice, not a failure.
    if ((error as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') reply.log.debug('stream closed prematurely');
    else super.streamError(error, request, reply);
  }
}
