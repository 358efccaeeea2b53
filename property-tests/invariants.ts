/**
 * The guarantees (docs/architecture.md, "Guarantees and the tests that check
 * them") as checks over a World: the cheap ones after every command (each
 * job's new events, read once, replayed incrementally through the machine),
 * all of them after the run has quiesced.
 *
 * A broken invariant throws `InvariantViolation` whose message names the
 * invariant, the job, and the job's history, so a shrunk counterexample
 * reads on its own.
 */
import { isTerminal, start, step, type PersistedJob } from '../machines/lifecycle.js';
import type { JobEvent, JobInput } from '../machines/job.machine.js';
import type { JobEventRecord } from '../engine/ports.js';
import { verifyJob } from '../engine/verify.js';
import type { LedgerRow } from './backends.js';
import { rateStep, type LimitSpec } from '../engine/limits.js';
import { SIM_EPOCH as SIM_EPOCH_MS } from './sim-clock.js';
import { describeLimit, type ClaimWindow, type World } from './world.js';
import { describeTransition } from './tracked-log.js';

export const INVARIANTS = Object.freeze({
  lost: 'I1 nothing accepted is lost (every job ends done, dead or cancelled)',
  atLeastOnce: 'I2 at-least-once (a done job\'s handler ran to success for the attempt recorded)',
  outcomeOnce: 'I3 each (job, attempt) outcome is recorded at most once',
  effectOnce: 'I4 the effect ledger holds exactly one entry per done job (at most one per job)',
  submitOnce: 'I5 a repeated submit with the same key returns the same job and never creates a second',
  history: 'I6 each job\'s events are gap-free, in order, valid, and replay to the stored state',
  attempts: 'I7 attempts never exceed maxAttempts (per run of attempts)',
  terminal: 'I8 terminal states change only by REDRIVE',
  outbox: 'I9 the outbox drains: every row is published',
  claimOnce: 'I10 each (job, attempt) is claimed and run at most once',
  stale: 'I11 a stale outcome (zombie worker) is rejected and writes nothing',
  userEvents: 'I12 CANCEL is accepted in every non-terminal state; REDRIVE only from dead or cancelled',
  wakeUps: 'I13 the relay\'s loop publishes every commit without waiting for its poll, and keeps no stale wake-ups',
  announced: 'I14 every recorded transition went out on ats.events, acknowledged by the log',
  limitConcurrency: 'I15 no claim starts an attempt of a key while as many attempts of it as its concurrency then, admitted by its limit, hold a lease that has not expired',
  limitRate: 'I16 each start of a rate-limited key is at least one step (ceil(intervalMs / max) ms, of the rate then) after the key\'s last start under a rate',
  limitLiveness: 'I17 a limit leaks no slot: a claim it refuses is over it (an attempt stops counting when its lease ends); every job of a limited key ends, and a new one then starts at once (within one rate step)',
});

export class InvariantViolation extends Error {
  constructor(invariant: string, detail: string) {
    super(`invariant broken: ${invariant}\n  ${detail}`);
    this.name = 'InvariantViolation';
  }
}

export function violated(invariant: string, detail: string): never {
  throw new InvariantViolation(invariant, detail);
}

const OUTCOMES = new Set(['SUCCEEDED', 'FAILED', 'LEASE_EXPIRED']);
/** Events fenced by the attempt: accepted only for the attempt the job holds. */
const FENCED = new Set(['HEARTBEAT', ...OUTCOMES]);
/** The states a REDRIVE may leave (I12). */
export const REDRIVABLE: ReadonlySet<string> = new Set(['dead', 'cancelled']);

/** What the incremental check knows of one job. */
interface Seen {
  seq: number;
  at: number;
  state: PersistedJob | null;
  history: string[];
  outcomes: Map<number, string[]>;
  starts: Map<number, number>;
  /**
   * Set while the last event checked is a HEARTBEAT: later heartbeats of the
   * attempt replace that row in place, so it is read and checked again, from
   * the state before it.
   */
  heartbeat: { before: PersistedJob; at: number; history: number } | null;
}

export function describeEvent(e: JobEventRecord): string {
  const d = e.data as { attempt?: number; workerId?: string };
  const args = [d.attempt, d.workerId].filter((x) => x !== undefined).join(',');
  return `${e.seq}:${e.type}${args ? `(${args})` : ''} ${e.from ?? '∅'}→${e.to}`;
}

/** A job as the event ledger has shown it so far: the lease its attempt holds, per the store's writes. */
interface LeaseView {
  key: string | null;
  state: string;
  attempt: number;
  leaseUntil: number;
  /** The attempt its key's limit admitted (a start while the key had one), until that limit is deleted. */
  admitted: number | null;
}

/** A key's limit as the ledger has shown it so far, and its last start under a rate that still spaces the next one. */
interface KeyLimit {
  spec: LimitSpec;
  /** Null when no start since the rate was set (or since it was lifted and set again): the next may go at once. */
  lastStart: { at: number; step: number } | null;
}

/** What the ledger showed of a key between a claim call's heads (`ClaimWindow`). */
interface WindowSeen {
  /** Attempts counted at some point of the window (admitted, running, a lease beyond the stamp). */
  counted: Set<string>;
  /** The lowest cap in force at a point of the window (Infinity: none had one). */
  cap: number;
  /** At some point the rate did not allow a start at the stamp yet. */
  rateWaits: boolean;
}

const sameSpec = (a: LimitSpec, b: LimitSpec) =>
  a.concurrency === b.concurrency && a.rate?.max === b.rate?.max && a.rate?.intervalMs === b.rate?.intervalMs;

export class InvariantChecker {
  private readonly seen = new Map<string, Seen>();
  /** The event ledger's writes read so far. */
  private ledgerRead = 0;
  private readonly leases = new Map<string, LeaseView>();
  /** Each key's limit, as the ledger replays the writes of `limits` (absent: the key has none). */
  private readonly keyLimits = new Map<string, KeyLimit>();
  /** Keys whose limit was deleted since an attempt of theirs started, which is not counted if a limit is set again. */
  private readonly deletedBeside = new Set<string>();
  /** The workers' claim calls still open (`World.claimWindows`), with what each saw per key. */
  private readonly windows: Array<{ w: ClaimWindow; seen: Map<string, WindowSeen> }> = [];
  /** The probes' claims (`checkSlotsFree`) are checked, not counted in the stats. */
  private probing = false;

  constructor(private readonly world: World) {}

  /** A job's history as checked so far, one line. */
  history(jobId: string): string {
    return `${jobId}: ${(this.seen.get(jobId)?.history ?? []).join(', ')}`;
  }

  /** Cheap checks after each command: the new events of every job, and the handler's own notes. */
  async afterCommand(): Promise<void> {
    const { world } = this;
    if (world.violations.length > 0) {
      const [first] = world.violations;
      violated(first!.startsWith('claim') ? INVARIANTS.claimOnce : INVARIANTS.history, first!);
    }
    for (const id of world.jobIds) await this.checkNewEvents(id);
    this.checkLedger(false);
    await this.checkLimits();
  }

  /**
   * I15, I16 and the refusals of I17 over the store's writes of events and of
   * limits since the last look, in the order it made them (the event ledger:
   * backends.ts; a claim locks its key's limit row, so its STARTED falls in
   * one order with the limit's changes). At each STARTED of a key with a
   * limit (a claim, at its stamp, the time the store counts leases at): the
   * attempts its limit admitted (started while it had one, since it was last
   * deleted: docs/limits.md, "What it does not do") that still run with a lease
   * (their STARTED's, or their last heartbeat's) beyond that time must number
   * fewer than the concurrency in force; a rated key's start must come at least
   * the rate's step (the rate's now) after its last start under a rate, unless
   * the rate was set anew since (docs/limits.md: a PUT that changes the rate
   * spaces the next start by the new rate from the last start; one without a
   * rate keeps no state).
   */
  private async checkLimits(): Promise<void> {
    const { world } = this;
    if (world.limits.size === 0) return;
    const rows = await world.backend.eventLedger(this.ledgerRead);
    this.observeWindows();
    for (const row of rows) {
      this.ledgerRead = row.n;
      if (row.type === 'LIMIT_PUT' || row.type === 'LIMIT_DELETE') {
        this.limitWritten(row);
      } else {
        let view = this.leases.get(row.jobId);
        if (!view) {
          const key = (await world.store.getJob(row.jobId))?.concurrencyKey ?? null;
          this.leases.set(row.jobId, (view = { key, state: row.to, attempt: 0, leaseUntil: 0, admitted: null }));
        }
        if (row.type === 'STARTED' && view.key !== null) this.checkClaim(row, view);
        view.state = row.to;
        if (row.type === 'STARTED') view.attempt = Number(row.data.attempt);
        if (row.type === 'STARTED' || row.type === 'HEARTBEAT') view.leaseUntil = Number(row.data.leaseUntil);
      }
      this.observeWindows();
    }
    this.closeWindows();
  }

  /** A key's limit set (created, or replaced: a claim's move of its rate state writes it unchanged) or deleted. */
  private limitWritten(row: LedgerRow): void {
    const key = row.jobId;
    const old = this.keyLimits.get(key);
    if (row.type === 'LIMIT_DELETE') {
      this.keyLimits.delete(key);
      // Its admitted attempts' rows go with it: a limit set again counts none of them.
      for (const v of this.leases.values()) {
        if (v.key !== key) continue;
        if (v.admitted !== null && v.state === 'running' && v.admitted === v.attempt) this.deletedBeside.add(key);
        v.admitted = null;
      }
      return;
    }
    const d = row.data as { concurrency: number | null; max: number | null; intervalMs: number | null };
    const spec: LimitSpec = { concurrency: d.concurrency, rate: d.max !== null && d.intervalMs !== null ? { max: d.max, intervalMs: d.intervalMs } : null };
    if (old && sameSpec(old.spec, spec)) return;
    const stats = this.probing ? null : this.world.stats;
    if (!old) {
      if (stats && this.deletedBeside.has(key) && [...this.leases.values()].some((v) => v.key === key && v.state === 'running' && v.leaseUntil > row.at)) {
        stats.limitsRecreatedBesideRunning++;
      }
      this.deletedBeside.delete(key);
      this.keyLimits.set(key, { spec, lastStart: null });
      return;
    }
    const lowered = spec.concurrency !== null && (old.spec.concurrency === null || spec.concurrency < old.spec.concurrency);
    // A pause (a cap of 0) of a key with none running does not count: at least one attempt must outlast the new cap.
    if (stats && lowered && this.holding(key, null, row.at).length >= Math.max(1, spec.concurrency!)) stats.capsLoweredBelowRunning++;
    // A rate changed keeps the key's last start (the next waits the new step from it); set or lifted, no state.
    this.keyLimits.set(key, { spec, lastStart: old.spec.rate && spec.rate ? old.lastStart : null });
  }

  /** The attempts of `key` its limit counts at `at`: admitted, running that attempt, their lease beyond `at`. */
  private holding(key: string, except: string | null, at: number): Array<[string, LeaseView]> {
    return [...this.leases].filter(([id, v]) => id !== except && v.key === key && v.state === 'running' && v.admitted === v.attempt && v.leaseUntil > at);
  }

  private checkClaim(row: LedgerRow, view: LeaseView): void {
    const { world } = this;
    const key = view.key!;
    const attempt = Number(row.data.attempt);
    const limit = this.keyLimits.get(key);
    view.admitted = limit ? attempt : null;
    if (!limit) return;
    const spec = limit.spec;
    const count = (stat: 'limitedStarts' | 'leaseFreedClaims' | 'capReached' | 'rateSpacedStarts' | 'rateChangedStarts') => { if (!this.probing) world.stats[stat]++; };
    count('limitedStarts');
    const at = (t: number) => `t+${t - SIM_EPOCH_MS}ms`;
    const others = [...this.leases].filter(([id, v]) => id !== row.jobId && v.key === key && v.state === 'running' && v.admitted === v.attempt);
    const holding = this.holding(key, row.jobId, row.at);
    if (others.length > holding.length) count('leaseFreedClaims');
    if (spec.concurrency !== null) {
      if (holding.length >= spec.concurrency) {
        violated(INVARIANTS.limitConcurrency, `${row.jobId} attempt ${attempt} of key ${key} (${describeLimit(spec)}) STARTED at ${at(row.at)} `
          + `while ${holding.length} of its attempts its limit admitted held a lease beyond it: ${holding.map(([id, v]) => `${id}#${v.attempt} until ${at(v.leaseUntil)}`).join(', ')}\n  `
          + [row.jobId, ...holding.map(([id]) => id)].map((id) => `history ${this.history(id)}`).join('\n  '));
      }
      if (spec.concurrency >= 2 && holding.length + 1 === spec.concurrency) count('capReached');
    }
    if (!spec.rate) return;
    const step = rateStep(spec.rate);
    const last = limit.lastStart;
    if (last) {
      const gap = row.at - last.at;
      if (gap < step) {
        violated(INVARIANTS.limitRate, `key ${key} (${describeLimit(spec)}): ${row.jobId} attempt ${attempt} STARTED at ${at(row.at)}, ${gap} ms after the key's last start `
          + `(at ${at(last.at)}${last.step === step ? '' : `, under a rate of a ${last.step} ms step`}), less than its step of ${step} ms\n  history ${this.history(row.jobId)}`);
      }
      if (gap === step) count('rateSpacedStarts');
      if (last.step !== step) count('rateChangedStarts');
    }
    limit.lastStart = { at: row.at, step };
  }

  /** The workers' claim calls the world placed since the last look (fast speed), each to be watched from its head before on. */
  private openWindows(): void {
    for (const w of this.world.claimWindows.splice(0)) this.windows.push({ w, seen: new Map() });
  }

  /** At the ledger's current point: what each open window's keys look like (a point its claims may have been decided at). */
  private observeWindows(): void {
    // A call that started meanwhile (even during this look's awaits) has its head before at or after every row read.
    this.openWindows();
    for (const { w, seen } of this.windows) {
      if (w.from > this.ledgerRead || (w.done && w.done.to < this.ledgerRead)) continue;
      for (const key of this.world.limits.keys()) {
        let s = seen.get(key);
        if (!s) seen.set(key, (s = { counted: new Set(), cap: Infinity, rateWaits: false }));
        const limit = this.keyLimits.get(key);
        if (!limit) continue;
        for (const [id] of this.holding(key, null, w.at)) s.counted.add(id);
        if (limit.spec.concurrency !== null) s.cap = Math.min(s.cap, limit.spec.concurrency);
        if (limit.spec.rate && limit.lastStart && limit.lastStart.at + rateStep(limit.spec.rate) > w.at) s.rateWaits = true;
      }
    }
  }

  /**
   * I17, the refusals: a claim the limit refused for concurrency had, at some
   * point of its call, as many attempts counted as the cap then (an attempt
   * whose lease is over counts no more: docs/limits.md, "Crashes and leases",
   * a dead worker's slot is free again within one lease); one refused for the
   * rate came, at some point of its call, before the rate allowed a start.
   */
  private closeWindows(): void {
    for (let i = this.windows.length - 1; i >= 0; i--) {
      const { w, seen } = this.windows[i]!;
      if (!w.done || w.done.to > this.ledgerRead) continue;
      this.windows.splice(i, 1);
      for (const r of w.done.refused) {
        if (!this.probing) this.world.stats.refusalsChecked++;
        const s = seen.get(r.key) ?? { counted: new Set<string>(), cap: Infinity, rateWaits: false };
        // A pause is a cap of 0 in force at some point of the call, whatever ran.
        const over = r.why === 'concurrency' ? s.counted.size >= s.cap : r.why === 'paused' ? s.cap === 0 : s.rateWaits;
        if (over) continue;
        const limit = this.keyLimits.get(r.key);
        const why = r.why === 'concurrency'
          ? `its concurrency (lowest cap during the call: ${s.cap === Infinity ? 'none' : s.cap}), while it counted at most ${s.counted.size} attempts with a lease beyond the stamp (${[...s.counted].join(', ') || 'none'})`
          : r.why === 'paused' ? `a pause, while its lowest cap during the call was ${s.cap === Infinity ? 'none' : s.cap}`
          : 'its rate, while the rate allowed a start at the stamp';
        const key = [...this.leases].filter(([, v]) => v.key === r.key).map(([id]) => id);
        violated(INVARIANTS.limitLiveness, `the limit of ${r.key} (now ${limit ? describeLimit(limit.spec) : 'none'}) refused the claim of ${r.jobId} at t+${w.at - SIM_EPOCH_MS}ms for ${why}\n  `
          + key.map((id) => `history ${this.history(id)}`).join('\n  '));
      }
    }
  }

  private async checkNewEvents(jobId: string): Promise<void> {
    let s = this.seen.get(jobId);
    if (!s) this.seen.set(jobId, (s = { seq: 0, at: 0, state: null, history: [], outcomes: new Map(), starts: new Map(), heartbeat: null }));
    const hb = s.heartbeat;
    const events = await this.world.store.getEvents(jobId, hb ? s.seq - 1 : s.seq);
    if (hb) {
      const again = events[0];
      if (!again || again.seq !== s.seq || again.type !== 'HEARTBEAT') {
        violated(INVARIANTS.history, `job ${jobId}: heartbeat seq ${s.seq} is now ${again ? `${again.seq}:${again.type}` : 'gone'}\n  history ${this.history(jobId)}`);
      }
      // Check the (possibly coalesced) heartbeat again, as if first seen now.
      s.state = hb.before;
      s.seq -= 1;
      const at = s.at;
      s.at = hb.at;
      s.history.length = hb.history;
      if (again.at < at) violated(INVARIANTS.history, `job ${jobId}: heartbeat seq ${again.seq} went back in time (${at} → ${again.at})`);
    }
    for (const e of events) this.checkEvent(jobId, s, e);
  }

  private checkEvent(jobId: string, s: Seen, e: JobEventRecord): void {
    s.heartbeat = e.type === 'HEARTBEAT' && s.state ? { before: s.state, at: s.at, history: s.history.length } : null;
    s.history.push(describeEvent(e));
    const fail = (invariant: string, what: string): never => violated(invariant, `${what}\n  history ${this.history(jobId)}`);
    if (e.seq !== s.seq + 1) fail(INVARIANTS.history, `job ${jobId}: event seq ${e.seq} follows seq ${s.seq}`);
    if (e.at < s.at) fail(INVARIANTS.history, `job ${jobId}: event seq ${e.seq} at ${e.at} is earlier than the previous one (${s.at})`);
    if (s.state === null) {
      if (e.type !== 'SUBMITTED') fail(INVARIANTS.history, `job ${jobId}: first event is ${e.type}, not SUBMITTED`);
      s.state = start(e.data as JobInput).next;
    } else {
      if (e.from !== s.state.value) fail(INVARIANTS.history, `job ${jobId}: seq ${e.seq} says from ${e.from}, but the job was ${s.state.value}`);
      if (isTerminal(s.state.value) && e.type !== 'REDRIVE') {
        fail(INVARIANTS.terminal, `job ${jobId}: ${e.type} moved it out of terminal state ${s.state.value}`);
      }
      this.checkAccepted(jobId, s.state, e, fail);
      const r = step(s.state, e.data as JobEvent);
      if (!r.ok) return fail(INVARIANTS.history, `job ${jobId}: the machine rejects seq ${e.seq} (${e.type}) in state ${s.state.value}`);
      s.state = r.next;
    }
    if (e.to !== s.state.value) fail(INVARIANTS.history, `job ${jobId}: seq ${e.seq} says to ${e.to}, replay gives ${s.state.value}`);
    this.countAttempt(jobId, s, e, fail);
    s.seq = e.seq;
    s.at = e.at;
  }

  /**
   * What the machine must never accept, checked against the state before the
   * event rather than by the machine itself (a machine that wrongly accepts
   * an event would also replay it): an attempt's heartbeat or outcome when
   * the job holds another attempt (a zombie's), a REDRIVE from a state other
   * than dead or cancelled.
   */
  private checkAccepted(jobId: string, before: PersistedJob, e: JobEventRecord, fail: (i: string, w: string) => never): void {
    const attempt = (e.data as { attempt?: number }).attempt;
    if (FENCED.has(e.type) && attempt !== before.context.attempt) {
      fail(INVARIANTS.stale, `job ${jobId}: seq ${e.seq} ${e.type}(${attempt}) was accepted while the job held attempt ${before.context.attempt}`);
    }
    if (e.type === 'REDRIVE' && !REDRIVABLE.has(before.value)) fail(INVARIANTS.userEvents, `job ${jobId}: seq ${e.seq} REDRIVE was accepted in state ${before.value}`);
  }

  private countAttempt(jobId: string, s: Seen, e: JobEventRecord, fail: (i: string, w: string) => never): void {
    const attempt = (e.data as { attempt?: number }).attempt;
    if (attempt !== undefined && OUTCOMES.has(e.type)) {
      const list = [...(s.outcomes.get(attempt) ?? []), `${e.type}@seq${e.seq}`];
      s.outcomes.set(attempt, list);
      if (list.length > 1) fail(INVARIANTS.outcomeOnce, `job ${jobId} attempt ${attempt} has ${list.length} outcomes: ${list.join(', ')}`);
    }
    if (e.type === 'STARTED' && attempt !== undefined) {
      const n = (s.starts.get(attempt) ?? 0) + 1;
      s.starts.set(attempt, n);
      if (n > 1) fail(INVARIANTS.claimOnce, `job ${jobId} attempt ${attempt} was STARTED ${n} times`);
    }
    const c = s.state!.context;
    if (c.attempt - c.attemptBase > c.maxAttempts) {
      fail(INVARIANTS.attempts, `job ${jobId}: attempt ${c.attempt} is number ${c.attempt - c.attemptBase} of this run, maxAttempts ${c.maxAttempts}`);
    }
  }

  /** Effects per job: at most one always; exactly one for a done job at the end. */
  private checkLedger(final: boolean, done: ReadonlySet<string> = new Set()): void {
    const perJob = new Map<string, string[]>();
    for (const [key, e] of this.world.ledger) perJob.set(e.jobId, [...(perJob.get(e.jobId) ?? []), `${key} (attempt ${e.attempt})`]);
    for (const [jobId, keys] of perJob) {
      if (keys.length > 1) violated(INVARIANTS.effectOnce, `job ${jobId} has ${keys.length} ledger entries: ${keys.join(', ')}\n  history ${this.history(jobId)}`);
    }
    if (!final) return;
    for (const jobId of done) {
      if (!perJob.has(jobId)) violated(INVARIANTS.effectOnce, `done job ${jobId} has no ledger entry\n  history ${this.history(jobId)}`);
    }
  }

  /** Everything, once the run has quiesced (`quiesced` false: it never did). */
  async final(quiesced: boolean): Promise<void> {
    const { world } = this;
    await this.afterCommand();
    const jobs = await Promise.all(world.jobIds.map((id) => world.store.getJob(id)));
    // The cause before the symptom: a row marked published that the log never acknowledged is a lost message.
    await this.checkOutboxAcked();
    const open = jobs.filter((j) => !j || !isTerminal(j.snapshot.value));
    const limitedOpen = open.filter((j) => j?.concurrencyKey !== undefined && world.limits.has(j.concurrencyKey));
    if (limitedOpen.length > 0) {
      const limit = (key: string) => `${key}: ${world.currentLimits.has(key) ? describeLimit(world.currentLimits.get(key)!) : 'no limit now'}`;
      violated(INVARIANTS.limitLiveness, `after ${TIMING_NOTE}: ${limitedOpen.map((j) => `${j!.id} (limited by ${limit(j!.concurrencyKey!)}) is ${j!.snapshot.value} `
        + `(attempt ${j!.snapshot.context.attempt})`).join('; ')}\n  ${limitedOpen.map((j) => `history ${this.history(j!.id)}`).join('\n  ')}`);
    }
    if (open.length > 0) {
      violated(INVARIANTS.lost, `after ${TIMING_NOTE}: ${open.map((j) => `${j?.id} is ${j?.snapshot.value} (attempt ${j?.snapshot.context.attempt})`).join('; ')}\n  `
        + open.map((j) => `history ${this.history(j!.id)}`).join('\n  '));
    }
    if (!quiesced) violated(INVARIANTS.outbox, `after ${TIMING_NOTE}: ${await world.store.countUnpublished()} outbox rows still unpublished`);
    for (const id of world.jobIds) {
      const report = await verifyJob(world.store, id);
      if (!report.ok) {
        const attempts = report.problems.some((p) => p.includes('maxAttempts'));
        violated(attempts ? INVARIANTS.attempts : INVARIANTS.history, `verifyJob(${id}): ${report.problems.join('; ')}\n  history ${this.history(id)}`);
      }
    }
    await this.checkJobCount();
    this.checkAtLeastOnce(jobs.filter((j) => j!.snapshot.value === 'done').map((j) => j!.id));
    this.checkLedger(true, new Set(jobs.filter((j) => j!.snapshot.value === 'done').map((j) => j!.id)));
    await this.checkOutbox();
    await this.checkAnnounced();
    await this.checkSlotsFree();
  }

  /**
   * I17, the slots: with every job ended, a new job of each limited key must
   * start at its first claim, or, held back by its rate, within one step:
   * a slot still counted for an attempt that ended would refuse it.
   */
  private async checkSlotsFree(): Promise<void> {
    const { world } = this;
    if (world.limits.size === 0) return;
    const probes = await world.probeLimits();
    this.probing = true;
    await this.checkLimits();
    for (const [key, id] of probes) {
      const job = await world.store.getJob(id);
      if (job?.snapshot.value === 'done') continue;
      const keyJobs = [...this.leases].filter(([, v]) => v.key === key).map(([jobId]) => jobId).filter((jobId) => jobId !== id);
      const limit = world.currentLimits.get(key);
      violated(INVARIANTS.limitLiveness, `every job had ended, yet a new job of key ${key} (${limit ? describeLimit(limit) : 'no limit'}), ${id}, is ${job?.snapshot.value} `
        + `after its first claims and one rate step; the key's jobs:\n  ${keyJobs.map((jobId) => `history ${this.history(jobId)}`).join('\n  ')}`);
    }
  }

  /** Each job's history, row by row, among the transitions the log acknowledged on `ats.events`. */
  private async checkAnnounced(): Promise<void> {
    const acked = this.world.log.ackedTransitions;
    for (const id of this.world.jobIds) {
      const missing = (await this.world.store.getEvents(id)).filter((e) => !acked.has(describeTransition({ ...e, jobId: id })));
      if (missing.length > 0) {
        violated(INVARIANTS.announced, `job ${id}: ${missing.map((e) => `seq ${e.seq} ${e.type}`).join(', ')} never acknowledged on ats.events\n  history ${this.history(id)}`);
      }
    }
  }

  private async checkJobCount(): Promise<void> {
    const { world } = this;
    const stored = (await world.store.listJobs({ limit: 10_000 })).map((j) => j.id).sort();
    const expected = [...world.jobIds].sort();
    if (stored.join() !== expected.join()) {
      violated(INVARIANTS.submitOnce, `the store holds jobs [${stored.join(', ')}], the submits created [${expected.join(', ')}]`);
    }
  }

  private checkAtLeastOnce(doneIds: readonly string[]): void {
    for (const id of doneIds) {
      const s = this.seen.get(id)!;
      const attempt = [...s.outcomes].find(([, list]) => list.some((o) => o.startsWith('SUCCEEDED')))?.[0];
      const ran = this.world.invocations.find((i) => i.jobId === id && i.attempt === attempt && i.status === 'resolved' && (i.plan === 'ok' || i.plan === 'stall'));
      if (attempt === undefined || !ran) {
        const calls = this.world.invocations.filter((i) => i.jobId === id).map((i) => `#${i.attempt} ${i.plan} ${i.status} on ${i.worker}`);
        violated(INVARIANTS.atLeastOnce, `job ${id} is done (SUCCEEDED attempt ${attempt}) but no handler call of that attempt succeeded; calls: [${calls.join('; ')}]\n  history ${this.history(id)}`);
      }
    }
  }

  private async checkOutbox(): Promise<void> {
    const rows = await this.world.backend.outbox();
    const unpublished = rows.filter((r) => !r.published);
    if (unpublished.length > 0) violated(INVARIANTS.outbox, `${unpublished.length} outbox rows never published (still in the outbox): ids ${unpublished.map((r) => r.id).join(', ')}`);
  }

  private async checkOutboxAcked(): Promise<void> {
    const acked = this.world.log.ackedOutboxIds;
    const rows = (await this.world.backend.outbox()).filter((r) => r.published && !r.messageIds.every((id) => acked.has(id)));
    if (rows.length > 0) {
      const missing = (r: (typeof rows)[number]) => r.messageIds.filter((id) => !acked.has(id)).join(' ');
      violated(INVARIANTS.outbox, `outbox rows deleted as published but never acknowledged by the log: ${rows.map((r) => `#${r.id} ${r.topic} (messages ${missing(r)})`).join(', ')}`);
    }
  }
}

const TIMING_NOTE = 'faults stopped and time advanced';
