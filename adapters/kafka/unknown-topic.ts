/** Whether kafkajs's `error` (or an error it wraps) is UNKNOWN_TOPIC_OR_PARTITION: the topic is gone (or has fewer partitions). */
export function isUnknownTopic(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 4) return false;
  const e = error as { type?: unknown; originalError?: unknown; cause?: unknown; errors?: unknown };
  if (e.type === 'UNKNOWN_TOPIC_OR_PARTITION') return true;
  const inner = [e.originalError, e.cause, ...(Array.isArray(e.errors) ? e.errors.slice(0, 16) : [])];
  return inner.some((i) => isUnknownTopic(i, depth + 1));
}
