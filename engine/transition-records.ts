/**
 * Transitions on `ats.events`, packed: the transition messages of one publish
 * whose jobs map to the same partition go as one record,
 * `{"transitions":[...]}` (header `ats-kind: transitions`), instead of a
 * record each. The log's cost is mostly per record (kafkajs encodes, hashes
 * and checksums each; the broker indexes each), and a job's life is four or
 * five transitions: packed, a relay batch of 500 messages goes out as a few
 * records per partition instead of hundreds.
 *
 * What a consumer relies on still holds: each transition is the message it
 * was (the JSON text stored in the outbox, unparsed), a job's transitions stay
 * on the partition its id maps to (the record is keyed by the id of its first
 * transition, and every job in it maps to the same partition), and in the
 * order they committed. A record published again after a relay crash may
 * hold more transitions than the first time, so consumers dedupe transitions
 * by `(jobId, seq)`, not by the record's `ats-outbox-id` (its first
 * transition's).
 *
 * `ATS_EVENTS_FORMAT=single` publishes a record per transition instead
 * (`ats-kind: transition`); nothing else changes.
 */
import {
  CONTENT_TYPE, KIND_HEADER, SCHEMA_HEADER, SCHEMA_VERSION, TRANSITION_KIND, TRANSITIONS_KIND, type TransitionMessage, type TransitionsMessage,
} from './messages.js';
import { OUTBOX_ID_HEADER, TOPICS, type ConsumeOptions, type EventLog, type LogMessage, type LogRecord, type Subscription } from './ports.js';

/** How transitions go to `ats.events`: packed per partition (the default), or a record each. */
export const EVENTS_FORMATS = ['batch', 'single'] as const;
export type EventsFormat = (typeof EVENTS_FORMATS)[number];

/**
 * A packed record stops growing at about this many characters of JSON (a
 * transition longer than that goes alone): well under Kafka's default
 * 1 MiB `message.max.bytes`.
 */
export const MAX_PACKED_CHARS = 256 * 1024;

const PREFIX = '{"transitions":[';
const SUFFIX = ']}';

const isTransition = (m: LogMessage): boolean => m.topic === TOPICS.events && m.headers[KIND_HEADER] === TRANSITION_KIND;

interface Pack {
  first: LogMessage;
  values: string[];
  chars: number;
}

function packed(p: Pack): LogMessage {
  const headers: Record<string, string> = {
    'content-type': CONTENT_TYPE, [KIND_HEADER]: TRANSITIONS_KIND, [SCHEMA_HEADER]: String(SCHEMA_VERSION),
  };
  const id = p.first.headers[OUTBOX_ID_HEADER];
  if (id !== undefined) headers[OUTBOX_ID_HEADER] = id;
  return { topic: TOPICS.events, key: p.first.key, value: PREFIX + p.values.join(',') + SUFFIX, headers };
}

/**
 * `messages` with their transitions packed: one record per partition of
 * `ats.events` (more when one would pass `maxChars`), in the place of its
 * first transition; every other message as it was, in its place. Pure.
 */
export function packTransitions(
  messages: readonly LogMessage[], partitionOf: (key: string) => number, maxChars = MAX_PACKED_CHARS,
): LogMessage[] {
  const out: Array<LogMessage | Pack> = [];
  const open = new Map<number, Pack>();
  for (const m of messages) {
    if (!isTransition(m)) {
      out.push(m);
      continue;
    }
    const partition = partitionOf(m.key);
    const pack = open.get(partition);
    if (pack && pack.chars + m.value.length + 1 <= maxChars) {
      pack.values.push(m.value);
      pack.chars += m.value.length + 1;
      continue;
    }
    const fresh: Pack = { first: m, values: [m.value], chars: PREFIX.length + SUFFIX.length + m.value.length };
    open.set(partition, fresh);
    out.push(fresh);
  }
  return out.map((x) => ('values' in x ? packed(x) : x));
}

/**
 * The transitions a record of `ats.events` carries: its one transition, or
 * every transition of a packed record; none for another kind (a consumer
 * skips what it does not know).
 */
export function transitionsOf(record: Pick<LogRecord, 'value' | 'headers'>): TransitionMessage[] {
  const kind = record.headers[KIND_HEADER];
  if (kind === TRANSITION_KIND) return [JSON.parse(record.value) as TransitionMessage];
  if (kind === TRANSITIONS_KIND) return (JSON.parse(record.value) as TransitionsMessage).transitions;
  return [];
}

/**
 * A log that publishes transitions packed ({@link packTransitions}); all
 * else goes to `base` as it is.
 */
export class PackingLog implements EventLog {
  constructor(private readonly base: EventLog, private readonly maxChars = MAX_PACKED_CHARS) {}

  ensureTopics(): Promise<void> {
    return this.base.ensureTopics();
  }

  async publish(messages: LogMessage[]): Promise<void> {
    if (!messages.some(isTransition)) return this.base.publish(messages);
    const partitionOf = await this.base.partitioner(TOPICS.events);
    return this.base.publish(packTransitions(messages, partitionOf, this.maxChars));
  }

  partitioner(topic: string): Promise<(key: string) => number> {
    return this.base.partitioner(topic);
  }

  consume(options: ConsumeOptions): Promise<Subscription> {
    return this.base.consume(options);
  }

  unreadBefore(topic: string, groupId: string, before: number): Promise<ReadonlySet<number>> {
    return this.base.unreadBefore(topic, groupId, before);
  }

  listTopics(): Promise<string[]> {
    return this.base.listTopics();
  }

  ping(): Promise<void> {
    return this.base.ping();
  }

  close(): Promise<void> {
    return this.base.close();
  }
}

/** The log the engine publishes through for `format`. */
export const logForFormat = (log: EventLog, format: EventsFormat): EventLog => (format === 'batch' ? new PackingLog(log) : log);
