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
    return { error: (err as Error).message };
  }
  const stored = text ?? 'null';
  return { text: stored, bytes: Buffer.byteLength(stored) };
}
