/**
 * A handler module: `ATS_HANDLERS=./examples/handlers.ts npm start`.
 *
 * `email.send` declares its payload schema, so `run` gets the payload typed
 * and the API refuses a payload that does not fit (400
 * ATS_ERR_INVALID_PAYLOAD) before the job exists.
 */
import { defineHandler, NonRetryableError, Type, type HandlerContext } from 'ai-task-scheduler/handlers';

const Email = Type.Object(
  {
    to: Type.String({ format: 'email', maxLength: 254 }),
    subject: Type.String({ minLength: 1, maxLength: 200 }),
    body: Type.String({ maxLength: 100_000 }),
  },
  { additionalProperties: false },
);

/** A stand-in mail transport that only logs; put your provider's client here. */
async function sendEmail(
  message: { to: string; subject: string; body: string },
  opts: { idempotencyKey: string; signal: AbortSignal; log: HandlerContext['log'] },
): Promise<{ messageId: string }> {
  opts.signal.throwIfAborted();
  opts.log.info('email.send: sending (example transport: log only)', { to: message.to, subject: message.subject });
  // A real provider takes the key too, so a retried attempt does not send twice.
  return { messageId: `example-${opts.idempotencyKey}` };
}

export const emailSend = defineHandler('email.send', {
  payload: Email,
  async run(payload, ctx) {
    // payload: { to: string; subject: string; body: string }
    // ctx: jobId, attempt, idempotencyKey (stable across attempts), signal (timeout/cancel/shutdown), heartbeat(), progress(), log
    if (payload.to.endsWith('.invalid')) throw new NonRetryableError(`cannot deliver to ${payload.to}`); // dead, no retries
    const { messageId } = await sendEmail(payload, { idempotencyKey: ctx.idempotencyKey, signal: ctx.signal, log: ctx.log });
    return { sent: true, messageId }; // stored as the job's result (at most 256 KiB of JSON, 32 levels deep)
  },
});

/** What ATS_HANDLERS loads (a module may export `register(registry)` instead, or as well). */
export const handlers = [emailSend];
