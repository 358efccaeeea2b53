/** The handler registry (by job type) and the built-in demo handlers. */
import { setTimeout as delay } from 'node:timers/promises';
import { NonRetryableError } from './errors.js';
import type { Handler } from './ports.js';

export class HandlerRegistry {
  private readonly handlers = new Map<string, Handler>();

  register(type: string, handler: Handler): this {
    if (this.handlers.has(type)) throw new Error(`a handler for ${type} is already registered`);
    this.handlers.set(type, handler);
    return this;
  }

  get(type: string): Handler | undefined {
    return this.handlers.get(type);
  }

  types(): string[] {
    return [...this.handlers.keys()].sort();
  }
}

const obj = (p: unknown): Record<string, unknown> => (p && typeof p === 'object' ? (p as Record<string, unknown>) : {});

/** `demo.echo`: returns its payload. */
export const echo: Handler = async (payload) => payload;

/** `demo.sleep` `{ms}`: sleeps (abortable), then returns `{slept: ms}`. */
export const sleep: Handler = async (payload, ctx) => {
  const ms = Math.max(0, Math.min(Number(obj(payload).ms ?? 1000) || 0, 3_600_000));
  await delay(ms, undefined, { signal: ctx.signal });
  return { slept: ms };
};

/**
 * `demo.fail`: `{failTimes: n}` fails the first n attempts then succeeds;
 * `{always: true}` always fails; `{retryable: false}` fails without retries.
 */
export const fail: Handler = async (payload, ctx) => {
  const p = obj(payload);
  if (p.retryable === false) throw new NonRetryableError(`demo.fail: non-retryable failure on attempt ${ctx.attempt}`);
  if (p.always === true) throw new Error(`demo.fail: failure on attempt ${ctx.attempt}`);
  const failTimes = Number(p.failTimes ?? 1) || 0;
  if (ctx.attempt <= failTimes) throw new Error(`demo.fail: failure ${ctx.attempt} of ${failTimes}`);
  return { attempts: ctx.attempt };
};

export function registerDemoHandlers(registry: HandlerRegistry): HandlerRegistry {
  return registry.register('demo.echo', echo).register('demo.sleep', sleep).register('demo.fail', fail);
}
