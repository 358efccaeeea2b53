/**
 * The in-process event log: the `EventLog` port without a broker, for the
 * embedded mode (`npm start` with no server) and for tests.
 *
 * It keeps Kafka's delivery contract, because the engine is written against it:
 * topics of N partitions, key → partition by a stable hash (per-key order),
 * consumer groups (members split the partitions; every group sees every
 * message), positions committed per group and partition only after `handle`
 * resolved, and redelivery of whatever was not committed. Messages live in
 * memory only: a restart loses them (the outbox and the timers repair that).
 *
 * One difference from Kafka, on purpose: a group's "latest" start position is
 * fixed when its first member subscribes (as if committed), where Kafka
 * re-resolves "latest" for every consumer session until a real commit.
 *
 * Retention: per topic partition, records below the lowest position
 * committed by the groups with members on that topic are dropped. Of the
 * records no such group still needs (a topic nobody consumes, a group whose
 * members all left), a partition keeps only its last `retainUnconsumed`
 * records and at most `retainUnconsumedBytes` of them, each record's size
 * counted once when it is published: a few large records (a transition
 * carrying a job's result) weigh as much as many small ones. A topic nothing
 * will read after the fact can keep none (`retainUnconsumedByTopic`).
 * What a group with members has not committed yet is never dropped: that is
 * its backlog, and it grows with it (the log has no backpressure of its own).
 * Offsets keep counting up (each partition has a base offset); a group that
 * joins later `fromBeginning`, or comes back behind what was dropped, starts
 * at the oldest record still retained, as Kafka resets to "earliest" after its
 * retention deleted a segment.
 */
import { ErrorBackoff, isTimerPause, OutageLog } from '../../engine/error-backoff.js';
import { AtsError } from '../../engine/errors.js';
import {
  TOPICS, type ConsumeOptions, type EventLog, type LogMessage, type LogRecord, type Logger, type Subscription,
} from '../../engine/ports.js';
import { partitionForKey } from './partition-for-key.js';

/** Options of {@link createMemoryLog}. */
export interface MemoryLogOptions {
  /** Partitions of every topic. @defaultValue 3 */
  partitions?: number;
  /**
   * Pause before records whose `handle` threw are delivered again, after the
   * first failure of a partition's `handle`; it doubles with each further
   * failure in a row, up to `maxRedeliveryDelayMs`, and is back to this after
   * a `handle` that resolved (or once the partition has a new member). 0: no
   * pause, ever (the next turn of the event loop). @defaultValue 20
   */
  redeliveryDelayMs?: number;
  /** The longest that pause grows to (at least `redeliveryDelayMs`). @defaultValue 5000 */
  maxRedeliveryDelayMs?: number;
  /** Most records given to one `handle` call. @defaultValue 500 */
  maxBatch?: number;
  /** Told about every `handle` that threw (the records go out again). @defaultValue ignore */
  onHandleError?: (error: unknown, records: readonly LogRecord[]) => void;
  /**
   * Where a partition whose `handle` throws is logged (a warning): its first
   * redelivery, then at most one line a minute with the failures so far while
   * they go on, and the first `handle` that resolved after them. A failure
   * whose records are not delivered again by the same member (it left, the
   * log closed: a `handle` a stopping consumer broke off) is not logged.
   * @defaultValue none
   */
  logger?: Pick<Logger, 'error' | 'warn' | 'info'>;
  /** Records kept per partition of a topic no group with members consumes. @defaultValue 10000 */
  retainUnconsumed?: number;
  /**
   * Size those records may add up to per partition: the characters of their
   * keys, values and headers (bytes for ASCII text). @defaultValue 16 MiB
   */
  retainUnconsumedBytes?: number;
  /**
   * Per topic, in place of `retainUnconsumed` and `retainUnconsumedBytes`: e.g.
   * `{ records: 0 }` for a topic nothing will read after the fact, whose
   * records are then kept only for the groups with members already on it.
   */
  retainUnconsumedByTopic?: Readonly<Record<string, Partial<UnconsumedRetention>>>;
  /** Keep every record forever (tests that read the whole history with `messages`). @defaultValue false */
  retainAll?: boolean;
  /** The time a record is published at (epoch ms), which `unreadBefore` compares. @defaultValue Date.now */
  now?: () => number;
}

/** How much of a partition's records no group with members needs is kept (both bounds hold). */
export interface UnconsumedRetention {
  /** Most records. */
  records: number;
  /** Most characters of key, value and headers, summed over those records. */
  bytes: number;
}

/** Options of {@link MemoryLogHooks.drain}. */
export interface DrainOptions {
  /** Reject when not drained by then. @defaultValue 10000 */
  timeoutMs?: number;
}

/** Deterministic hooks for tests (property tests drive the log through these). */
export interface MemoryLogHooks {
  /**
   * Records published but not yet committed by `groupId` (or by every group,
   * summed), over the topics the group has subscribed to. Counts records of
   * partitions that currently have no consumer too.
   */
  pendingCount(groupId?: string): number;
  /**
   * Resolves once every partition that has a consumer is fully handled and
   * committed, and nothing is in flight or waiting for redelivery. A `handle`
   * that keeps throwing never drains: the promise rejects after `timeoutMs`.
   */
  drain(options?: DrainOptions): Promise<void>;
  /** Every retained record of `topic`, by partition then offset (copies); all of them with `retainAll`. */
  messages(topic: string): LogRecord[];
  /** Records of `topic` still held in memory (over every partition). */
  retainedCount(topic: string): number;
  /** Size of those records, as `retainUnconsumedBytes` counts it. */
  retainedBytes(topic: string): number;
}

/** The in-process log and its test hooks. */
export type MemoryLog = EventLog & MemoryLogHooks;

interface CompiledOptions {
  readonly partitions: number;
  readonly redeliveryDelayMs: number;
  readonly maxRedeliveryDelayMs: number;
  readonly maxBatch: number;
  readonly onHandleError: (error: unknown, records: readonly LogRecord[]) => void;
  readonly logger: Pick<Logger, 'error' | 'warn' | 'info'> | null;
  readonly retainAll: boolean;
  readonly now: () => number;
  /** The bound of `topic`'s unconsumed records. */
  readonly retentionOf: (topic: string) => UnconsumedRetention;
}

/** One `consume()` call: a member of its group for one topic. */
interface Member {
  readonly handle: ConsumeOptions['handle'];
  /** Deliveries in flight, so `stop()` can wait for them. */
  readonly running: Set<Promise<void>>;
}

/** One partition as one group sees it. */
interface Lane {
  owner: Member | null;
  /** A `handle` call is running: the partition is strictly serial. */
  busy: boolean;
  /** Waiting to redeliver after a failed `handle`: cancels that wait. */
  retryTimer: (() => void) | null;
  /** The pause before the next redelivery: grows with the failed `handle` calls in a row. */
  readonly backoff: ErrorBackoff;
  /** Those failures, logged sparingly (null without a logger). */
  readonly outage: OutageLog | null;
}

/** A group's view of one topic. */
interface Cursor {
  readonly topic: string;
  /** In join order; partition p belongs to members[p % members.length]. */
  readonly members: Member[];
  readonly lanes: Lane[];
  /** Per partition: the next offset to deliver = the committed position. */
  readonly positions: number[];
  /** The group committed on some partition of the topic. */
  committed: boolean;
}

/** Creates an empty in-process log. */
export function createMemoryLog(options: MemoryLogOptions = {}): MemoryLog {
  return new MemoryEventLog(compileOptions(options));
}

function compileOptions(raw: MemoryLogOptions): CompiledOptions {
  const opts = {
    partitions: 3, redeliveryDelayMs: 20, maxRedeliveryDelayMs: 5000, maxBatch: 500, onHandleError: () => {},
    logger: null as Pick<Logger, 'error' | 'warn' | 'info'> | null, retainAll: false, now: Date.now,
    retainUnconsumed: 10_000, retainUnconsumedBytes: 16 * 1024 * 1024, retainUnconsumedByTopic: {}, ...raw,
  };
  const positiveInt = (n: number) => Number.isInteger(n) && n > 0;
  const retention = (r: Partial<UnconsumedRetention>): UnconsumedRetention => Object.freeze({
    records: r.records ?? opts.retainUnconsumed, bytes: r.bytes ?? opts.retainUnconsumedBytes,
  });
  const fallback = retention({});
  const byTopic = new Map(Object.entries(opts.retainUnconsumedByTopic).map(([topic, r]) => [topic, retention(r)]));
  const valid = positiveInt(opts.partitions) && positiveInt(opts.maxBatch) && isTimerPause(opts.redeliveryDelayMs)
    && isTimerPause(opts.maxRedeliveryDelayMs) && [fallback, ...byTopic.values()].every(validRetention);
  if (!valid) {
    throw new AtsError('ATS_ERR_CONFIG', `invalid memory log options: ${JSON.stringify(raw)}`);
  }
  const { partitions, redeliveryDelayMs, maxBatch, onHandleError, retainAll, now } = opts;
  return Object.freeze({
    partitions, redeliveryDelayMs, maxBatch, onHandleError, retainAll, now, logger: opts.logger ?? null,
    maxRedeliveryDelayMs: Math.max(redeliveryDelayMs, opts.maxRedeliveryDelayMs),
    retentionOf: (topic: string) => byTopic.get(topic) ?? fallback,
  });
}

const validRetention = (r: UnconsumedRetention): boolean =>
  [r.records, r.bytes].every((n) => Number.isInteger(n) && n >= 0);

/** A record's weight for `retainUnconsumedBytes`: counted once, at publish (string lengths, no encoding). */
function sizeOf(m: LogMessage): number {
  let size = m.key.length + m.value.length;
  for (const name in m.headers) size += name.length + m.headers[name].length;
  return size;
}

const copyRecord = (r: LogRecord): LogRecord => ({ ...r, headers: { ...r.headers } });

class MemoryEventLog implements MemoryLog {
  private readonly topics = new Map<string, PartitionLog[]>();
  private readonly groups = new Map<string, Map<string, Cursor>>();
  private readonly waiters = new Set<() => void>();
  private kickScheduled = false;
  private closed = false;

  constructor(private readonly opts: CompiledOptions) {}

  async ensureTopics(): Promise<void> {
    this.assertOpen();
    for (const topic of Object.values(TOPICS)) this.partitionsOf(topic);
  }

  async publish(messages: LogMessage[]): Promise<void> {
    this.assertOpen();
    for (const m of messages) this.append(m);
    // Never deliver inside publish: the caller may hold locks or be mid-transaction.
    if (messages.length > 0) this.kick();
  }

  async partitioner(topic: string): Promise<(key: string) => number> {
    this.assertOpen();
    const partitions = this.partitionsOf(topic).length;
    return (key) => partitionForKey(key, partitions);
  }

  async consume(options: ConsumeOptions): Promise<Subscription> {
    this.assertOpen();
    // Joining takes no time here: only a subscribing given up before it began is refused.
    options.signal?.throwIfAborted();
    const cursor = this.cursorOf(options.groupId, options.topic, options.fromBeginning ?? false);
    const member: Member = { handle: options.handle, running: new Set() };
    cursor.members.push(member);
    this.assign(cursor);
    this.kick();
    let stopped: Promise<void> | null = null;
    return { stop: () => (stopped ??= this.leave(cursor, member)) };
  }

  async unreadBefore(topic: string, groupId: string, before: number): Promise<ReadonlySet<number>> {
    this.assertOpen();
    const unread = new Set<number>();
    const cursor = this.groups.get(groupId)?.get(topic);
    // A group that committed nothing here tells nothing (as on Kafka).
    if (!cursor?.committed) return unread;
    // Records are pushed in time order per partition: the oldest one the group has not read tells.
    this.topics.get(topic)?.forEach((log, p) => {
      const at = log.publishedAt(Math.max(cursor.positions[p], log.base));
      if (at !== undefined && at <= before) unread.add(p);
    });
    return unread;
  }

  async listTopics(): Promise<string[]> {
    this.assertOpen();
    return [...this.topics.keys()];
  }

  async ping(): Promise<void> {
    this.assertOpen();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const members: Member[] = [];
    for (const cursor of this.allCursors()) {
      for (const lane of cursor.lanes) this.clearRetry(lane);
      members.push(...cursor.members.splice(0));
      this.assign(cursor);
    }
    await Promise.allSettled(members.flatMap((m) => [...m.running]));
    this.notify();
  }

  pendingCount(groupId?: string): number {
    let pending = 0;
    for (const [id, cursors] of this.groups) {
      if (groupId !== undefined && id !== groupId) continue;
      for (const c of cursors.values()) {
        this.partitionsOf(c.topic).forEach((log, p) => { pending += log.end - Math.max(c.positions[p], log.base); });
      }
    }
    return pending;
  }

  async drain({ timeoutMs = 10_000 }: DrainOptions = {}): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.idle()) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`memory log not drained after ${timeoutMs} ms: ${this.pendingCount()} records pending`);
      }
      await this.nextChange(left);
    }
  }

  messages(topic: string): LogRecord[] {
    return (this.topics.get(topic) ?? []).flatMap((log) => log.all()).map(copyRecord);
  }

  retainedCount(topic: string): number {
    return (this.topics.get(topic) ?? []).reduce((n, log) => n + log.size, 0);
  }

  retainedBytes(topic: string): number {
    return (this.topics.get(topic) ?? []).reduce((n, log) => n + log.bytes, 0);
  }

  // ------------------------------------------------------------ storage

  private partitionsOf(topic: string): PartitionLog[] {
    let partitions = this.topics.get(topic);
    if (!partitions) {
      const retention = this.opts.retentionOf(topic);
      partitions = Array.from({ length: this.opts.partitions }, () => new PartitionLog(retention));
      this.topics.set(topic, partitions);
    }
    return partitions;
  }

  private append(m: LogMessage): void {
    const partition = partitionForKey(m.key, this.opts.partitions);
    const log = this.partitionsOf(m.topic)[partition];
    log.push(Object.freeze({
      topic: m.topic, partition, offset: String(log.end), key: m.key, value: m.value, headers: { ...m.headers },
    }), sizeOf(m), this.opts.now());
    // Cheap when nothing is due: a consumed partition is trimmed on commit, this catches the unconsumed tail.
    if (log.overRetention()) this.trim(m.topic, partition);
  }

  /**
   * Drop the records of a partition that no group needs: below the lowest
   * position of the groups with members, and, for groups without members (or
   * none at all), beyond the tail the partition's retention keeps.
   */
  private trim(topic: string, p: number): void {
    if (this.opts.retainAll) return;
    const log = this.partitionsOf(topic)[p];
    const tail = log.tailStart();
    let active = Infinity;
    let idle = Infinity;
    for (const cursors of this.groups.values()) {
      const c = cursors.get(topic);
      if (!c) continue;
      if (c.members.length > 0) active = Math.min(active, c.positions[p]);
      else idle = Math.min(idle, c.positions[p]);
    }
    // A group without members holds back only the tail; no group at all: the tail is all there is to keep.
    const floor = Math.min(active, idle === Infinity ? Infinity : Math.max(idle, tail));
    log.dropBefore(floor === Infinity ? tail : floor);
  }

  // ------------------------------------------------------------ groups

  private cursorOf(groupId: string, topic: string, fromBeginning: boolean): Cursor {
    let cursors = this.groups.get(groupId);
    if (!cursors) this.groups.set(groupId, (cursors = new Map()));
    let cursor = cursors.get(topic);
    if (!cursor) {
      const logs = this.partitionsOf(topic);
      cursor = {
        topic,
        members: [],
        lanes: logs.map((_, p) => ({
          owner: null, busy: false, retryTimer: null,
          backoff: new ErrorBackoff(this.opts.redeliveryDelayMs, this.opts.maxRedeliveryDelayMs),
          outage: this.opts.logger
            ? new OutageLog(this.opts.logger, `in-process log: handle of ${topic} partition ${p} (group ${groupId})`, { level: 'warn' })
            : null,
        })),
        positions: logs.map((log) => (fromBeginning ? log.base : log.end)),
        committed: false,
      };
      cursors.set(topic, cursor);
    }
    return cursor;
  }

  /**
   * Round-robin partitions over the members; a lane mid-`handle` switches
   * owner when that call ends. A lane with a new owner starts afresh, as a
   * Kafka partition does after a rebalance: no pause left over from the
   * failures of the member before (the caller kicks).
   */
  private assign(cursor: Cursor): void {
    const { members } = cursor;
    cursor.lanes.forEach((lane, p) => {
      const owner = members.length > 0 ? members[p % members.length] : null;
      if (owner === lane.owner) return;
      lane.owner = owner;
      lane.backoff.succeeded();
      this.clearRetry(lane);
    });
  }

  private async leave(cursor: Cursor, member: Member): Promise<void> {
    const i = cursor.members.indexOf(member);
    if (i >= 0) {
      cursor.members.splice(i, 1);
      this.assign(cursor);
      this.kick();
    }
    await Promise.allSettled([...member.running]);
    this.notify();
  }

  private *allCursors(): Iterable<Cursor> {
    for (const cursors of this.groups.values()) yield* cursors.values();
  }

  // ------------------------------------------------------------ delivery

  /** Schedule one delivery pass on a later macrotask (coalesced). */
  private kick(): void {
    if (this.kickScheduled || this.closed) return;
    this.kickScheduled = true;
    setImmediate(() => this.pumpAll());
  }

  private pumpAll(): void {
    this.kickScheduled = false;
    for (const cursor of this.allCursors()) {
      cursor.lanes.forEach((_, p) => this.pump(cursor, p));
    }
    this.notify();
  }

  private pump(cursor: Cursor, p: number): void {
    const lane = cursor.lanes[p];
    if (this.closed || lane.busy || lane.retryTimer || !lane.owner) return;
    const log = this.partitionsOf(cursor.topic)[p];
    // Behind what retention dropped (a group back after leaving): go on from the oldest record still there.
    const from = (cursor.positions[p] = Math.max(cursor.positions[p], log.base));
    const batch = log.slice(from, this.opts.maxBatch);
    if (batch.length > 0) this.deliver(cursor, p, lane.owner, batch, log.end - from - batch.length);
  }

  private deliver(cursor: Cursor, p: number, owner: Member, batch: LogRecord[], behind: number): void {
    const lane = cursor.lanes[p];
    lane.busy = true;
    const run = runHandle(owner, batch, behind, this.opts.onHandleError).then((ok) => {
      lane.busy = false;
      if (ok === true) {
        lane.backoff.succeeded();
        lane.outage?.succeeded();
        this.commit(cursor, p, Number(batch[batch.length - 1].offset) + 1);
      } else if (cursor.members.includes(owner)) {
        const delayMs = lane.backoff.failed();
        // Logged as the records go out again: not when the member left meanwhile (a stop broke the handle off).
        const logIt = () => lane.outage?.failed(ok.error, Date.now(), { offset: batch[0].offset, redeliveryDelayMs: delayMs });
        this.scheduleRetry(lane, delayMs, logIt);
      }
      // Otherwise the member left while its handle ran (a stop broke it off): nothing is logged, and the
      // lane's next owner, if any, gets the records at once, not after a pause of the member before.
      owner.running.delete(run);
      this.kick();
      this.notify();
    });
    owner.running.add(run);
  }

  private commit(cursor: Cursor, p: number, next: number): void {
    // Monotonic, like a Kafka commit that can only move forward for us here.
    cursor.positions[p] = Math.max(cursor.positions[p], next);
    cursor.committed = true;
    this.trim(cursor.topic, p);
  }

  /** Nothing was committed: the same records (from the committed position) go out again after `delayMs`, `then` first. */
  private scheduleRetry(lane: Lane, delayMs: number, then: () => void): void {
    if (this.closed) return;
    const retry = () => {
      lane.retryTimer = null;
      then();
      this.kick();
      this.notify();
    };
    // No delay: the next turn of the event loop, in order with everything else queued (tests stay deterministic).
    if (delayMs === 0) {
      const immediate = setImmediate(retry);
      lane.retryTimer = () => clearImmediate(immediate);
    } else {
      const timer = setTimeout(retry, delayMs);
      lane.retryTimer = () => clearTimeout(timer);
    }
  }

  private clearRetry(lane: Lane): void {
    lane.retryTimer?.();
    lane.retryTimer = null;
  }

  // ------------------------------------------------------------ drain

  private idle(): boolean {
    if (this.kickScheduled) return false;
    for (const c of this.allCursors()) {
      if (c.members.length === 0) continue;
      const logs = this.partitionsOf(c.topic);
      const quiet = c.lanes.every((lane, p) => !lane.busy && !lane.retryTimer && c.positions[p] >= logs[p].end);
      if (!quiet) return false;
    }
    return true;
  }

  private nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private assertOpen(): void {
    if (this.closed) throw new AtsError('ATS_ERR_NOT_READY', 'The in-process event log is closed');
  }
}

/**
 * One partition's records from its base offset on. Dropped records leave
 * holes at the front of the array, compacted once they are half of it (so a
 * trim costs O(1) amortized, not a shift of the whole array).
 */
class PartitionLog {
  private records: Array<LogRecord | undefined> = [];
  /**
   * Beside `records`: the size of every record ever pushed up to and
   * including this one, so the size of any run of records is a difference
   * and the byte-bounded tail a binary search.
   */
  private sizesThrough: number[] = [];
  /** Beside `records`: when each was published (epoch ms). */
  private times: number[] = [];
  /** Index in `records` of the record at `base`. */
  private head = 0;
  /** Offset of the oldest retained record (= `end` when none is). */
  base = 0;
  /** Size of every record ever pushed, and of those dropped. */
  private pushedBytes = 0;
  private droppedBytes = 0;

  constructor(private readonly retention: UnconsumedRetention) {}

  /** Size of the records retained. */
  get bytes(): number {
    return this.pushedBytes - this.droppedBytes;
  }

  /** The next offset to be written. */
  get end(): number {
    return this.base + this.size;
  }

  get size(): number {
    return this.records.length - this.head;
  }

  push(record: LogRecord, size: number, at: number): void {
    this.records.push(record);
    this.sizesThrough.push((this.pushedBytes += size));
    this.times.push(at);
  }

  /** When the record at `offset` was published; undefined when it is not retained. */
  publishedAt(offset: number): number | undefined {
    return offset >= this.base && offset < this.end ? this.times[this.head + offset - this.base] : undefined;
  }

  /** More is retained than the partition keeps of what no group with members needs. */
  overRetention(): boolean {
    return this.size > this.retention.records || this.bytes > this.retention.bytes;
  }

  /** The oldest offset of the tail kept of what no group with members needs: within both bounds. */
  tailStart(): number {
    let lo = Math.max(this.base, this.end - this.retention.records);
    // The first record from which the rest fits in `bytes`: sizes only grow along the array, so bisect.
    let hi = this.end;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.pushedBytes - this.sizeBefore(mid) <= this.retention.bytes) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Size of every record ever pushed below `offset` (at least `base`). */
  private sizeBefore(offset: number): number {
    return offset === this.base ? this.droppedBytes : this.sizesThrough[this.head + offset - this.base - 1];
  }

  /** Up to `max` records from offset `from` (at least `base`). */
  slice(from: number, max: number): LogRecord[] {
    const start = this.head + Math.max(0, from - this.base);
    return this.records.slice(start, start + max) as LogRecord[];
  }

  all(): LogRecord[] {
    return this.records.slice(this.head) as LogRecord[];
  }

  /** Forget the records below `offset`. */
  dropBefore(offset: number): void {
    const n = Math.min(offset, this.end) - this.base;
    if (!(n > 0)) return;
    this.droppedBytes = this.sizesThrough[this.head + n - 1];
    this.records.fill(undefined, this.head, this.head + n);
    this.head += n;
    this.base += n;
    if (this.head >= 1024 && this.head * 2 >= this.records.length) {
      this.records = this.records.slice(this.head);
      this.sizesThrough = this.sizesThrough.slice(this.head);
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }
}

/** True when `handle` resolved; a throw (sync or async) means "deliver again", and is returned. */
async function runHandle(
  owner: Member, batch: LogRecord[], behind: number, onError: CompiledOptions['onHandleError'],
): Promise<true | { error: unknown }> {
  try {
    await owner.handle(batch.map(copyRecord), { behind });
    return true;
  } catch (error) {
    try {
      onError(error, batch);
    } catch {
      // A throwing observer must not wedge the partition (it would stay busy forever).
    }
    return { error };
  }
}
