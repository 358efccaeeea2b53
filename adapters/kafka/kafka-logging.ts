/**
 * kafkajs's log, through the process's Logger (a `logCreator`), at honest
 * levels. kafkajs logs every error response of the broker at ERROR, and a few
 * events of a healthy cluster among them: topics that exist already when the
 * scheduler creates its topics at start, a rebalance, a coordinator that is
 * not ready yet while the group starts, the consumer restarting itself. Those
 * are lowered (the line keeps kafkajs's level as `kafkaLevel`); real failures
 * (a broker unreachable, a consumer crash, a send that failed) keep theirs.
 * kafkajs's INFO lines narrate its clients' lifecycle (starting, joined the
 * group with these partitions, stopped): debug here, beside the scheduler's
 * own lines that say the same (`ats ready`, `ats: shutting down`). The
 * adapter knows the Logger port only, not the logging library.
 */
import { logLevel as KafkaLevel, type LogEntry, type logCreator } from 'kafkajs';
import type { Logger } from '../../engine/ports.js';
import { RepeatedLines } from '../../engine/repeated-lines.js';

export { REPEAT_WINDOW_MS } from '../../engine/repeated-lines.js';

export type LineLevel = 'debug' | 'info' | 'warn' | 'error';

const BY_KAFKA_LEVEL: Readonly<Record<number, LineLevel>> = Object.freeze({
  [KafkaLevel.ERROR]: 'error',
  [KafkaLevel.WARN]: 'warn',
  [KafkaLevel.INFO]: 'debug',
  [KafkaLevel.DEBUG]: 'debug',
});

/**
 * Known-normal events, by what kafkajs says (its message, and/or the broker's
 * error it reports: a rule matches when all its patterns do), and the level
 * they deserve.
 */
const NORMAL: ReadonlyArray<{ level: LineLevel; message?: RegExp; error?: RegExp; why: string }> = [
  // The broker's answer to createTopics when a topic exists (every start after the first); kafkajs
  // logs one summary for all the topics of the request, whatever their errors. The outcome is
  // createTopics' own: it resolves false when every topic exists, and rejects otherwise, which the
  // event log logs as an error (`kafka: creating a topic failed`, with each topic's error) and throws.
  { level: 'debug', message: /^Response CreateTopics\(/, error: /^Topic creation errors$/, why: 'createTopics on existing topics' },
  { level: 'debug', error: /^Topic with this name already exists/, why: 'createTopics on an existing topic' },
  // A member joined or left: the group re-balances, and kafkajs re-joins by itself.
  { level: 'info', message: /^The group is rebalancing, re-joining/, why: 'rebalance' },
  { level: 'debug', error: /^The group is rebalancing, so a rejoin is needed/, why: 'rebalance (a broker response)' },
  // The group's coordinator is starting, moving or loading (e.g. the offsets topic being created on a
  // fresh broker): retried by kafkajs; if it lasts, the consumer crashes, and that line stays an error.
  { level: 'info', error: /^The group coordinator is not available/, why: 'coordinator not ready' },
  { level: 'info', error: /^This is not the correct coordinator for this group/, why: 'coordinator moved' },
  { level: 'info', error: /^The coordinator is loading/, why: 'coordinator loading' },
  // Leaders of a topic just created are being elected: retried until there are leaders.
  { level: 'debug', error: /^There is no leader for this topic-partition as we are in the middle of a leadership election/, why: 'leader election' },
  // A request reached a broker its metadata (just fetched, of a topic just created, or before a leader moved) named
  // as leader: kafkajs refreshes the metadata and retries; a request that still fails is its caller's error.
  { level: 'info', error: /^This server is not the leader for that topic-partition/, why: 'stale leader' },
  // A broker's answer about a topic just created, before the broker has loaded its partitions (on a fresh
  // broker, at the first start): kafkajs refreshes the metadata and retries. A topic really missing still
  // shows, in the caller's error (a send that failed, a consumer crash) and the repeated answers.
  { level: 'info', message: /^Response /, error: /^This server does not host this topic-partition/, why: 'topic not loaded yet' },
  // kafkajs restarts the consumer after a retriable crash (the crash itself is logged as an error).
  { level: 'info', message: /^Restarting the consumer in /, why: 'consumer restart' },
  // Said at every start: the producer's retries are bounded on purpose (kafka-log.ts, RECONNECT); the
  // outbox's at-least-once delivery, deduplicated by the outbox id, does not lean on kafkajs's exactly-once.
  { level: 'debug', message: /^Limiting retries for the idempotent producer may invalidate EoS guarantees/, why: 'bounded producer retries' },
  // The member's session lapsed (it was slow, or paused): kafkajs re-joins; worth a look, not an error.
  { level: 'warn', message: /^The coordinator is not aware of this member, re-joining the group/, why: 'member re-joins' },
];

/** The level an entry is logged at: kafkajs's own, lowered for the known-normal events above. */
export function kafkaEntryLevel(entry: LogEntry): LineLevel {
  const own = BY_KAFKA_LEVEL[entry.level] ?? 'info';
  const message = String(entry.log.message);
  const error = typeof entry.log.error === 'string' ? entry.log.error : '';
  for (const rule of NORMAL) {
    const hit = (!rule.message || rule.message.test(message)) && (!rule.error || rule.error.test(error));
    if (hit) return lower(own, rule.level);
  }
  return own;
}

const RANK: Readonly<Record<LineLevel, number>> = Object.freeze({ debug: 0, info: 1, warn: 2, error: 3 });
/** Never raises: a rule only lowers an entry kafkajs logged higher. */
const lower = (own: LineLevel, to: LineLevel): LineLevel => (RANK[to] < RANK[own] ? to : own);

/**
 * A kafkajs `logCreator` writing to `logger`: the message as the line's
 * message, kafkajs's namespace and extra fields as fields (`component:
 * 'kafkajs'`), at `kafkaEntryLevel`. While a broker is out of reach kafkajs
 * says the same few errors several times a second (each connection retry,
 * each request given up): a warning or error line (or an error lowered to
 * info) said again within a minute (same namespace, message, broker error,
 * broker and group) is written at debug, and the next one written at its level
 * after that minute carries `repeated`, how many like it were lowered
 * meanwhile. `now` is the clock of that minute; `repeats`, what was said in
 * it: one for all the clients of a log, which say the same of the same broker.
 */
export function kafkaLogCreator(logger: Logger, now: () => number = Date.now, repeats: RepeatedLines = new RepeatedLines(now)): logCreator {
  return () => (entry) => {
    let level = kafkaEntryLevel(entry);
    const { timestamp: _t, logger: _l, message, ...extra } = entry.log;
    const text = String(message);
    const fields: Record<string, unknown> = { component: 'kafkajs', ...(entry.namespace ? { namespace: entry.namespace } : {}), ...extra };
    // Also what kafkajs says as an error and is lowered to info (its consumer restarting, every few seconds while the broker is down).
    if (level === 'warn' || level === 'error' || (level === 'info' && (entry.level === KafkaLevel.ERROR || entry.level === KafkaLevel.WARN))) {
      // The broker and the group are fields, not in the text ('Connection timeout', 'Crash: ...'): another's is another line.
      const key = [entry.namespace, text, extra.error, extra.broker, extra.groupId].map((v) => (typeof v === 'string' ? v : '')).join('\u0000');
      const said = repeats.check(key);
      if (said.lower) level = 'debug';
      else if (said.repeated > 0) fields.repeated = said.repeated;
    }
    if (level !== BY_KAFKA_LEVEL[entry.level]) fields.kafkaLevel = entry.label;
    logger[level](text, fields);
  };
}
