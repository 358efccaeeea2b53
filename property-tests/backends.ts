/**
 * The two speeds the same commands run at: the embedded adapters (SQLite in
 * memory, the in-process log), and the real MariaDB and Kafka broker. Either
 * way the simulated clock drives the engine's time; only the I/O differs.
 */
import { createKafkaLog } from '../adapters/kafka/index.js';
import { createMemoryLog, type MemoryLog } from '../adapters/memory/index.js';
import { createMysqlStore, type MysqlStore } from '../adapters/mysql/index.js';
import { createSqliteStore } from '../adapters/sqlite/index.js';
import { MESSAGE_ID_FACTOR } from '../adapters/sql/outbox.js';
import type { Clock, EventLog, JobStore, LimitStore } from '../engine/ports.js';
import { deleteTopicsWithPrefix, kafkaBrokers, randomTopicPrefix, requireKafka } from '../tests/helpers/kafka.js';
import { createTestDatabase, requireMysql, type TestDatabase } from '../tests/helpers/mysql.js';

/** One outbox row, as the final checks read it. */
export interface OutboxState {
  id: number;
  topic: string;
  /** The relay deleted it (it does once the log acked it; `PUBLISHED_LEDGER` remembers it). */
  published: boolean;
  /** The `ats-outbox-id` of each message the row holds (adapters/sql/outbox.ts). */
  messageIds: string[];
}

/**
 * The relay deletes a row once the log acked it; to check that it never
 * deletes one the log did not ack, a trigger (test-only, both SQLite and
 * MariaDB) copies every deleted row's id into a ledger table.
 */
const PUBLISHED_LEDGER = 'prop_outbox_published';
const CREATE_LEDGER = `CREATE TABLE IF NOT EXISTS ${PUBLISHED_LEDGER} (id BIGINT NOT NULL PRIMARY KEY, topic VARCHAR(64) NOT NULL, message_count INT NULL)`;
const LEDGER_TRIGGER = (body: string) =>
  `CREATE TRIGGER IF NOT EXISTS prop_outbox_deleted AFTER DELETE ON outbox FOR EACH ROW ${body}`;
const LEDGER_INSERT = `INSERT INTO ${PUBLISHED_LEDGER} (id, topic, message_count) VALUES (OLD.id, OLD.topic, OLD.message_count)`;
const SELECT_OUTBOX_STATES = `SELECT id, topic, message_count, 0 AS published FROM outbox
  UNION ALL SELECT id, topic, message_count, 1 AS published FROM ${PUBLISHED_LEDGER} ORDER BY id`;

/**
 * Every write of `job_events` (an insert, and a heartbeat coalesced into its
 * row by an update), copied in write order by test-only triggers: the limits'
 * checks (invariants.ts) replay the leases each claim saw from it, heartbeats
 * the final history no longer shows included.
 */
const EVENT_LEDGER = 'prop_event_ledger';
const LEDGER_COLUMNS = 'job_id, seq, type, to_state, at, data';
const EVENT_LEDGER_TABLE = (autoKey: string) => `CREATE TABLE IF NOT EXISTS ${EVENT_LEDGER} (n ${autoKey}, job_id VARCHAR(64) NOT NULL,
  seq INT NOT NULL, type VARCHAR(32) NOT NULL, to_state VARCHAR(16) NOT NULL, at BIGINT NOT NULL, data LONGTEXT NOT NULL)`;
const EVENT_TRIGGERS = (wrap: (sql: string) => string) => (['INSERT', 'UPDATE'] as const).map((op) =>
  `CREATE TRIGGER IF NOT EXISTS prop_event_${op.toLowerCase()} AFTER ${op} ON job_events FOR EACH ROW ${wrap(
    `INSERT INTO ${EVENT_LEDGER} (${LEDGER_COLUMNS}) VALUES (NEW.job_id, NEW.seq, NEW.type, NEW.to_state, NEW.at, NEW.data)`)}`);
/**
 * Every write of `limits` too, into the same ledger (so in one order with the
 * claims, which lock the limit row they count under): `LIMIT_PUT` with the
 * key (in `job_id`), its concurrency and rate, and the write's time (a claim's
 * move of the rate state writes one too, its limit unchanged); `LIMIT_DELETE`.
 * `json` builds the row's data (SQLite and MariaDB spell it alike).
 */
const LIMIT_TRIGGERS = (wrap: (sql: string) => string) => [
  ...(['INSERT', 'UPDATE'] as const).map((op) =>
    `CREATE TRIGGER IF NOT EXISTS prop_limit_${op.toLowerCase()} AFTER ${op} ON limits FOR EACH ROW ${wrap(
      `INSERT INTO ${EVENT_LEDGER} (${LEDGER_COLUMNS}) VALUES (NEW.limit_key, 0, 'LIMIT_PUT', '', NEW.updated_at,
        JSON_OBJECT('concurrency', NEW.concurrency, 'max', NEW.rate_max, 'intervalMs', NEW.rate_interval_ms))`)}`),
  `CREATE TRIGGER IF NOT EXISTS prop_limit_delete AFTER DELETE ON limits FOR EACH ROW ${wrap(
    `INSERT INTO ${EVENT_LEDGER} (${LEDGER_COLUMNS}) VALUES (OLD.limit_key, 0, 'LIMIT_DELETE', '', OLD.updated_at, '{}')`)}`,
];
const SELECT_LEDGER = `SELECT n, ${LEDGER_COLUMNS} FROM ${EVENT_LEDGER} WHERE n > ? ORDER BY n`;
const LEDGER_HEAD = `SELECT COALESCE(MAX(n), 0) AS n FROM ${EVENT_LEDGER}`;

/** One write of an event row (or of a limit: `LIMIT_PUT`, `LIMIT_DELETE`, the key in `jobId`), as the ledger copied it. */
export interface LedgerRow {
  n: number;
  jobId: string;
  seq: number;
  type: string;
  to: string;
  at: number;
  data: Record<string, unknown>;
}

const toLedger = (rows: Array<Record<string, unknown>>): LedgerRow[] => rows.map((r) => ({
  n: Number(r.n), jobId: String(r.job_id), seq: Number(r.seq), type: String(r.type), to: String(r.to_state), at: Number(r.at),
  data: JSON.parse(String(r.data)) as Record<string, unknown>,
}));

const toStates = (rows: Array<Record<string, unknown>>): OutboxState[] =>
  rows.map((r) => {
    const id = Number(r.id);
    const messageIds = r.message_count == null
      ? [String(id)]
      : Array.from({ length: Number(r.message_count) }, (_, i) => String(id * MESSAGE_ID_FACTOR + i));
    return { id, topic: String(r.topic), published: Number(r.published) === 1, messageIds };
  });

/** The adapters of one run. */
export interface RunBackend {
  store: JobStore & LimitStore;
  log: EventLog;
  /** The in-process log's hooks (fast speed only). */
  memory: MemoryLog | null;
  /** A prefix making this run's job ids unique on a shared database. */
  idPrefix: string;
  /** Real time the test may wait for I/O to settle before it calls the run stuck. */
  settleTimeoutMs: number;
  /** Real time after which a dispatch no worker handled, with nothing else in flight, counts as lost. */
  lostAfterMs: number;
  outbox(): Promise<OutboxState[]>;
  /** The event ledger's writes after the `after`th, in write order. */
  eventLedger(after: number): Promise<LedgerRow[]>;
  /**
   * The event ledger's last write so far, where the store runs one transaction
   * at a time and whole (SQLite: a transaction is one synchronous call), so
   * that a call's transactions fall between its heads before and after; null on
   * a store whose transactions overlap (MariaDB), whose ledger order a refused
   * claim cannot be placed in.
   */
  ledgerHead: (() => number) | null;
  close(): Promise<void>;
}

export interface Backend {
  name: 'fast' | 'real';
  /** Suite-level setup (a database, a broker check); false means skip (allowed only outside CI). */
  setUp(): Promise<boolean>;
  open(clock: Clock): Promise<RunBackend>;
  tearDown(): Promise<void>;
}

/** SQLite in memory and the in-process log: a fresh pair per run, nothing shared. */
export function fastBackend(): Backend {
  return {
    name: 'fast',
    setUp: async () => true,
    async open(clock) {
      const store = createSqliteStore({ file: ':memory:', clock });
      await store.migrate();
      store.db.exec(CREATE_LEDGER);
      store.db.exec(LEDGER_TRIGGER(`BEGIN ${LEDGER_INSERT}; END`));
      store.db.exec(EVENT_LEDGER_TABLE('INTEGER PRIMARY KEY AUTOINCREMENT'));
      for (const trigger of [...EVENT_TRIGGERS((sql) => `BEGIN ${sql}; END`), ...LIMIT_TRIGGERS((sql) => `BEGIN ${sql}; END`)]) store.db.exec(trigger);
      const ledger = store.db.prepare(SELECT_LEDGER);
      const head = store.db.prepare(LEDGER_HEAD);
      const memory = createMemoryLog({ partitions: 3, redeliveryDelayMs: 0 });
      await memory.ensureTopics();
      return {
        store, log: memory, memory, idPrefix: '', settleTimeoutMs: 10_000, lostAfterMs: 0,
        outbox: async () => toStates(store.db.prepare(SELECT_OUTBOX_STATES).all() as Array<Record<string, unknown>>),
        eventLedger: async (after) => toLedger(ledger.all(after) as Array<Record<string, unknown>>),
        ledgerHead: () => Number((head.get() as { n: number }).n),
        close: async () => {
          await memory.close();
          await store.close();
        },
      };
    },
    tearDown: async () => undefined,
  };
}

/**
 * The real MariaDB (one database for the suite, emptied before each run) and
 * the real Kafka broker (topics of their own per run, deleted when the run ends).
 */
export function realBackend(): Backend {
  let db: TestDatabase | null = null;
  const suitePrefix = randomTopicPrefix();
  let runs = 0;
  return {
    name: 'real',
    async setUp() {
      if (!(await requireMysql()) || !(await requireKafka())) return false;
      db = await createTestDatabase();
      return true;
    },
    async open(clock) {
      const n = ++runs;
      const store = await createMysqlStore({ url: db!.url, poolSize: 6, clock });
      await store.migrate();
      await store.pool.query(CREATE_LEDGER);
      await store.pool.query(LEDGER_TRIGGER(LEDGER_INSERT));
      await store.pool.query(EVENT_LEDGER_TABLE('BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY'));
      for (const trigger of [...EVENT_TRIGGERS((sql) => sql), ...LIMIT_TRIGGERS((sql) => sql)]) await store.pool.query(trigger);
      await emptyTables(store);
      const log = createKafkaLog({
        brokers: kafkaBrokers(), topicPrefix: `${suitePrefix}r${n}.`, partitions: 3, clientId: `prop-r${n}`, logLevel: 'nothing',
        consumer: { sessionTimeoutMs: 6000, heartbeatIntervalMs: 300, rebalanceTimeoutMs: 3000, maxWaitTimeMs: 50, redeliveryDelayMs: 20 },
      });
      await log.ensureTopics();
      return {
        store, log, memory: null, idPrefix: `r${n}-`, settleTimeoutMs: 60_000, lostAfterMs: 20_000,
        outbox: async () => toStates((await store.pool.query(SELECT_OUTBOX_STATES))[0] as Array<Record<string, unknown>>),
        eventLedger: async (after) => toLedger((await store.pool.query(SELECT_LEDGER, [after]))[0] as Array<Record<string, unknown>>),
        ledgerHead: null,
        close: async () => {
          await log.close();
          await store.close();
          // Each run's topics go with it: a broker left with every run's partitions (a shrink makes
          // hundreds of runs) slowed each next run until the file ran out of time.
          await deleteTopicsWithPrefix(`${suitePrefix}r${n}.`).catch(() => undefined);
        },
      };
    },
    async tearDown() {
      await db?.drop();
      await deleteTopicsWithPrefix(suitePrefix).catch(() => undefined);
    },
  };
}

/** Each run starts from empty tables (the schema stays). */
async function emptyTables(store: MysqlStore): Promise<void> {
  for (const table of ['job_events', 'outbox', 'jobs', 'limit_running', 'limits', PUBLISHED_LEDGER, EVENT_LEDGER]) await store.pool.query(`DELETE FROM ${table}`);
}
