/**
 * What a value takes as stored JSON: its text and its UTF-8 bytes, or why JSON
 * cannot write it (a BigInt, a cycle, a replacer that refuses). `undefined`
 * (and a function or symbol at the top) is stored as `null`. Shared by the
 * bounds on what a job's result, a workflow's state and a workflow's input
 * may take; each caller words its own refusal.
 */
export function jsonSize(
  value: unknown, replacer?: (key: string, v: unknown) => unknown,
): { text: string; bytes: number } | { error: string } {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, replacer);
  } catch (err) {
    return { error: thrownReason(err) };
  }
  const stored = text ?? 'null';
  return { text: stored, bytes: Buffer.byteLength(stored) };
}

/**
 * Why JSON.stringify threw, as text: an Error's message, a thrown string as
 * it is, anything else as `threw <value>` (a `toJSON` or a getter may throw
 * `null`, `undefined`, or an object whose `message` getter throws). Never throws.
 */
function thrownReason(err: unknown): string {
  let message: unknown;
  try {
    message = (err as { message?: unknown } | null | undefined)?.message;
  } catch {
    message = undefined; // a getter that throws, a revoked proxy
  }
  if (typeof message === 'string') return message;
  if (typeof err === 'string') return err;
  try {
    return `a toJSON or a getter threw ${String(err)}`;
  } catch {
    return 'a toJSON or a getter threw a value that cannot be shown as text';
  }
}
