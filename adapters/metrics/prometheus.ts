/**
 * The metrics port (engine/metrics.ts) on prom-client: one Registry per
 * process (never prom-client's global one, so several systems in one test
 * process keep apart), rendered in Prometheus' text format by `/metrics`.
 *
 * Hot path: each hook finds its label set's entry in Maps keyed by label
 * value (nested, so no key string is built). The per-transition counters
 * (`ats_transitions_total`, `ats_attempts_total`) are plain numbers there,
 * handed to prom-client when Prometheus scrapes (`collect`); histograms
 * observe through pre-bound prom-client children. Nothing is allocated per
 * job once a label set has been seen.
 *
 * Label cardinality: no job ids anywhere. `type` and `queue` come from users,
 * so each passes through a `LabelCap` (the first `labelCap` distinct values,
 * then `(other)`), and every metric with both labels (`ats_jobs` too) labels a
 * pair through one table: the first `pairCap` pairs, then ((other), (other)).
 * Every other label has a fixed set of values (states, events, outcomes,
 * store operations, partitions of our topics; the API's route templates,
 * methods and statuses: see `httpResponded`).
 *
 * Point-in-time values (jobs per state, the outbox, consumer lag, worker
 * slots, stream clients) are read when Prometheus scrapes, through `watch*`
 * sources; those that cost a query are cached for `refreshMs`, so scrapes
 * from several Prometheus servers do not multiply the queries.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type CounterConfiguration } from 'prom-client';
import type { AdvisorDeps } from '../../engine/advisor/advisor.js';
import type { ConflictReason, Metrics, StoreOp } from '../../engine/metrics.js';
import type { Clock, JobCount, JobRecord, JobStore, Logger, OutboxBacklog, TransitionWrite } from '../../engine/ports.js';
import { getOrMake, LabelCap, OTHER } from './labels.js';

/** Lag of one consumer group on one partition. */
export interface ConsumerLag {
  group: string;
  topic: string;
  partition: number;
  /** Messages the group has not consumed yet: the partition's end offset minus the group's committed offset. */
  lag: number;
}

export interface PrometheusOptions {
  /** Distinct values of the `type` label, and of the `queue` label, before `(other)`. @defaultValue 100 */
  labelCap?: number;
  /** Distinct (type, queue) pairs labelled by name before a new pair is ((other), (other)). @defaultValue 2 × labelCap */
  pairCap?: number;
  /** How long a queried value (job counts, outbox, consumer lag) is served from cache. @defaultValue 5000 */
  refreshMs?: number;
  /** prom-client's default metrics (event-loop lag, GC, heap, CPU, handles). @defaultValue true */
  defaultMetrics?: boolean;
  /** Where a failed collection (a query that threw) is logged. */
  logger?: Logger;
}

/** Outcomes of an attempt, as `ats_attempts_total{outcome}` counts them. */
export type AttemptOutcome = 'succeeded' | 'failed' | 'timed_out' | 'lease_lost' | 'cancelled';

const S = (ms: number): number => ms / 1000;

/** The `route` of `ats_http_responses_total` for requests no route matched (their URL is the caller's to choose). */
export const UNMATCHED_ROUTE = 'unmatched';
/** The `method` values of `ats_http_responses_total`; any other is OTHER_METHOD. */
const HTTP_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
/** The `method` of a request whose method is not one of HTTP_METHODS (methods are upper case: none is this). */
const OTHER_METHOD = 'other';

/** Seconds: 5 ms up to an hour (a queue can back up for long). */
const WAIT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/** Seconds: 1 ms up to an hour (handlers range from echoes to long jobs). */
const RUN_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/** Seconds: backoffs run from 100 ms to hours. */
const RETRY_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];
/** Seconds: a Kafka ack takes a few ms; a broker outage, seconds. */
const PUBLISH_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Rows: one up to the largest ATS_RELAY_BATCH. */
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
/** Seconds: SQLite commits in well under a ms, MySQL in a few; the relay's holds the publish. */
const TX_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

type CounterChild = ReturnType<Counter<string>['labels']>;
type HistogramChild = ReturnType<Histogram<string>['labels']>;

/** A count kept by the hooks, read by `collect` at scrape time. */
interface Tally {
  n: number;
}

/** The counts and children of one (type, queue) label pair, made as they are first needed. */
interface Scope {
  type: string;
  queue: string;
  /** event → from → to → count */
  transitions: Map<string, Map<string, Map<string, Tally>>>;
  attempts: Map<AttemptOutcome, Tally>;
  queueWait?: HistogramChild;
  run?: HistogramChild;
  retryDelay?: HistogramChild;
}

/**
 * The longest a scrape waits for a scrape-time read (a store query, Kafka's admin API). A store
 * that stopped answering (a frozen host, a partition) holds a query until the store's own query
 * timeout (ATS_MYSQL_QUERY_TIMEOUT_MS, 60 s by default), while Prometheus gives up on a scrape
 * after 10 s by default: waiting for the read would lose every metric of the process, the
 * collect-errors counter that shows the outage included. Healthy reads take milliseconds.
 */
export const SCRAPE_READ_WAIT_MS = 2500;

/** One read of a `Cached` value, and the wait of the scrape(s) asking for it. */
interface Read<T> {
  at: number;
  value: Promise<T>;
  settled: boolean;
  /** What the scrape asking now waits on: the value, or a failure once the read has had SCRAPE_READ_WAIT_MS. */
  wait: Promise<T> | null;
}

/**
 * A value read at most once per `ttlMs`. Readers share a read in flight
 * (whatever `ttlMs`: the collects of one scrape ask together), so a read that
 * fails is told to `failed` once however many asked; it is not kept. A read
 * still running after SCRAPE_READ_WAIT_MS is told to `failed` too, and the
 * scrape goes on without it. It is not started again while it runs: the next
 * scrape waits for it again (and, if it has still not answered, tells `failed`
 * again).
 */
class Cached<T> {
  private last: Read<T> | null = null;
  constructor(
    private readonly read: () => Promise<T>, private readonly clock: Pick<Clock, 'now'>, private readonly ttlMs: number,
    private readonly failed: (err: unknown) => void,
  ) {}

  get(): Promise<T> {
    const now = this.clock.now();
    let last = this.last;
    if (!last || (last.settled && now - last.at >= this.ttlMs)) last = this.start(now);
    return last.settled ? last.value : (last.wait ??= this.waitFor(last));
  }

  private start(now: number): Read<T> {
    // A read that throws rather than rejects is a failed read too.
    const value = new Promise<T>((resolve) => resolve(this.read()));
    const entry: Read<T> = { at: now, value, settled: false, wait: null };
    this.last = entry;
    value.then(() => {
      entry.settled = true;
    }, () => {
      entry.settled = true;
      if (this.last === entry) this.last = null;
    });
    return entry;
  }

  /** The read's value, or its failure, or a failure once it has run SCRAPE_READ_WAIT_MS longer: told to `failed` once. */
  private waitFor(entry: Read<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let over = false;
      const timer = setTimeout(() => {
        over = true;
        entry.wait = null; // the next scrape waits again for the same read
        const err = new Error(`no answer within ${SCRAPE_READ_WAIT_MS} ms (the read goes on; the scrape did not wait for it)`);
        this.failed(err);
        reject(err);
      }, SCRAPE_READ_WAIT_MS);
      timer.unref();
      entry.value.then((v) => {
        clearTimeout(timer);
        resolve(v);
      }, (err: unknown) => {
        clearTimeout(timer);
        if (over) return; // this scrape already counted it, as not answering
        this.failed(err);
        reject(err);
      });
    });
  }
}

/** What the advisor reports (engine/advisor/advisor.ts). */
export type AdvisorHooks = Required<Pick<AdvisorDeps, 'onAnomaly' | 'onDecision'>>;

export class PrometheusMetrics implements Metrics {
  readonly registry = new Registry();
  readonly types: LabelCap;
  readonly queues: LabelCap;
  private readonly refreshMs: number;
  private readonly logger: Logger | undefined;
  private readonly scopes = new Map<string, Map<string, Scope>>();
  /** (type, queue) pairs labelled by name so far; beyond `pairCap`, a new pair is (OTHER, OTHER). */
  private pairs = 0;
  private readonly pairCap: number;

  private readonly queueWait: Histogram<string>;
  private readonly runTime: Histogram<string>;
  private readonly retryDelay: Histogram<string>;
  private readonly relayPublish: Histogram;
  private readonly relayBatch: Histogram;
  private readonly relayFailures: Counter;
  private readonly httpResponses: Counter<string>;
  /** route → method → status → child: found without building a key string. */
  private readonly httpBy = new Map<string, Map<string, Map<number, CounterChild>>>();
  private readonly dbTx: Histogram<string>;
  private readonly dbTxByOp = new Map<StoreOp, HistogramChild>();
  private readonly dbConflicts: Counter<string>;
  private readonly dbConflictsBy = new Map<string, CounterChild>();
  private readonly slowConsumers: Counter;
  private readonly collectErrors: Counter<string>;
  /** The scrape-time reads (`watch*`): the errors counter waits for them (SCRAPE_READ_WAIT_MS at most), to count the failures of its own scrape. */
  private readonly reads: Cached<unknown>[] = [];

  constructor(opts: PrometheusOptions = {}) {
    const cap = opts.labelCap ?? 100;
    this.types = new LabelCap(cap);
    this.queues = new LabelCap(cap);
    this.pairCap = opts.pairCap ?? 2 * cap;
    this.refreshMs = opts.refreshMs ?? 5000;
    this.logger = opts.logger;
    const registers = [this.registry];
    const counter = <L extends string>(c: Omit<CounterConfiguration<L>, 'registers'>) => new Counter<L>({ ...c, registers });

    const scopes = this.scopes;
    counter({
      name: 'ats_transitions_total',
      help: 'Job transitions committed by this process, per edge of the job machine (from="none" for the submit), job type and queue',
      labelNames: ['from', 'to', 'event', 'type', 'queue'],
      collect() {
        this.reset();
        for (const byQueue of scopes.values()) {
          for (const scope of byQueue.values()) {
            for (const [event, byFrom] of scope.transitions) {
              for (const [from, byTo] of byFrom) {
                for (const [to, t] of byTo) this.inc({ from, to, event, type: scope.type, queue: scope.queue }, t.n);
              }
            }
          }
        }
      },
    });
    counter({
      name: 'ats_attempts_total',
      help: 'Attempts that ended, by outcome: succeeded, failed, timed_out (the job\'s timeout ended it), lease_lost, cancelled (counted where the outcome was committed)',
      labelNames: ['type', 'queue', 'outcome'],
      collect() {
        this.reset();
        for (const byQueue of scopes.values()) {
          for (const scope of byQueue.values()) {
            for (const [outcome, t] of scope.attempts) this.inc({ type: scope.type, queue: scope.queue, outcome }, t.n);
          }
        }
      },
    });
    this.queueWait = new Histogram({
      name: 'ats_job_queue_wait_seconds', registers, buckets: WAIT_BUCKETS, labelNames: ['type', 'queue'],
      help: 'From when an attempt was due (submit, runAt, retry due or redrive) to its STARTED',
    });
    this.runTime = new Histogram({
      name: 'ats_job_run_seconds', registers, buckets: RUN_BUCKETS, labelNames: ['type', 'queue'],
      help: 'How long handlers ran in this worker, from start to outcome (success, failure, timeout or abandonment)',
    });
    this.retryDelay = new Histogram({
      name: 'ats_job_retry_delay_seconds', registers, buckets: RETRY_BUCKETS, labelNames: ['type', 'queue'],
      help: 'From a failed attempt (FAILED or LEASE_EXPIRED) to its retry\'s redispatch (RETRY_DUE)',
    });
    this.relayPublish = new Histogram({
      name: 'ats_relay_publish_seconds', registers, buckets: PUBLISH_BUCKETS,
      help: 'How long the log (Kafka) took to acknowledge one relay batch',
    });
    this.relayBatch = new Histogram({
      name: 'ats_relay_batch_size', registers, buckets: BATCH_BUCKETS,
      help: 'Outbox rows per batch the relay published',
    });
    this.relayFailures = counter({
      name: 'ats_relay_publish_failures_total',
      help: 'Relay batches that did not go out: the log refused them, or had not acknowledged them when the relay gave up at stop (their rows stay in the outbox and are published again)',
    });
    this.httpResponses = counter({
      name: 'ats_http_responses_total', labelNames: ['method', 'route', 'status'],
      help: 'Responses of the API, per method, route template (route="unmatched" when no route matched) and status code',
    });
    this.dbTx = new Histogram({
      name: 'ats_db_transaction_seconds', registers, buckets: TX_BUCKETS, labelNames: ['op'],
      help: 'Store write transactions that committed, from the first statement to the COMMIT, per operation (insert, update, delete, purge, relay)',
    });
    this.dbConflicts = counter({
      name: 'ats_db_conflicts_total',
      help: 'Store transactions that lost a race and ran again: compare-and-set on a job row failed (version_conflict), deadlock or lock_wait_timeout',
      labelNames: ['op', 'reason'],
    });
    this.slowConsumers = counter({ name: 'ats_stream_slow_consumers_total', help: 'WebSocket clients closed for falling behind (close code 4000)' });
    const reads = this.reads;
    this.collectErrors = counter({
      name: 'ats_metrics_collect_errors_total', labelNames: ['source'],
      help: `Reads for a scrape that failed or did not answer within ${S(SCRAPE_READ_WAIT_MS)} s, per source (ats_jobs and the consumer lag then export nothing, the outbox gauges their last values)`,
      // Collected before the gauges that read: it starts (or joins) their reads and waits (bounded, like theirs),
      // so a failure shows in the scrape it failed.
      async collect() {
        await Promise.allSettled(reads.map((r) => r.get()));
      },
    });
    const types = this.types;
    const queues = this.queues;
    new Gauge({
      name: 'ats_label_values', registers, labelNames: ['label'],
      help: 'Distinct values of the user-chosen labels seen so far (values past the cap are exported as "(other)")',
      collect() {
        this.set({ label: 'type' }, types.size);
        this.set({ label: 'queue' }, queues.size);
      },
    });
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The text for `/metrics`. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // ------------------------------------------------------------ hooks (hot path)

  transitionsCommitted(writes: readonly TransitionWrite[], before: readonly (JobRecord | null)[]): void {
    for (let i = 0; i < writes.length; i++) {
      const { job, event } = writes[i]!;
      const scope = this.scope(job.type, job.queue);
      this.transitionTally(scope, event.type, event.from ?? 'none', event.to).n++;
      const prev = before[i];
      switch (event.type) {
        case 'STARTED':
          // Due at its runAt, or at its submit for a runAt in the past (a retry's and a redrive's come later still).
          if (prev) (scope.queueWait ??= this.queueWait.labels(scope.type, scope.queue)).observe(S(Math.max(0, event.at - Math.max(prev.snapshot.context.runAt, prev.createdAt))));
          break;
        case 'RETRY_DUE':
          // In `retrying` the last transition (updatedAt) is the failure.
          if (prev) (scope.retryDelay ??= this.retryDelay.labels(scope.type, scope.queue)).observe(S(Math.max(0, event.at - prev.updatedAt)));
          break;
        case 'SUCCEEDED':
          this.attempt(scope, 'succeeded');
          break;
        case 'FAILED': {
          // timed_out: the job's own timeout ended it (the worker says so), not a handler's error named TimeoutError.
          const error = (event.data as unknown as { error?: { timedOut?: unknown } }).error;
          this.attempt(scope, error?.timedOut === true ? 'timed_out' : 'failed');
          break;
        }
        case 'LEASE_EXPIRED':
          this.attempt(scope, 'lease_lost');
          break;
        case 'CANCEL':
          if (event.from === 'running') this.attempt(scope, 'cancelled');
          break;
        default:
          break;
      }
    }
  }

  attemptRan(type: string, queue: string, ms: number): void {
    const scope = this.scope(type, queue);
    (scope.run ??= this.runTime.labels(scope.type, scope.queue)).observe(S(Math.max(0, ms)));
  }

  relayPublished(rows: number, ms: number): void {
    this.relayBatch.observe(rows);
    this.relayPublish.observe(S(Math.max(0, ms)));
  }

  relayPublishFailed(): void {
    this.relayFailures.inc();
  }

  /**
   * Bounded labels: a route is one of the app's templates (fixed when it is
   * built; `unmatched` for every URL that matched none, whatever the URL), a
   * method one of HTTP_METHODS or `other` (Node's parser passes some thirty
   * others, WebDAV's among them), a status an integer from 100 to 599
   * (fastify refuses any other), in practice the dozen the error registry
   * and the routes answer.
   */
  httpResponded(method: string, route: string | null, status: number): void {
    const r = route ?? UNMATCHED_ROUTE;
    const m = HTTP_METHODS.has(method) ? method : OTHER_METHOD;
    const byMethod = getOrMake(this.httpBy, r, () => new Map<string, Map<number, CounterChild>>());
    const byStatus = getOrMake(byMethod, m, () => new Map<number, CounterChild>());
    getOrMake(byStatus, status, () => this.httpResponses.labels(m, r, String(status))).inc();
  }

  dbTransaction(op: StoreOp, ms: number): void {
    let child = this.dbTxByOp.get(op);
    if (!child) this.dbTxByOp.set(op, (child = this.dbTx.labels(op)));
    child.observe(S(ms));
  }

  dbConflict(op: StoreOp, reason: ConflictReason): void {
    const key = `${op} ${reason}`; // rare: a string per conflict is fine
    let child = this.dbConflictsBy.get(key);
    if (!child) this.dbConflictsBy.set(key, (child = this.dbConflicts.labels(op, reason)));
    child.inc();
  }

  streamSlowConsumer(): void {
    this.slowConsumers.inc();
  }

  private scope(type: string, queue: string): Scope {
    const t = this.types.value(type);
    const q = this.queues.value(queue);
    const found = this.scopes.get(t)?.get(q);
    if (found) return found;
    // Types and queues are capped apart; their pairs are capped too, or 100 × 100 of them would be 10,000 label sets.
    if (this.pairs >= this.pairCap) return this.newScope(OTHER, OTHER);
    this.pairs++;
    return this.newScope(t, q);
  }

  private newScope(t: string, q: string): Scope {
    let byQueue = this.scopes.get(t);
    if (!byQueue) this.scopes.set(t, (byQueue = new Map()));
    let scope = byQueue.get(q);
    if (!scope) byQueue.set(q, (scope = { type: t, queue: q, transitions: new Map(), attempts: new Map() }));
    return scope;
  }

  private transitionTally(scope: Scope, event: string, from: string, to: string): Tally {
    let byFrom = scope.transitions.get(event);
    if (!byFrom) scope.transitions.set(event, (byFrom = new Map()));
    let byTo = byFrom.get(from);
    if (!byTo) byFrom.set(from, (byTo = new Map()));
    let t = byTo.get(to);
    if (!t) byTo.set(to, (t = { n: 0 }));
    return t;
  }

  private attempt(scope: Scope, outcome: AttemptOutcome): void {
    let t = scope.attempts.get(outcome);
    if (!t) scope.attempts.set(outcome, (t = { n: 0 }));
    t.n++;
  }

  // ------------------------------------------------------------ scrape-time sources

  /** A read for a scrape that failed: counted and logged; `ats_jobs` and the lag then export nothing, the outbox gauges their last values. */
  private failed(source: string, err: unknown): void {
    this.collectErrors.inc({ source });
    this.logger?.warn('metrics: a read for the scrape failed', { source, err: err instanceof Error ? err.message : String(err) });
  }

  /** A scrape-time read of `source`, at most once per `refreshMs`; each read that fails is counted once. */
  private cached<T>(source: string, read: () => Promise<T>, clock: Pick<Clock, 'now'>): Cached<T> {
    const cached = new Cached<T>(read, clock, this.refreshMs, (err) => this.failed(source, err));
    this.reads.push(cached);
    return cached;
  }

  /**
   * Jobs per state, type and queue (`ats_jobs`) from the maintained counters
   * (`job_counts`), and the outbox backlog and its oldest row's age: store
   * reads, at most one each per `refreshMs`. Export them from one role only
   * (the composition root picks the api role): they are the same numbers in
   * every process.
   */
  watchStore(store: Pick<JobStore, 'jobCounts' | 'outboxBacklog'>, clock: Pick<Clock, 'now'>): void {
    const registers = [this.registry];
    const counts = this.cached<JobCount[]>('job_counts', () => store.jobCounts(), clock);
    const outbox = this.cached<OutboxBacklog>('outbox', () => store.outboxBacklog(), clock);
    const self = this;
    new Gauge({
      name: 'ats_jobs', registers, labelNames: ['state', 'type', 'queue'],
      help: 'Jobs in the store per state, type and queue (the maintained job_counts, read at most every few seconds)',
      async collect() {
        let rows: JobCount[];
        try {
          rows = await counts.get();
        } catch {
          this.reset(); // no stale counts: the series disappear, so absent() alerts can fire
          return; // counted by the read
        }
        // Summed per (type, queue) label pair, as the hooks label them: values past the label cap, and
        // pairs past the pair cap, fold into OTHER.
        const sums = new Map<string, Map<Scope, number>>();
        for (const c of rows) {
          const scope = self.scope(c.type, c.queue);
          let byScope = sums.get(c.state);
          if (!byScope) sums.set(c.state, (byScope = new Map()));
          byScope.set(scope, (byScope.get(scope) ?? 0) + c.n);
        }
        this.reset();
        for (const [state, byScope] of sums) {
          for (const [scope, n] of byScope) this.set({ state, type: scope.type, queue: scope.queue }, n);
        }
      },
    });
    let lastOutbox: OutboxBacklog = { rows: 0, messages: 0, oldestAt: null };
    // Both gauges share one read (`Cached`); a failed one is counted there, once.
    const readOutbox = async (): Promise<OutboxBacklog> => {
      try {
        lastOutbox = await outbox.get();
      } catch {
        // the gauges keep their last values
      }
      return lastOutbox;
    };
    new Gauge({
      name: 'ats_outbox_backlog', registers, help: 'Messages in the outbox the relay has not published yet',
      async collect() {
        this.set((await readOutbox()).messages);
      },
    });
    new Gauge({
      name: 'ats_outbox_oldest_age_seconds', registers, help: 'Age of the oldest unpublished outbox row (0 when the outbox is empty)',
      async collect() {
        const { oldestAt } = await readOutbox();
        this.set(oldestAt === null ? 0 : Math.max(0, S(clock.now() - oldestAt)));
      },
    });
  }

  /** Consumer lag per group, topic and partition, read at most once per `refreshMs`. */
  watchConsumerLag(read: () => Promise<ConsumerLag[]>, clock: Pick<Clock, 'now'>): void {
    const lag = this.cached<ConsumerLag[]>('kafka_lag', read, clock);
    new Gauge({
      name: 'ats_kafka_consumer_lag', registers: [this.registry], labelNames: ['group', 'topic', 'partition'],
      help: 'Messages a consumer group has not consumed yet, per partition (end offset minus committed offset)',
      async collect() {
        let rows: ConsumerLag[];
        try {
          rows = await lag.get();
        } catch {
          this.reset();
          return; // counted by the read
        }
        this.reset();
        for (const r of rows) this.set({ group: r.group, topic: r.topic, partition: String(r.partition) }, r.lag);
      },
    });
  }

  /** Handler slots of this process's worker, busy and free, and the handlers that hold theirs past their attempt's end. */
  watchWorker(worker: { slotUsage(): { busy: number; free: number; lingering: number } }): void {
    const registers = [this.registry];
    new Gauge({
      name: 'ats_worker_slots_busy', registers, help: 'Handler slots running a handler now',
      collect() {
        this.set(worker.slotUsage().busy);
      },
    });
    new Gauge({
      name: 'ats_worker_slots_free', registers, help: 'Handler slots free now',
      collect() {
        this.set(worker.slotUsage().free);
      },
    });
    new Gauge({
      name: 'ats_worker_handlers_lingering', registers,
      help: 'Handlers still running after their attempt was given up (timeout, cancel, lost lease, shutdown): each holds its slot until it returns',
      collect() {
        this.set(worker.slotUsage().lingering);
      },
    });
  }

  /** Cron schedules' ticks per outcome (engine/schedules.ts ScheduleRunner's `onTicks`), in the timers role. */
  scheduleTicks(): (outcome: 'submitted' | 'skipped' | 'missed', n: number) => void {
    const ticks = (this.ticks ??= new Counter<'outcome'>({
      name: 'ats_schedule_ticks_total', registers: [this.registry], labelNames: ['outcome'],
      help: 'Ticks of cron schedules: submitted (a job), skipped (its previous job still live), missed (catch-up)',
    }));
    return (outcome, n) => ticks.inc({ outcome }, n);
  }

  private ticks: Counter<'outcome'> | undefined;

  /**
   * The advisor's anomalies and decisions (engine/advisor/advisor.ts): wire
   * `advisorHooks()` into its deps. Decisions are counted per kind and whether
   * they were applied (enforce) or only advised.
   */
  advisorHooks(): AdvisorHooks {
    return (this.advisor ??= this.newAdvisorHooks());
  }

  private advisor: AdvisorHooks | undefined;

  private newAdvisorHooks(): AdvisorHooks {
    const anomalies = new Counter<string>({
      name: 'ats_advisor_anomalies_total', registers: [this.registry], labelNames: ['type', 'queue', 'metric'],
      help: 'Changes in a job type\'s failure rate (metric="failure-rate") or run time (metric="duration") the advisor detected',
    });
    const decisions = new Counter<string>({
      name: 'ats_advisor_decisions_total', registers: [this.registry], labelNames: ['decision', 'applied'],
      help: 'Advisor decisions: no-retry (a hopeless failure), retry-delay (a retry timed from observed recovery), lease (a claim with a learned lease); applied="false" in advise mode',
    });
    return {
      onAnomaly: (a) => {
        // Through the pair table like every metric with both labels: capping type and queue apart
        // would still allow labelCap² label sets.
        const scope = this.scope(a.type, a.queue);
        anomalies.inc({ type: scope.type, queue: scope.queue, metric: a.metric });
      },
      onDecision: (kind, applied) => decisions.inc({ decision: kind, applied: String(applied) }),
    };
  }

  /** WebSocket clients of this process's stream. */
  watchStream(stream: { clients(): number }): void {
    new Gauge({
      name: 'ats_stream_clients', registers: [this.registry], help: 'WebSocket stream clients connected now',
      collect() {
        this.set(stream.clients());
      },
    });
  }
}
