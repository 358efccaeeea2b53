/**
 * What a handler threw, as a failed attempt records it: its message, name and
 * stack as text, within their bounds, whatever was thrown (an Error, a string,
 * `undefined`, a plain object, one with cycles or without a prototype, one
 * whose fields throw when read). Reading the thrown value never throws here.
 */
import { inspect, types } from 'node:util';
import { cutText } from '../machines/text.js';

/** Causes (`err.cause`, its cause, ...) a stack shows at most. */
const MAX_CAUSES = 4;

/** Inner errors of an AggregateError (`err.errors`) a message and a stack show at most. */
const MAX_INNER = 4;

/**
 * `value` as text: a string as it is, anything else as Node shows it
 * (`{ code: 'E_RATE', status: 429 }`, cycles marked `[Circular *1]`), with
 * its strings, arrays and depth bounded so that a huge value costs little.
 */
export function textOf(value: unknown, max: number): string {
  if (typeof value === 'string') return cutText(value, max);
  try {
    return cutText(inspect(value, { depth: 4, breakLength: Infinity, maxArrayLength: 20, maxStringLength: max, compact: true }), max);
  } catch {
    return `a thrown ${typeof value} that cannot be shown as text`;
  }
}

/**
 * `value instanceof ctor`, false when the check throws (a revoked proxy, or
 * one whose `getPrototypeOf` trap throws, makes `instanceof` throw).
 */
export function isInstance(value: unknown, ctor: abstract new (...args: never[]) => unknown): boolean {
  try {
    return value instanceof ctor;
  } catch {
    return false;
  }
}

/** `value[key]` of a thrown value, or undefined when it has no fields or reading one throws (a getter, a revoked proxy). */
export function thrownField(value: unknown, key: 'message' | 'name' | 'stack' | 'cause' | 'code' | 'errors'): unknown {
  const read = readThrownField(value, key);
  return 'value' in read ? read.value : undefined;
}

/** `value[key]` of a thrown value (undefined when it has no fields), or what reading it threw (a getter, a revoked proxy). */
function readThrownField(value: unknown, key: 'message' | 'name' | 'stack' | 'cause' | 'code' | 'errors'): { value: unknown } | { threw: unknown } {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return { value: undefined };
  try {
    return { value: (value as Record<string, unknown>)[key] };
  } catch (err) {
    return { threw: err };
  }
}

/** A value thrown while reading a thrown value, as text: `Name: message` for an Error-like one, else as `textOf` shows it. */
function reasonText(value: unknown, max: number): string {
  const message = thrownField(value, 'message');
  if (typeof message !== 'string') return textOf(value, max);
  const name = thrownField(value, 'name');
  return cutText(typeof name === 'string' && name ? `${name}: ${message}` : message, max);
}

/**
 * The inner errors of an AggregateError (what `Promise.any` and
 * `Promise.allSettled`-style helpers reject with, and Node's connect when it
 * tried every address of a host: `AggregateError [ECONNREFUSED]` with an
 * empty message), the first `MAX_INNER` of them; none for anything else.
 */
function innerErrors(e: unknown): unknown[] {
  const errors = thrownField(e, 'errors');
  try {
    if (!Array.isArray(errors)) return [];
    // Copied by hand into an array of ours: `slice` copies with the array's own species, which may make no array.
    const inner: unknown[] = [];
    for (let i = 0; i < Math.min(errors.length, MAX_INNER); i++) inner.push(errors[i]);
    return inner;
  } catch {
    return []; // a proxy whose traps throw, an element whose getter throws
  }
}

/** One inner error's message, as text within `max`. */
function innerMessage(inner: unknown, max: number): string {
  return textOf(thrownField(inner, 'message') ?? inner, max);
}

/**
 * An error's message for a log line: its own, or, for an AggregateError
 * without one (Node's connect to a host whose every address refused), its
 * first inner errors' messages, `; `-joined. Never throws.
 */
export function messageOf(e: Error, max = Infinity): string {
  const message = thrownField(e, 'message');
  const inner = message === '' ? innerErrors(e) : [];
  if (inner.length > 0) return inner.map((i) => innerMessage(i, max)).join('; ');
  return typeof message === 'string' ? message : textOf(message, max);
}

/**
 * The thrown value's message (its `message` when it has one, else the value
 * itself as text), its name (when it has one), and its stack followed by the
 * stacks of its causes (`Caused by: ...`, as `new Error(msg, { cause })`
 * and Node's `fetch failed` carry the reason), each cut to its bound. An
 * AggregateError's inner errors follow its stack (`[errors[0]] ...`), and
 * their messages make its message when it has none of its own.
 */
export function describeThrown(e: unknown, max: { message: number; name: number; stack: number }): { message: string; name?: string; stack?: string } {
  const read = readThrownField(e, 'message');
  const message = 'value' in read ? read.value : undefined;
  const name = thrownField(e, 'name');
  const inner = innerErrors(e);
  const own = message === '' && inner.length > 0 ? inner.map((i) => innerMessage(i, max.message)).join('; ') : message;
  // A message getter that throws: what it threw says more than the value as text (an Error's stack, which
  // V8 builds from its message, cannot be read then either). Not a proxy's: a revoked one shows as `<Revoked Proxy>`.
  const out: { message: string; name?: string; stack?: string } = {
    message: 'threw' in read && !types.isProxy(e)
      ? cutText(`its message could not be read: ${reasonText(read.threw, max.message)}`, max.message)
      : textOf(own ?? e, max.message),
  };
  if (name !== undefined) out.name = textOf(name, max.name);
  let stack = thrownField(e, 'stack');
  let text = typeof stack === 'string' && stack ? stack : '';
  const heading = () => text || `${out.name ?? 'Error'}: ${out.message}`;
  for (const [i, error] of inner.entries()) {
    if (text.length >= max.stack) break;
    const innerStack = thrownField(error, 'stack');
    text = `${heading()}\n[errors[${i}]] ${typeof innerStack === 'string' && innerStack ? innerStack : innerMessage(error, max.message)}`;
  }
  const seen = new Set<unknown>([e]);
  let cause = thrownField(e, 'cause');
  for (let n = 0; n < MAX_CAUSES && cause !== undefined && !seen.has(cause) && text.length < max.stack; n++) {
    seen.add(cause);
    stack = thrownField(cause, 'stack');
    const causeText = typeof stack === 'string' && stack ? stack : textOf(thrownField(cause, 'message') ?? cause, max.message);
    text = `${heading()}\nCaused by: ${causeText}`;
    cause = thrownField(cause, 'cause');
  }
  if (text) out.stack = cutText(text, max.stack);
  return out;
}
