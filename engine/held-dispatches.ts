/**
 * The dispatches a worker holds back because their key's limit refused the
 * claim (engine/worker.ts), and which of them to claim again when. Pure: the
 * caller passes the time in and makes the claims.
 *
 * A key's held dispatches are asked about a few at a time, never all at once,
 * so a backlog of n on a key costs a few refused claims a wait, not n:
 * - when the key's wait is over (its rate allows a start, its concurrency
 *   pause ended, a paused key's second passed), its best held dispatch asks
 *   (highest priority, then longest held); one that starts lets twice as many
 *   ask at once, and so on until one is refused, when the key's others wait
 *   out the pause that refusal set;
 * - an attempt that counted against the key ends in this worker: one more of
 *   the key's held dispatches is claimed at once (the slot it freed), when
 *   they wait for its concurrency (not for a pause or a rate, which no
 *   attempt ending lets start);
 * - a claim that neither started nor was refused (its job was cancelled or
 *   deleted meanwhile, a stale dispatch) passes its turn on to the key's next.
 */
import { PAUSED_RECHECK_MS } from './limits.js';
import { dispatchPriority, type DispatchMessage } from './messages.js';
import type { LogRecord } from './ports.js';

/** A dispatch held back by a concurrency limit is tried again after this, doubling up to THROTTLE_RETRY_MAX_MS. */
export const THROTTLE_RETRY_FIRST_MS = 50;
export const THROTTLE_RETRY_MAX_MS = 500;
/**
 * A dispatch held back by a rate is tried again when the rate allows the next
 * start, and after this at the latest: the limit may have been lifted or its
 * rate raised meanwhile, and the rate's wait may be hours.
 */
export const THROTTLE_RATE_RECHECK_MS = 1000;
/** Dispatches held back by limits a worker keeps; beyond, the oldest go back to the timers' re-dispatch. */
export const THROTTLED_KEPT = 10_000;

/** Why a key's limit refused a claim (engine/limits.ts). */
export type RefusedWhy = 'paused' | 'concurrency' | 'rate';

/** A dispatch its key's limit refused, waiting to be claimed again. */
export interface Held {
  message: DispatchMessage;
  record: LogRecord | undefined;
  key: string;
  dueAt: number;
  /** In the round being claimed: kept in its place (a refusal holds it there again), and not in `take` or `nextAt`. */
  claiming: boolean;
}

/** A limit key's refusals in a row (the concurrency pause after each doubles), when the last came, and why. */
interface KeyWait {
  refusals: number;
  lastAt: number;
  why: RefusedWhy;
}

/** A key's next claim, whatever its dispatches' due times: how many ask, and whether a start among them doubles that. */
interface Turn {
  take: number;
  grow: boolean;
}

/** One round of claims (`take`): the dispatches, marked `claiming`, highest priority first within a key, and each key's share. */
export interface Round {
  due: Held[];
  keys: Map<string, { ids: Set<string> } & Turn>;
}

const priorityOf = (h: Held): number => dispatchPriority(h.message);

export class HeldDispatches {
  /** By job id, oldest first. */
  private readonly all = new Map<string, Held>();
  /** By limit key, then job id, oldest first. */
  private readonly byKey = new Map<string, Map<string, Held>>();
  /** Of the keys with dispatches held. */
  private readonly waits = new Map<string, KeyWait>();
  private readonly turns = new Map<string, Turn>();

  constructor(private readonly kept = THROTTLED_KEPT) {}

  get size(): number {
    return this.all.size;
  }

  /** The held dispatches' jobs, but those of the round being claimed. */
  jobIds(): string[] {
    const ids: string[] = [];
    for (const [id, h] of this.all) if (!h.claiming) ids.push(id);
    return ids;
  }

  clear(): void {
    this.all.clear();
    this.byKey.clear();
    this.waits.clear();
    this.turns.clear();
  }

  /**
   * Holds a dispatch its key's limit refused (`why`, and the rate's
   * `retryAfterMs`): due again when the rate allows (THROTTLE_RATE_RECHECK_MS
   * at most), for a paused key after PAUSED_RECHECK_MS, else after a pause that
   * doubles with the key's refusals in a row (the refusals of one claim, at
   * one `now`, count once). Answers the job id of the oldest held, dropped
   * past the kept count, or null.
   */
  hold(message: DispatchMessage, record: LogRecord | undefined, key: string, why: RefusedWhy, retryAfterMs: number | null, now: number): string | null {
    let wait = this.waits.get(key);
    if (!wait) {
      if (this.waits.size >= this.kept) this.waits.clear();
      this.waits.set(key, (wait = { refusals: 0, lastAt: -1, why }));
    }
    if (wait.lastAt !== now) {
      wait.refusals++;
      wait.lastAt = now;
    }
    wait.why = why;
    const pause = why === 'paused' ? PAUSED_RECHECK_MS
      : why === 'rate' && typeof retryAfterMs === 'number' ? Math.min(retryAfterMs, THROTTLE_RATE_RECHECK_MS)
      : Math.min(THROTTLE_RETRY_FIRST_MS * 2 ** (wait.refusals - 1), THROTTLE_RETRY_MAX_MS);
    const was = this.all.get(message.jobId);
    if (was?.key === key) {
      // Refused again (or delivered again): it keeps its place among the key's, so the longest held asks first.
      Object.assign(was, { message, record, dueAt: now + pause, claiming: false });
      return null;
    }
    if (was) this.remove(message.jobId);
    const held: Held = { message, record, key, dueAt: now + pause, claiming: false };
    this.all.set(message.jobId, held);
    let ofKey = this.byKey.get(key);
    if (!ofKey) this.byKey.set(key, (ofKey = new Map()));
    ofKey.set(message.jobId, held);
    if (this.all.size <= this.kept) return null;
    for (const [oldest, h] of this.all) {
      if (h.claiming) continue;
      this.remove(oldest);
      return oldest;
    }
    return null;
  }

  /**
   * An attempt ended here that counted against these keys (its own, or its
   * type's and queue's defaults): each with dispatches held for its
   * concurrency gets one more claim now (the slot the attempt freed), and its
   * pause starts over; not a paused key, nor one held for its rate, which no
   * attempt ending lets start. True when any did.
   */
  freed(keys: Iterable<string>): boolean {
    let any = false;
    for (const key of keys) {
      const wait = this.waits.get(key);
      if (wait) wait.refusals = 0;
      if (!this.byKey.has(key) || (wait && wait.why !== 'concurrency')) continue;
      this.addTurn(key, { take: 1, grow: false });
      any = true;
    }
    return any;
  }

  /** The dispatches to claim now (see the top of the file), marked `claiming` until `settle` or `restore`; null when none is. */
  take(now: number): Round | null {
    const due: Held[] = [];
    const keys: Round['keys'] = new Map();
    for (const [key, ofKey] of this.byKey) {
      let turn = this.turns.get(key);
      if (!turn) {
        for (const h of ofKey.values()) {
          if (h.dueAt <= now && !h.claiming) {
            turn = { take: 1, grow: true };
            break;
          }
        }
        if (!turn) continue;
      }
      const picked = best(ofKey.values(), turn.take, ofKey.size);
      if (picked.length === 0) continue;
      this.turns.delete(key);
      for (const h of picked) h.claiming = true;
      keys.set(key, { ids: new Set(picked.map((h) => h.message.jobId)), ...turn });
      due.push(...picked);
    }
    return due.length > 0 ? { due, keys } : null;
  }

  /**
   * After a round's claims: those refused were held again (`hold`), the rest
   * started (`started`: the attempt each job started, by job id) or their jobs
   * went; they are let go, and so is a dispatch of a started attempt (or an
   * earlier one) held again meanwhile (a duplicate delivery refused while the
   * round waited).
   */
  settle(round: Round, started: ReadonlyMap<string, number>): void {
    for (const [key, share] of round.keys) {
      let again: Held | undefined;
      for (const id of share.ids) {
        const h = this.all.get(id);
        if (!h) continue;
        if (h.claiming || h.message.attempt <= (started.get(id) ?? -1)) this.remove(id);
        else if (!again || h.dueAt < again.dueAt) again = h;
      }
      if (again) {
        // Refused: the key's others wait out the same pause, as they would have been refused too.
        for (const h of this.byKey.get(key)?.values() ?? []) h.dueAt = Math.max(h.dueAt, again.dueAt);
        continue;
      }
      if (!this.byKey.has(key)) continue;
      let starts = 0;
      for (const id of share.ids) if (started.has(id)) starts++;
      // None refused: twice as many next, at once, when this round was the key's asking; a freed claim whose job
      // went passes on as it was.
      if (share.grow) this.addTurn(key, { take: 2 * share.take, grow: true });
      else if (starts < share.take) this.addTurn(key, { take: share.take - starts, grow: false });
    }
  }

  /**
   * A round whose claims failed (a database blip, a stop): its dispatches are
   * held again, and its keys' others wait too: none is due before `dueAt`.
   */
  restore(round: Round, dueAt: number): void {
    for (const h of round.due) {
      if (this.all.get(h.message.jobId) !== h || !h.claiming) continue;
      h.claiming = false;
      h.dueAt = dueAt;
    }
    for (const key of round.keys.keys()) {
      for (const h of this.byKey.get(key)?.values() ?? []) if (!h.claiming) h.dueAt = Math.max(h.dueAt, dueAt);
    }
  }

  /** When `take` next has a round: -Infinity for a turn waiting, Infinity with none held. */
  nextAt(): number {
    if (this.turns.size > 0) return -Infinity;
    let next = Infinity;
    for (const h of this.all.values()) if (!h.claiming) next = Math.min(next, h.dueAt);
    return next;
  }

  private addTurn(key: string, turn: Turn): void {
    const now = this.turns.get(key);
    if (now) {
      now.take += turn.take;
      now.grow ||= turn.grow;
    } else {
      this.turns.set(key, { ...turn });
    }
  }

  private remove(jobId: string): void {
    const h = this.all.get(jobId);
    if (!h) return;
    this.all.delete(jobId);
    const ofKey = this.byKey.get(h.key)!;
    ofKey.delete(jobId);
    if (ofKey.size === 0) {
      // Its refusals and their reason go with its last held dispatch: only keys with some are remembered.
      this.byKey.delete(h.key);
      this.turns.delete(h.key);
      this.waits.delete(h.key);
    }
  }
}

/**
 * The best `n` not being claimed, of a key's `size` held (oldest first):
 * highest priority first, then longest held. One pass keeping the best so far
 * when `n` is small beside `size` (a round of one, of thousands held), a sort
 * otherwise.
 */
function best(held: Iterable<Held>, n: number, size: number): Held[] {
  if (n * 4 >= size) return [...held].filter((h) => !h.claiming).sort((a, b) => priorityOf(b) - priorityOf(a)).slice(0, n);
  const out: Held[] = [];
  for (const h of held) {
    if (h.claiming) continue;
    const p = priorityOf(h);
    if (out.length === n && priorityOf(out[n - 1]!) >= p) continue;
    let i = out.length;
    while (i > 0 && priorityOf(out[i - 1]!) < p) i--;
    out.splice(i, 0, h);
    if (out.length > n) out.pop();
  }
  return out;
}
