/**
 * Workflows as durable actors: the only writer of workflow instances.
 *
 * Each start and each accepted step is one store transaction holding the
 * instance (compare-and-set on its version), one `workflow_events` row, the
 * child jobs the step starts (submitted with idempotency keys derived from
 * the instance, the step and the invocation), the CANCEL transitions of the
 * children it leaves, and its timers. The machine decides (machines/workflow.ts);
 * this service records.
 *
 * A child's end comes back through the outbox: its terminal transition
 * writes a `child-ended` message on `ats.workflows` in the job's own
 * transaction, and the driver here delivers it to the instance. A delivery
 * is fenced by the child's job id (machines/workflow.ts `deliverChild`), so a
 * duplicate or late one changes nothing: each child's end is applied once.
 *
 * A message one instance sends another (`sendToWorkflow`) is stored with the
 * sender's step (`workflow_messages`) and announced on `ats.workflows`; the
 * target's step deletes it in its own transaction, so it is taken once, and
 * one target's messages are taken in the order each sender sent them.
 */
import { createHash } from 'node:crypto';
import type { AnyEventObject } from 'xstate';
import {
  acceptedEvents, activeInvokeIds, applyWorkflowEvent, asStored, cancelWorkflow, restoreSnapshot, startWorkflow, isUserEventType, MAX_WORKFLOW_VALUE_BYTES, timerFits, WILDCARD_EVENT_TYPE,
  type ChildOutcome, type JobStart, type WorkflowDefinition, type WorkflowSend,
  type WorkflowInputEvent, type WorkflowStep,
} from '../machines/workflow.js';
import { DEFAULT_BACKOFF, type BackoffPolicy } from '../machines/backoff.js';
import { isTerminal } from '../machines/lifecycle.js';
import { historyReplay, migrateWorkflow, type HistoryInput, type HistoryReplay, type RecordedStep } from '../machines/workflow-migration.js';
import { jsonSize } from '../machines/json-size.js';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { inParallel } from './in-parallel.js';
import { fitting } from './pack.js';
import { BackgroundLoop, pollUntilAborted } from './loop.js';
import { OutageLog } from './error-backoff.js';
import { AtsError, isAtsError } from './errors.js';
import { errorFields } from './logger.js';
import type { Metrics } from './metrics.js';
import {
  CHILD_ENDED_KIND, childEndedMessage, KIND_HEADER, readableSchema, WORKFLOW_MESSAGE_KIND, workflowMessageNotice,
  type ChildEndedMessage, type WorkflowMessageNotice,
} from './messages.js';
import type { QueueRegistry } from './queue-registry.js';
import { ATTR, submitterTrace, type Tracer } from './tracing.js';
import { canonicalJson, submitWrite, transitionWrite } from './transitions.js';
import {
  TOPICS,
  type Clock, type Decide, type EventLog, type IdGenerator, type JobRecord, type JobSpec, type JobStore, type Logger, type Subscription,
  type DueWorkflowTimer, type TransitionWrite, type WorkflowEventRecord, type WorkflowFilter, type WorkflowHistoryStep, type WorkflowMessageRecord, type WorkflowRecord, type WorkflowRecordPage, type WorkflowStore,
  type WorkflowDeleteResult, type WorkflowWrite,
} from './ports.js';

/** Where workflow definitions come from (the handler registry). */
export interface WorkflowDefinitions {
  workflowDefinition(name: string, version?: number): WorkflowDefinition | undefined;
}

/** What a child job runs under when its actor's options do not say. */
export interface ChildJobDefaults {
  queue: string;
  maxAttempts: number;
  backoff: BackoffPolicy;
  timeoutMs: number;
  priority: number;
}

export const DEFAULT_CHILD_JOB: ChildJobDefaults = Object.freeze({
  queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0,
});

export interface WorkflowServiceDeps {
  store: JobStore & WorkflowStore;
  clock: Clock;
  ids: IdGenerator;
  definitions: WorkflowDefinitions;
  defaults?: ChildJobDefaults;
  /** Called after each commit that wrote outbox rows (wakes the relay in process). */
  onCommit?: () => void;
  /** For what the service decides on its own (a migration that cannot move an instance). @defaultValue none */
  logger?: Logger;
  /** Told what each committed step wrote to jobs: its children's submits and CANCELs (engine/metrics.ts). @defaultValue none */
  metrics?: Pick<Metrics, 'transitionsCommitted'>;
  /**
   * Traces the jobs a step starts (engine/tracing.ts): in the trace of the request that took the
   * step (a start, a signal), else in a new one from a span `workflow <name>` of the step's own.
   * @defaultValue none: no tracing
   */
  tracer?: Tracer;
  /** The queues jobs may name (engine/queue-registry.ts): a step starting a job in a queue refused is ATS_ERR_QUEUE_LIMIT. @defaultValue none: any queue */
  queues?: Pick<QueueRegistry, 'knows' | 'admit'>;
}

/** Thrown out of a step's transaction when it starts jobs in queues `names` not known admitted. */
class UnknownQueues extends Error {
  /** `tenant`: the instance's, whose jobs name the queues. */
  constructor(readonly names: readonly string[], readonly tenant: string) {
    super(`queues not known admitted: ${names.join(', ')}`);
  }
}

export interface StartSpec {
  tenant: string;
  name: string;
  input: unknown;
  idempotencyKey?: string;
}

export type StartResult =
  | { ok: true; workflow: WorkflowRecord; created: boolean }
  | { ok: false; reason: 'unknown-workflow' }
  /** The machine refused the input (its context factory or first step threw): nothing was written. */
  | { ok: false; reason: 'invalid-input'; message: string }
  | { ok: false; reason: 'idempotency-conflict'; workflow: WorkflowRecord };

export type StepResult =
  /** `repeated`: a signal sent again with its Idempotency-Key, taken before: nothing was written. */
  | { ok: true; workflow: WorkflowRecord; repeated?: true }
  | { ok: false; reason: 'not-found' }
  /** No transition takes the event now (or the instance has ended): nothing was written. */
  | { ok: false; reason: 'not-accepted'; workflow: WorkflowRecord; accepts: string[] }
  /**
   * This process has not registered the instance's definition version, or registered one that lacks the
   * state the instance is in (changed under the same version): nothing was written.
   */
  | { ok: false; reason: 'definition-missing'; workflow: WorkflowRecord }
  /** The signal's Idempotency-Key was taken by another event for this instance: nothing was written. */
  | { ok: false; reason: 'idempotency-conflict'; workflow: WorkflowRecord };

/** A child of an instance as the API shows it: the job and its state now. */
export interface ChildView {
  invokeId: string;
  jobId: string;
  jobType: string;
  state: string | null;
}

export class WorkflowService {
  private readonly defaults: ChildJobDefaults;
  /** Instances whose definition version this process lacks, by id: when their timers are tried again here. */
  private readonly lacking = new Map<string, number>();
  /** Where the next timer pass reads on from (undefined: the soonest due). */
  private timerScan: DueWorkflowTimer | undefined;

  constructor(private readonly deps: WorkflowServiceDeps) {
    this.defaults = deps.defaults ?? DEFAULT_CHILD_JOB;
  }

  /** The definition an instance runs (its own version). */
  definitionOf(workflow: WorkflowRecord): WorkflowDefinition | undefined {
    return this.deps.definitions.workflowDefinition(workflow.name, workflow.definitionVersion);
  }

  /**
   * The definition an instance runs, when it can hold the instance's stored
   * state: undefined too when the one registered under its version lacks a
   * state or an invocation the instance is in (changed under the same version).
   */
  placeableDefinitionOf(workflow: WorkflowRecord): WorkflowDefinition | undefined {
    const def = this.definitionOf(workflow);
    return def && unplaceable(def, workflow.state) === null ? def : undefined;
  }

  /**
   * Starts an instance. With an idempotency key another instance holds, it
   * returns that instance, or a conflict. If that instance is gone by the
   * time it is looked up (purged by retention just after the insert found the
   * key taken), the key is free again: the start is tried anew, a few times at
   * most. A start refused (its name unknown, its input refused by the
   * machine, its first step in a queue past the limit) whose key an instance
   * holds answers as a start sent again: a retry after a lost answer, across
   * a deploy that changed the machine, still finds the instance it started.
   */
  async start(spec: StartSpec, tries = KEY_HOLDER_GONE_TRIES): Promise<StartResult> {
    const def = this.deps.definitions.workflowDefinition(spec.name);
    if (!def) return (await this.heldKey(spec)) ?? { ok: false, reason: 'unknown-workflow' };
    const { clock, ids, store } = this.deps;
    const at = clock.now();
    const id = ids.jobId();
    const jobIds: string[] = [];
    // As stored and replayed: JSON has no undefined.
    const input = spec.input === undefined ? null : spec.input;
    const inputJson = checkRecorded('the input', input);
    let first: ReturnType<typeof startWorkflow>;
    const refused = async (why: string): Promise<StartResult> =>
      (await this.heldKey(spec)) ?? { ok: false, reason: 'invalid-input', message: `workflow ${def.name} refused its input: ${why}` };
    try {
      first = startWorkflow(def, input, at, () => {
        const jobId = ids.jobId();
        jobIds.push(jobId);
        return jobId;
      });
    } catch (err) {
      const message = (err as Error).message;
      const own = `workflow ${def.name}: `;
      return refused(message.startsWith(own) ? message.slice(own.length) : message);
    }
    // The instance's row holds its input and its state: each within its bound, the two may not fit one statement.
    // The state is at most twice MAX_WORKFLOW_VALUE_BYTES as SQL text: only a large input needs it measured again.
    const inputSqlBytes = sqlTextBytes(inputJson);
    if (inputSqlBytes + 2 * MAX_WORKFLOW_VALUE_BYTES > MAX_START_ROW_SQL_BYTES) {
      const rowBytes = inputSqlBytes + sqlTextBytes(JSON.stringify(first.next));
      if (rowBytes > MAX_START_ROW_SQL_BYTES) {
        return refused(`its input and first state together are ${rowBytes} bytes as SQL text, more than the ${MAX_START_ROW_SQL_BYTES} one row of an instance may take: keep large data elsewhere and a reference in the input`);
      }
    }
    const workflow: WorkflowRecord = {
      id, tenant: spec.tenant, name: def.name, definitionVersion: def.version, input, state: first.next, version: 1,
      idempotencyKey: spec.idempotencyKey ?? null, requestHash: spec.idempotencyKey ? startHash(spec) : null, createdAt: at, updatedAt: at,
    };
    const event: WorkflowEventRecord = { workflowId: id, seq: 1, type: 'START', at, data: { input: workflow.input, jobIds, version: def.version }, status: first.next.status };
    const write: WorkflowWrite = {
      workflow, expectedVersion: null, event,
      jobs: this.childWrites(workflow, 1, first.effects.start, at),
      cancel: null,
      ...messagesOf(workflow, 1, first.effects.send, at),
    };
    try {
      await this.deps.queues?.admit(write.jobs.map((w) => w.job.queue), workflow.tenant);
    } catch (err) {
      const held = isAtsError(err) && err.code === 'ATS_ERR_QUEUE_LIMIT' ? await this.heldKey(spec) : null;
      if (held) return held;
      throw err;
    }
    const inserted = await store.insertWorkflow(write);
    if (inserted.ok) {
      this.deps.onCommit?.();
      if (this.deps.metrics) reportChildren(this.deps.metrics, write, null);
      return { ok: true, workflow, created: true };
    }
    const existing = await store.findWorkflowByIdempotencyKey(spec.tenant, def.name, spec.idempotencyKey!);
    if (!existing && tries > 0) return this.start(spec, tries - 1);
    if (!existing) throw new AtsError('ATS_ERR_INTERNAL', 'workflow idempotency key reported taken but no instance holds it');
    return asRepeated(existing, workflow.requestHash!);
  }

  /** What a start with an idempotency key an instance holds answers (`asRepeated`); null without a key, or with one no instance holds. */
  private async heldKey(spec: StartSpec): Promise<StartResult | null> {
    if (spec.idempotencyKey === undefined) return null;
    const existing = await this.deps.store.findWorkflowByIdempotencyKey(spec.tenant, spec.name, spec.idempotencyKey);
    return existing && asRepeated(existing, startHash(spec));
  }

  /**
   * A signal from outside (the API): the machine takes it or nothing changes.
   * A type of the engine's (`xstate.*`) or `*`, XState's wildcard, is a 400
   * ATS_ERR_VALIDATION (`signalTypeRefusal`, the API's own check); nothing is written.
   */
  async signal(id: string, tenant: string, event: AnyEventObject, idempotencyKey?: string): Promise<StepResult> {
    const refused = signalTypeRefusal(event.type, 'the event\'s type');
    if (refused) throw refused;
    checkRecorded('the event', event);
    return this.step(id, tenant, { type: 'SIGNAL', event }, idempotencyKey);
  }

  /** Ends an active instance as `cancelled`, cancelling its live children and dropping its timers. */
  cancel(id: string, tenant: string, reason?: string): Promise<StepResult> {
    return this.step(id, tenant, reason === undefined ? { type: 'CANCEL' } : { type: 'CANCEL', reason });
  }

  /** Delivers a child's end (from the driver). False when it changed nothing: a duplicate, a late or a fenced-off delivery. */
  async deliver(msg: ChildEndedMessage): Promise<boolean> {
    const outcome: ChildOutcome = msg.state === 'done' ? { state: 'done', result: msg.result ?? null } : { state: msg.state, error: msg.error ?? null };
    const r = await this.step(msg.workflowId, null, { type: 'CHILD', jobId: msg.jobId, outcome });
    if (!r.ok && r.reason === 'definition-missing') {
      // Not thrown: the other instances of the log's partition go on. The instance still holds the child,
      // so the sweep of a process that has the version delivers this end (`sweep`).
      this.deps.logger?.warn('workflows: a child ended for a definition version this process has not registered; the sweep of a process that has it delivers it', {
        workflowId: msg.workflowId, name: r.workflow.name, version: r.workflow.definitionVersion, jobId: msg.jobId,
      });
    }
    return r.ok;
  }

  /**
   * Fires timers due now, at most `limit`; returns how many fired (each fires
   * once: the instance drops it). A timer of an instance whose definition
   * version this process lacks stays (a process that has the version fires
   * it); the instance is not stepped again here for LACKING_RECHECK_MS, and
   * the pass reads on past it, so however many of them are due, the other
   * instances' timers fire. A pass reads at most TIMER_PAGES_PER_PASS pages;
   * the next one goes on from there, and from the start once it reached the end.
   * `signal` aborted (the driver stopping), it gives up before its next read
   * or step: what it fired stays fired (each step is its own transaction), the
   * timers it had not reached stay due, for the next pass here or elsewhere.
   */
  async fireDueTimers(limit: number, signal?: AbortSignal): Promise<number> {
    const now = this.deps.clock.now();
    let fired = 0;
    let after = this.timerScan;
    for (let page = 0; page < TIMER_PAGES_PER_PASS; page++) {
      if (signal?.aborted) return this.stoppedAt(after, fired);
      const due = await this.deps.store.dueWorkflowTimers(now, limit, after);
      for (const t of due) {
        if (signal?.aborted) return this.stoppedAt(after, fired);
        if ((this.lacking.get(t.workflowId) ?? Number.NEGATIVE_INFINITY) > now) continue;
        const r = await this.step(t.workflowId, null, { type: 'TIMER', timerId: t.timerId }).catch((err: unknown) => {
          if (passing(err)) throw err;
          // This instance's step cannot be written (its own data): the other instances' timers fire.
          this.setAside(t.workflowId, now, 'a due timer of an instance could not be fired', { timerId: t.timerId }, err);
          return null;
        });
        if (r === null) continue;
        if (!r.ok && r.reason === 'definition-missing') {
          if (this.lacking.size >= MAX_LACKING) this.lacking.clear();
          this.lacking.set(t.workflowId, now + LACKING_RECHECK_MS);
          this.deps.logger?.warn('workflows: a timer is due for a definition version this process has not registered; it waits', {
            workflowId: t.workflowId, name: r.workflow.name, version: r.workflow.definitionVersion, timerId: t.timerId,
          });
        } else {
          this.lacking.delete(t.workflowId);
          // Not fired here: another process fired it (or ended the instance) since the read.
          if (r.ok) fired++;
        }
      }
      if (due.length < limit) {
        this.timerScan = undefined;
        return fired;
      }
      after = due.at(-1);
      if (fired >= limit) break;
    }
    // Stopped before the end: having fired its limit, the next pass starts again from the soonest (what fired is
    // gone); having read its pages past timers that wait, it goes on from here.
    this.timerScan = fired >= limit ? undefined : after;
    return fired;
  }

  /** A timer pass given up with its page read after `after` not all fired: the next pass reads that page again. */
  private stoppedAt(after: DueWorkflowTimer | undefined, fired: number): number {
    this.timerScan = after;
    return fired;
  }

  /**
   * Sets instance `id` aside for LACKING_RECHECK_MS, as one lacking its
   * definition version is: its step failed for a reason of its own (a write
   * the store refuses every time), so the timer pass, the sweep and the log's
   * deliveries go on with the other instances, and it is tried again later.
   */
  private setAside(id: string, now: number, what: string, fields: Record<string, unknown>, err: unknown): void {
    if (this.lacking.size >= MAX_LACKING) this.lacking.clear();
    this.lacking.set(id, now + LACKING_RECHECK_MS);
    this.deps.logger?.error(`workflows: ${what}; it is tried again in ${LACKING_RECHECK_MS / 1000} s, the others go on`, { workflowId: id, ...fields, ...errorFields(err) });
  }

  /**
   * Delivers again the ends of children that ended while their instance did
   * not hear of it: the in-process log forgets what it held when the process
   * ends, and a Kafka topic may have dropped a message past its retention.
   * Looks at up to `limit` active instances in id order after the id
   * `after` (an instance stepped meanwhile keeps its place, however busy);
   * each child whose job ended at or before `endedBefore` (an end since then
   * is likely on its way), or is gone, is delivered as the job stands now.
   * Fenced by job id like any delivery, so a child whose end was applied
   * meanwhile changes nothing. Returns how many ends were applied, and the
   * id to go on after (null: no more, or `signal` aborted: it stops between
   * two instances).
   */
  async sweep(limit: number, after?: string, endedBefore = Number.POSITIVE_INFINITY, signal?: AbortSignal): Promise<{ applied: number; last: string | null }> {
    const { store } = this.deps;
    let applied = 0;
    const page = await store.activeWorkflowIds(limit, after);
    const now = this.deps.clock.now();
    for (const id of page) {
      if (signal?.aborted) return { applied, last: null };
      const wf = await store.getWorkflow(id);
      if (!wf || wf.state.children.length === 0) continue;
      // The children's states in one read; a job only for those that ended.
      const states = await store.jobStates(wf.state.children.map((c) => c.jobId));
      for (const child of wf.state.children) {
        const state = states.get(child.jobId);
        if (state !== undefined && !isTerminal(state)) continue;
        const job = state === undefined ? null : await store.getJob(child.jobId);
        if (job && job.updatedAt > endedBefore) continue;
        const msg = endedChild(wf, child.invokeId, child.jobId, job);
        try {
          if (msg && (await this.deliver(msg))) applied++;
        } catch (err) {
          if (passing(err)) throw err;
          // This instance's step cannot be written: the sweep goes on with the others (and the next one tries it again).
          this.setAside(id, now, 'a child\'s end could not be delivered by the sweep', { jobId: child.jobId }, err);
          break;
        }
      }
    }
    return { applied, last: page.length < limit ? null : page.at(-1)! };
  }

  /**
   * Delivers messages stored at or before `createdBefore` that still wait:
   * their announcement was lost with the in-process log, or is late. Pages
   * through their targets in id order, `limit` at a time, so a target whose
   * messages are dropped, or wait for a definition version this process
   * lacks, does not stop the sweep for the others. Returns how many were
   * applied; `signal` aborted, it stops between two targets.
   */
  async sweepMessages(createdBefore: number, limit: number, signal?: AbortSignal): Promise<number> {
    let applied = 0;
    let after: string | undefined;
    for (;;) {
      const targets = await this.deps.store.staleWorkflowMessageTargets(createdBefore, limit, after);
      for (const target of targets) {
        if (signal?.aborted) return applied;
        try {
          applied += await this.receive(target);
        } catch (err) {
          if (passing(err)) throw err;
          this.setAside(target, this.deps.clock.now(), 'a message could not be delivered by the sweep', {}, err);
        }
      }
      if (targets.length < limit) return applied;
      after = targets.at(-1);
    }
  }

  /**
   * One step of instance `id` (of `tenant`; null: any, for the engine's own
   * deliveries) in one transaction. Job ids for the children it starts are
   * drawn once and reused if the store decides again after a lost race.
   */
  private async step(id: string, tenant: string | null, input: WorkflowInputEvent | MessageInput, signalKey?: string): Promise<StepResult> {
    // An instance whose version has a newer one that migrates from it moves first (a MIGRATE step of
    // its own), then takes the event; a cancel needs no move.
    for (;;) {
      const r = await this.stepOnce(id, tenant, input, input.type !== 'CANCEL', signalKey);
      if (r !== MIGRATED) return r;
    }
  }

  /**
   * Delivers the messages waiting for instance `targetId`, in the order they
   * were stored, each in the target's own step (which deletes it: a message
   * is taken once however often the driver is told of it). A message the
   * target does not take now, or whose target is gone or of another tenant,
   * is dropped, as XState drops an event no transition takes. Stops at a
   * message for a definition version this process has not registered (it
   * waits for a process that has). Returns how many were applied.
   */
  async receive(targetId: string): Promise<number> {
    let applied = 0;
    for (;;) {
      const ids = await this.deps.store.pendingWorkflowMessages(targetId, RECEIVE_BATCH);
      for (const messageId of ids) {
        const r = await this.step(targetId, null, { type: 'MESSAGE-ID', messageId });
        if (r.ok) {
          applied++;
        } else if (r.reason === 'definition-missing') {
          this.deps.logger?.warn('workflows: a message waits for a definition version this process has not registered', {
            workflowId: targetId, name: r.workflow.name, version: r.workflow.definitionVersion, messageId,
          });
          return applied;
        } else {
          this.deps.logger?.debug('workflows: a message was dropped (no such instance, or its machine does not take it now)', { workflowId: targetId, messageId });
        }
      }
      if (ids.length < RECEIVE_BATCH) return applied;
    }
  }

  /**
   * Moves instance `id` to the newest version reachable by migrations from
   * its own, one MIGRATE step per version hop. `not-accepted` when no
   * registered version migrates from it (or it ended).
   */
  async migrate(id: string, tenant: string): Promise<StepResult> {
    let last: StepResult | null = null;
    for (;;) {
      const r = await this.stepOnce(id, tenant, null, true);
      if (r !== MIGRATED) return last ?? r;
      last = { ok: true, workflow: (await this.deps.store.getWorkflow(id))! };
    }
  }

  /** The version after `wf`'s that migrates from it, if registered. */
  private nextVersion(wf: WorkflowRecord): WorkflowDefinition | undefined {
    const newest = this.deps.definitions.workflowDefinition(wf.name);
    if (!newest || wf.state.status !== 'active') return undefined;
    for (let v = wf.definitionVersion + 1; v <= newest.version; v++) {
      const def = this.deps.definitions.workflowDefinition(wf.name, v);
      if (def?.migrate?.from === wf.definitionVersion) return def;
    }
    return undefined;
  }

  /**
   * One step of instance `id` (of `tenant`; null: any, for the engine's own
   * deliveries) in one transaction: a migration when `migrateFirst` and one
   * applies (MIGRATED), else `input` (null: nothing more to do). Job ids for
   * the children it starts are drawn once and reused if the store decides
   * again after a lost race. A signal with `signalKey` is recorded with it,
   * and one sent again with it is not applied again (`repeated`).
   */
  private async stepOnce(
    id: string, tenant: string | null, given: WorkflowInputEvent | MessageInput | null, migrateFirst: boolean, signalKey?: string,
  ): Promise<StepResult | typeof MIGRATED> {
    for (;;) {
      try {
        return await this.stepOnceIn(id, tenant, given, migrateFirst, signalKey);
      } catch (err) {
        // The step starts a job in a queue this process has not seen admitted: admitted (or ATS_ERR_QUEUE_LIMIT), it is decided again.
        if (!(err instanceof UnknownQueues)) throw err;
        await this.deps.queues!.admit(err.names, err.tenant);
      }
    }
  }

  /** `stepOnce`, once; throws UnknownQueues, having written nothing, for a step that starts a job in a queue not known admitted. */
  private stepOnceIn(
    id: string, tenant: string | null, given: WorkflowInputEvent | MessageInput | null, migrateFirst: boolean, signalKey?: string,
  ): Promise<StepResult | typeof MIGRATED> {
    const at = this.deps.clock.now();
    const drawn: string[] = [];
    const messageId = given?.type === 'MESSAGE-ID' ? given.messageId : undefined;
    const keyed = signalKey !== undefined && given?.type === 'SIGNAL' ? { key: signalKey } : undefined;
    // The last decision is what committed (the store decides again only after a lost race).
    let last: StepDecision = NO_STEP;
    return this.deps.store.updateWorkflow<StepResult | typeof MIGRATED>(id, (wf, message, signalled) => {
      if (messageId === undefined) {
        const input = given as WorkflowInputEvent | null;
        return (last = this.admitted(this.decideStep(wf, tenant, input, migrateFirst, at, drawn, keyed && { ...keyed, signalled })));
      }
      // A message is read with its target, in the target's transaction: gone means taken already.
      if (!message) {
        last = NO_STEP;
        return { write: null, result: { ok: false, reason: 'not-found' } };
      }
      const input: WorkflowInputEvent = { type: 'MESSAGE', from: message.senderId, messageId: message.messageId, event: message.event };
      const d = (last = this.admitted(this.decideStep(wf, message.tenant, input, migrateFirst, at, drawn)));
      // Taken by the step, or dropped; kept for a migration first, or for a process that has the definition.
      const keep = d.result === MIGRATED || (!d.result.ok && d.result.reason === 'definition-missing');
      return { ...d, consumeMessage: !keep };
    }, messageId !== undefined ? { messageId } : keyed ? { signalKey: keyed.key } : {}).then((r) => {
      if (r === MIGRATED || (r.ok && !r.repeated)) this.deps.onCommit?.();
      if (this.deps.metrics && last.write) reportChildren(this.deps.metrics, last.write, last.cancelled);
      return r;
    });
  }

  /** `d`, unless it starts a job in a queue not known admitted: then UnknownQueues is thrown (in the store's transaction, which writes nothing). */
  private admitted<D extends StepDecision>(d: D): D {
    const { queues } = this.deps;
    const unknown = queues && d.write ? d.write.jobs.filter((w) => !queues.knows(w.job.queue)) : [];
    if (unknown.length > 0) throw new UnknownQueues(unknown.map((w) => w.job.queue), unknown[0]!.job.tenant);
    return d;
  }

  /** The step `stepOnce` commits for instance `wf` as read (see there). */
  private decideStep(
    wf: WorkflowRecord | null, tenant: string | null, input: WorkflowInputEvent | null, migrateFirst: boolean, at: number, drawn: string[],
    keyed?: { key: string; signalled: WorkflowEventRecord | null },
  ): StepDecision & { result: StepResult | typeof MIGRATED } {
    if (!wf || (tenant !== null && wf.tenant !== tenant)) return { write: null, cancelled: null, result: { ok: false, reason: 'not-found' } };
    if (keyed?.signalled && input?.type === 'SIGNAL') {
      // Sent again with its key (a retry after a lost answer): taken once. The same key with another event is refused.
      const same = canonicalJson((keyed.signalled.data as { event?: unknown }).event) === canonicalJson(input.event);
      return { write: null, cancelled: null, result: same ? { ok: true, workflow: wf, repeated: true } : { ok: false, reason: 'idempotency-conflict', workflow: wf } };
    }
    const def = this.definitionOf(wf);
    const jobIds: string[] = [];
    const newJobId = (_invokeId: string, index: number) => {
      while (drawn.length <= index) drawn.push(this.deps.ids.jobId());
      jobIds.push(drawn[index]!);
      return drawn[index]!;
    };
    // A migration needs only the new version: an instance whose own version is gone can still move.
    const next = migrateFirst ? this.nextVersion(wf) : undefined;
    let r: WorkflowStep;
    let recordedInput: HistoryInput;
    let moved: WorkflowStep | null = null;
    if (next) {
      try {
        moved = migrateWorkflow(wf.definitionVersion, next, wf.state, newJobId);
      } catch (err) {
        // A migration that cannot move this instance leaves it on its version: the event still goes
        // to the machine it runs (on demand, `migrate` reports the failure).
        if (input === null) throw err;
        // The ids the move drew before it was refused are not the step's: the step records only its own.
        jobIds.length = 0;
        this.deps.logger?.warn('workflows: a migration cannot move this instance; it stays on its version', {
          workflowId: wf.id, name: wf.name, from: wf.definitionVersion, to: next.version, error: (err as Error).message,
        });
      }
    }
    if (next && moved) {
      r = moved;
      recordedInput = { type: 'MIGRATE', from: wf.definitionVersion, to: next.version, carryTimers: true };
    } else if (input?.type === 'CANCEL') {
      // A cancel needs no definition: an instance whose version is gone can still be ended.
      r = cancelWorkflow(wf.state);
      recordedInput = input;
    } else if (wf.state.status !== 'active') {
      // An ended instance takes nothing, whatever its version: a message to it is dropped, not kept for a definition.
      return { write: null, cancelled: null, result: { ok: false, reason: 'not-accepted', workflow: wf, accepts: [] } };
    } else if (!def) {
      return { write: null, cancelled: null, result: { ok: false, reason: 'definition-missing', workflow: wf } };
    } else if (input === null) {
      return { write: null, cancelled: null, result: { ok: false, reason: 'not-accepted', workflow: wf, accepts: this.accepts(wf) } };
    } else {
      // A definition changed under the same version may not have the state the instance is in (a state or
      // an invocation renamed or removed): stepped there, it would end in error, or drop a child's end and
      // hang. That is not the machine's doing: the instance is left as it is, as one whose version this
      // process lacks, until the definition it ran is registered again or a migration moves it.
      const misplaced = unplaceable(def, wf.state);
      if (misplaced !== null) {
        this.deps.logger?.warn('workflows: the registered definition lacks the state the instance is in (changed under the same version); the instance waits', {
          workflowId: wf.id, name: wf.name, version: wf.definitionVersion, event: input.type, problem: misplaced,
        });
        return { write: null, cancelled: null, result: { ok: false, reason: 'definition-missing', workflow: wf } };
      }
      r = applyWorkflowEvent(def, wf.state, input, at, newJobId);
      recordedInput = input;
      if (input.type === 'SIGNAL' && r.ok && r.unstorable) {
        // The machine took the signal, but the step it made cannot be stored: the sender is told, and the
        // instance stays as it was (a child's end, a timer or a message, which no caller waits on, ends it in error).
        const own = `workflow ${def.name}: `;
        const why = r.unstorable.message.startsWith(own) ? r.unstorable.message.slice(own.length) : r.unstorable.message;
        throw new AtsError(
          r.unstorable.tooLarge ? 'ATS_ERR_PAYLOAD_TOO_LARGE' : 'ATS_ERR_VALIDATION',
          `${input.event.type} is not taken: the step it makes cannot be stored, so nothing was written: ${why}`,
        );
      }
    }
    if (!r.ok) return { write: null, cancelled: null, result: { ok: false, reason: 'not-accepted', workflow: wf, accepts: this.accepts(wf) } };
    const version = wf.version + 1;
    const workflow: WorkflowRecord = {
      ...wf, state: r.next, version, updatedAt: at, definitionVersion: recordedInput.type === 'MIGRATE' ? recordedInput.to : wf.definitionVersion,
    };
    const event: WorkflowEventRecord = {
      workflowId: wf.id, seq: version, type: recordedInput.type, at, status: r.next.status,
      data: { ...recordedInput, jobIds, ...(keyed && recordedInput.type === 'SIGNAL' ? { idempotencyKey: keyed.key } : {}) },
    };
    const cancelIds = r.effects.cancel.map((c) => c.jobId);
    const cancelled: CancelledChildren | null = cancelIds.length > 0 ? { writes: [], before: [] } : null;
    const write: WorkflowWrite = {
      workflow, expectedVersion: wf.version, event,
      jobs: this.childWrites(workflow, version, r.effects.start, at),
      cancel: cancelled ? { ids: cancelIds, decide: cancelChildren(cancelIds, at, `workflow ${wf.id}: ${cancelReason(recordedInput)}`, cancelled) } : null,
      ...messagesOf(workflow, version, r.effects.send, at),
    };
    return { write, cancelled, result: recordedInput.type === 'MIGRATE' ? MIGRATED : { ok: true, workflow } };
  }

  /** The jobs a step starts, as submits into the step's own transaction. */
  private childWrites(wf: WorkflowRecord, seq: number, starts: readonly JobStart[], at: number): TransitionWrite[] {
    const d = this.defaults;
    const { tracer } = this.deps;
    const traceContext = tracer && starts.length > 0
      ? submitterTrace(tracer, `workflow ${wf.name}`, { [ATTR.workflowId]: wf.id, [ATTR.workflowName]: wf.name })
      : undefined;
    return starts.map((s, i) => {
      const spec: JobSpec = {
        tenant: wf.tenant, type: s.jobType, payload: s.input ?? null,
        queue: s.options.queue ?? d.queue, maxAttempts: s.options.maxAttempts ?? d.maxAttempts, backoff: s.options.backoff ?? d.backoff,
        timeoutMs: s.options.timeoutMs ?? d.timeoutMs, priority: s.options.priority ?? d.priority,
        // Derived from the instance, the step and the invocation's place in it: a step retried never starts
        // a job twice. Under the reserved `ats:` prefix, which no submit may use, so no caller can take it first.
        idempotencyKey: `ats:workflow:${wf.id}:${seq}:${i}`,
        parent: { workflowId: wf.id, invokeId: s.invokeId },
        ...(traceContext ? { traceContext } : {}),
      };
      return submitWrite(spec, s.jobId, at);
    });
  }

  /**
   * Deletes an ended instance of `tenant` now, as retention would
   * (`WorkflowStore.deleteWorkflow`): another tenant's is `not-found`, and an
   * active one is left alone. Its child jobs stay.
   */
  async delete(id: string, tenant: string): Promise<WorkflowDeleteResult> {
    // A tenant never changes: checked before, it holds at the delete.
    if (!(await this.get(id, tenant))) return { ok: false, reason: 'not-found' };
    return this.deps.store.deleteWorkflow(id);
  }

  async get(id: string, tenant: string): Promise<WorkflowRecord | null> {
    const wf = await this.deps.store.getWorkflow(id);
    return wf && wf.tenant === tenant ? wf : null;
  }

  /**
   * One page of the instance's history, oldest first (for the API): the
   * events after seq `after`, at most `limit`, and `next`, the seq to page on
   * from (null when the store held no event after this page as it read it).
   * With `last`, only its last `last` events (`next` null). With `maxBytes`,
   * a page also holds no more events than their data and state values fit
   * in it (the first always comes): the sizes are read first, then only the
   * events that fit, and `next` goes on after them; with `last`, the newest
   * that fit. A signal may carry a megabyte: a thousand of them in one
   * answer would be past the longest string JSON can be written to.
   */
  async events(
    wf: WorkflowRecord, page: { last: number } | { after: number; limit: number }, maxBytes = Number.POSITIVE_INFINITY,
  ): Promise<{ events: WorkflowEventRecord[]; next: number | null }> {
    if (Number.isFinite(maxBytes)) return this.eventsWithin(wf, page, maxBytes);
    if ('last' in page) {
      const events = await this.deps.store.getWorkflowEvents(wf.id, Math.max(0, wf.version - page.last));
      // Steps taken since `wf` was read come too: still only the last `last`.
      return { events: events.slice(-page.last), next: null };
    }
    // One more than asked tells whether there is a next page.
    const events = await this.deps.store.getWorkflowEvents(wf.id, page.after, page.limit + 1);
    if (events.length <= page.limit) return { events, next: null };
    events.length = page.limit;
    return { events, next: events.at(-1)!.seq };
  }

  /**
   * The last `last` steps of the instance's history, oldest first, without
   * their data (but a MIGRATE's): what the console's graph draws of each
   * step. A signal may carry a megabyte; 500 steps read whole could be half
   * a gigabyte for their states alone.
   */
  async steps(wf: WorkflowRecord, last: number): Promise<WorkflowHistoryStep[]> {
    const steps = await this.deps.store.workflowEventSteps(wf.id, Math.max(0, wf.version - last));
    // Steps taken since `wf` was read come too: still only the last `last`.
    return steps.slice(-last);
  }

  /** `events`, bounded in bytes: the sizes first, then the events that fit. */
  private async eventsWithin(
    wf: WorkflowRecord, page: { last: number } | { after: number; limit: number }, maxBytes: number,
  ): Promise<{ events: WorkflowEventRecord[]; next: number | null }> {
    const { store } = this.deps;
    if ('last' in page) {
      // Steps taken since `wf` was read come too: still only the last `last`, the newest that fit.
      const sizes = (await store.workflowEventSizes(wf.id, Math.max(0, wf.version - page.last))).slice(-page.last);
      const taken = fitting(sizes.map((s) => s.bytes).reverse(), maxBytes);
      if (taken === 0) return { events: [], next: null };
      const from = sizes[sizes.length - taken]!.seq;
      return { events: await store.getWorkflowEvents(wf.id, from - 1, taken), next: null };
    }
    // One more than asked tells whether there is a next page.
    const sizes = await store.workflowEventSizes(wf.id, page.after, page.limit + 1);
    const taken = fitting(sizes.slice(0, page.limit).map((s) => s.bytes), maxBytes);
    if (taken === 0) return { events: [], next: null };
    const events = await store.getWorkflowEvents(wf.id, page.after, taken);
    return { events, next: sizes.length > taken && events.length === taken ? events.at(-1)!.seq : null };
  }

  /** The state values of the active instances of `wf`'s tenant, name and definition version, at most `limit` (the console's live counts). */
  activeValues(wf: WorkflowRecord, limit: number): Promise<unknown[]> {
    return this.deps.store.activeWorkflowValues(wf.tenant, wf.name, wf.definitionVersion, limit);
  }

  /** One page of a tenant's instances, newest first, of at most about `maxBytes` (for the API; `filter.tenant` says whose). */
  list(filter: WorkflowFilter, maxBytes: number): Promise<WorkflowRecordPage> {
    return this.deps.store.listWorkflowPage(filter, maxBytes);
  }

  /** The live children with their jobs' states now. */
  async children(wf: WorkflowRecord): Promise<ChildView[]> {
    return (await this.childrenOf([wf]))[0]!;
  }

  /** `children` of each of `wfs` (a page of a list), their jobs' states read together. */
  async childrenOf(wfs: readonly WorkflowRecord[]): Promise<ChildView[][]> {
    const ids = wfs.flatMap((wf) => wf.state.children.map((c) => c.jobId));
    const states = ids.length === 0 ? new Map<string, string>() : await this.deps.store.jobStates(ids);
    return wfs.map((wf) => wf.state.children.map((c) => ({ invokeId: c.invokeId, jobId: c.jobId, jobType: c.jobType, state: states.get(c.jobId) ?? null })));
  }

  /** The event types the instance takes now (empty once it ended, or without its definition). */
  accepts(wf: WorkflowRecord): string[] {
    // Nothing for a stored state the registered definition does not have (one changed under the same
    // version): the instance takes no event until it has (see `decideStep`).
    const def = this.placeableDefinitionOf(wf);
    return def && wf.state.status === 'active' ? acceptedEvents(def, wf.state) : [];
  }

  /**
   * Replays the instance's history through its definition and compares the
   * result with the stored state. `ok: false` names the first difference.
   * The history up to `wf`'s version is read and replayed a page at a time
   * (`VERIFY_PAGE` events), so a long one neither sits in memory whole nor
   * holds the event loop; steps taken since `wf` was read are not replayed.
   */
  async verify(wf: WorkflowRecord): Promise<{ ok: true; events: number } | { ok: false; events: number; problem: string }> {
    const def = this.definitionOf(wf);
    const pages = this.historyPages(wf.id, wf.version);
    let count = 0;
    /** The problem, with every event up to `wf`'s version counted. */
    const fail = async (problem: string) => {
      for await (const page of pages) count += page.length;
      return { ok: false as const, events: count, problem };
    };
    const first = await pages.next();
    if (!first.done) count += first.value.length;
    const start = first.done ? undefined : first.value[0];
    if (!def) return fail(`definition ${wf.name} version ${wf.definitionVersion} is not registered`);
    if (!start || start.type !== 'START') return fail('the history does not begin with START');
    const data = start.data as { input: unknown; jobIds: string[]; version?: number };
    const startVersion = data.version ?? await this.firstVersion(wf);
    let replay: HistoryReplay;
    try {
      replay = historyReplay((v) => this.deps.definitions.workflowDefinition(wf.name, v), { version: startVersion, input: data.input, at: start.at, jobIds: data.jobIds });
    } catch (err) {
      return fail((err as Error).message);
    }
    let page = first.value!;
    for (let seq = 0, i = 0; ; i++) {
      if (i === page.length) {
        const next = await pages.next();
        if (next.done) break;
        page = next.value;
        count += page.length;
        i = 0;
      }
      const e = page[i]!;
      if (e.seq !== ++seq) return fail(`the history has a gap before seq ${e.seq}`);
      if (seq === 1) continue; // the START replay began with
      try {
        replay.feed(recorded(e));
      } catch (err) {
        return fail((err as Error).message);
      }
    }
    if (count !== wf.version) return fail(`the history holds ${count} events up to the instance's version ${wf.version}`);
    const replayed = replay.result();
    if (replayed.version !== wf.definitionVersion) {
      return { ok: false, events: count, problem: `replaying the history ends at version ${replayed.version}, the instance is at ${wf.definitionVersion}` };
    }
    if (!isDeepStrictEqual(replayed.state, asStored(wf.state))) {
      return { ok: false, events: count, problem: 'replaying the history gives a different state than the stored one' };
    }
    return { ok: true, events: count };
  }

  /**
   * The instance's history up to seq `upTo`, in pages of `VERIFY_PAGE` events,
   * oldest first. Between pages it lets the event loop's other work run (an
   * embedded store reads synchronously: an await alone would not).
   */
  private async *historyPages(id: string, upTo: number): AsyncGenerator<WorkflowEventRecord[], void> {
    for (let after = 0; after < upTo;) {
      if (after > 0) await yieldToEventLoop();
      const page = (await this.deps.store.getWorkflowEvents(id, after, Math.min(VERIFY_PAGE, upTo - after))).filter((e) => e.seq <= upTo);
      if (page.length > 0) yield page;
      if (page.length < VERIFY_PAGE) return;
      after = page.at(-1)!.seq;
    }
  }

  /** The version an instance started at, for a START that did not record it: the first MIGRATE's `from`, or its version now when it never moved. */
  private async firstVersion(wf: WorkflowRecord): Promise<number> {
    for await (const page of this.historyPages(wf.id, wf.version)) {
      const m = page.find((e) => e.type === 'MIGRATE');
      if (m) return (m.data as { from: number }).from;
    }
    return wf.definitionVersion;
  }
}

/**
 * Why definition `def` cannot hold an active instance's stored state, or null
 * when it can: a state it does not have, or a running child of an invocation
 * the states it is in do not have. After every step, each child not spawned
 * belongs to an invocation of a state the instance is in (machines/workflow.ts
 * `effectsOf`), so either means a definition changed under the same version.
 */
function unplaceable(def: WorkflowDefinition, state: WorkflowRecord['state']): string | null {
  let snapshot: ReturnType<typeof restoreSnapshot>;
  try {
    snapshot = restoreSnapshot(def, state);
  } catch (err) {
    return (err as Error).message;
  }
  const active = activeInvokeIds(snapshot);
  const lost = state.children.find((c) => !c.spawned && !active.has(c.invokeId));
  if (lost) return `the states it is in have no invocation ${lost.invokeId} (of its job ${lost.jobId})`;
  // An `after` timer is cancelled when its state is left, so each one stored is of a state the instance is in.
  const fits = timerFits(snapshot);
  const stray = state.timers.find((t) => !fits(t));
  return stray ? `the states it is in have no after transition for its timer ${stray.event.type}` : null;
}

/** A message to take, by id: the step reads it with the instance (`WorkflowService.receive`). */
interface MessageInput {
  type: 'MESSAGE-ID';
  messageId: string;
}

/** Starts tried again when the instance holding their idempotency key went between the insert and the lookup. */
const KEY_HOLDER_GONE_TRIES = 3;

/** Events `verify` reads and replays at a time. */
const VERIFY_PAGE = 1_000;

/** Messages one `receive` reads at a time. */
const RECEIVE_BATCH = 100;
/** How long the timers of an instance whose definition version this process lacks are not tried here. */
const LACKING_RECHECK_MS = 60_000;
/** Instances remembered as lacking their definition version (all forgotten at once beyond). */
const MAX_LACKING = 10_000;
/** Pages of due timers one timer pass reads at most. */
const TIMER_PAGES_PER_PASS = 10;

/**
 * A failure that says nothing about the instance stepped: the database or the
 * log unreachable (503), or a race lost too often. The work it stopped is
 * tried again as a whole (the pass, the sweep, the log's records).
 */
const passing = (err: unknown): boolean => isAtsError(err) && (err.status === 503 || err.code === 'ATS_ERR_CONCURRENT_UPDATE');

/**
 * The 400 a signal's type is refused with, or null for a type a signal may
 * have: one of the engine's (`xstate.*`), or `*` (XState's wildcard,
 * machines/workflow.ts `WILDCARD_EVENT_TYPE`). `where` names the type's place.
 */
export function signalTypeRefusal(type: string, where: string): AtsError | null {
  if (!isUserEventType(type)) return new AtsError('ATS_ERR_VALIDATION', `${where}: event types starting with xstate. are the engine's`);
  if (type === WILDCARD_EVENT_TYPE) {
    return new AtsError('ATS_ERR_VALIDATION', `${where}: * is XState's wildcard (any event, in a machine's on), not an event's type; a signal cannot have it`);
  }
  return null;
}

/**
 * Refuses a start's input or a signal's event that the instance's history
 * could not keep: one JSON cannot write (a TypeError: the caller's mistake),
 * or one past MAX_WORKFLOW_VALUE_BYTES of JSON (413; over HTTP the body limit
 * comes first). Recorded as it came, such a value would fail the write.
 */
function checkRecorded(what: string, value: unknown): string {
  const json = jsonSize(value);
  if ('error' in json) throw new TypeError(`${what} cannot be stored as JSON: ${json.error}`);
  if (json.bytes > MAX_WORKFLOW_VALUE_BYTES) {
    throw new AtsError('ATS_ERR_PAYLOAD_TOO_LARGE', `${what} is ${json.bytes} bytes of JSON, more than the ${MAX_WORKFLOW_VALUE_BYTES} a workflow keeps`);
  }
  return json.text;
}

/**
 * The most bytes of SQL text a new instance's input and first state may take
 * together: both go in one row, one statement, and MariaDB takes at most
 * `max_allowed_packet` (16 MiB by default) in one; a megabyte is left for the
 * rest of it.
 */
export const MAX_START_ROW_SQL_BYTES = 15 * 1024 * 1024;

/** The bytes `json` takes as a quoted SQL literal: its own, and one more for each backslash and quote escaped. */
function sqlTextBytes(json: string): number {
  let escaped = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 92 || c === 39) escaped++;
  }
  return Buffer.byteLength(json) + escaped;
}

/**
 * The messages a step of `wf` (at `seq`) sends, with the outbox rows that
 * announce them. A message's id is its place: the sender, the step, its order in it.
 */
function messagesOf(wf: WorkflowRecord, seq: number, sends: readonly WorkflowSend[], at: number): Pick<WorkflowWrite, 'messages'> {
  if (sends.length === 0) return {};
  const rows: WorkflowMessageRecord[] = sends.map((m, n) => ({
    messageId: `${wf.id}:${seq}:${n}`, targetId: m.to, tenant: wf.tenant, senderId: wf.id, event: m.event, createdAt: at,
  }));
  return { messages: { rows, outbox: rows.map((r) => workflowMessageNotice({ workflowId: r.targetId, messageId: r.messageId, tenant: r.tenant })) } };
}

/** Says a step moved the instance to a newer version (the caller steps again). */
const MIGRATED = Symbol('migrated');

/** The end of a child job as it stands now, as its `child-ended` message would say; null while it is live. */
function endedChild(wf: WorkflowRecord, invokeId: string, jobId: string, job: JobRecord | null): ChildEndedMessage | null {
  if (!job) {
    return { workflowId: wf.id, invokeId, jobId, tenant: wf.tenant, state: 'cancelled', error: { message: 'the job is gone (deleted)', name: 'Cancelled' }, at: wf.updatedAt };
  }
  const state = job.snapshot.value;
  if (!isTerminal(state)) return null;
  return childEndedMessage(job, { workflowId: wf.id, invokeId }, state as ChildEndedMessage['state'], job.updatedAt);
}

function recorded(e: WorkflowEventRecord): RecordedStep {
  const { jobIds, ...input } = e.data as HistoryInput & { jobIds: string[] };
  return { input: input as HistoryInput, at: e.at, jobIds };
}

const cancelReason = (input: HistoryInput): string =>
  input.type === 'CANCEL' ? `cancelled${input.reason ? `: ${input.reason}` : ''}`
    : input.type === 'MIGRATE' ? `version ${input.to} has no such invocation` : 'its invocation was left';

/**
 * CANCEL transitions for the children a step leaves; a child that already
 * ended gets none. What the store's last call wrote, with each child as read,
 * is kept in `into` (for the metrics, once the step committed).
 */
function cancelChildren(ids: readonly string[], at: number, reason: string, into: CancelledChildren): Decide<unknown> {
  return (jobs: ReadonlyMap<string, JobRecord>) => {
    const writes: TransitionWrite[] = [];
    const before: JobRecord[] = [];
    for (const id of ids) {
      const job = jobs.get(id);
      const w = job && transitionWrite(job, { type: 'CANCEL', at, reason });
      if (w) {
        writes.push(w);
        before.push(job);
      }
    }
    into.writes = writes;
    into.before = before;
    return { writes, result: null };
  };
}

/** The CANCELs a step's `cancel.decide` wrote, each with the child as it was read. */
interface CancelledChildren {
  writes: TransitionWrite[];
  before: JobRecord[];
}

/** A step as decided: its write (null: nothing to commit) and, once the store ran its cancels, what they wrote. */
interface StepDecision {
  write: WorkflowWrite | null;
  cancelled: CancelledChildren | null;
}

const NO_STEP: StepDecision = Object.freeze({ write: null, cancelled: null });

/**
 * Tells the metrics what a committed step wrote to jobs, in one report as
 * the transition service gives its own: the CANCELs of the children it left
 * (each with the job before it), then its children's submits (before: null).
 */
function reportChildren(metrics: Pick<Metrics, 'transitionsCommitted'>, write: WorkflowWrite, cancelled: CancelledChildren | null): void {
  const cancels = cancelled?.writes ?? [];
  if (cancels.length === 0 && write.jobs.length === 0) return;
  metrics.transitionsCommitted([...cancels, ...write.jobs], [...(cancelled?.before ?? []), ...write.jobs.map(() => null)]);
}

/** A start whose key instance `existing` holds: that instance when the start is the same (`hash`), else a conflict. */
function asRepeated(existing: WorkflowRecord, hash: string): StartResult {
  return existing.requestHash === hash ? { ok: true, workflow: existing, created: false } : { ok: false, reason: 'idempotency-conflict', workflow: existing };
}

/** sha256 of a start as given, to tell a repeated start from a conflicting one. */
function startHash(spec: StartSpec): string {
  return createHash('sha256').update(canonicalJson({ name: spec.name, input: spec.input ?? null })).digest('hex');
}

export interface WorkflowDriverOptions {
  /** How often to look for due timers. @defaultValue 250 */
  pollMs: number;
  /** Timers fired per query. @defaultValue 100 */
  batchSize: number;
  /** Instances whose children's ends one batch of records delivers at once. @defaultValue DELIVERY_CONCURRENCY */
  deliveryConcurrency?: number;
  /**
   * How often to sweep for children's ends and messages the log lost
   * (WorkflowService.sweep, sweepMessages): over every active instance, for
   * ends and messages this old. @defaultValue 60000
   */
  sweepMs?: number;
  /** Sweep every active instance before consuming (the in-process log: nothing survives a restart). @defaultValue false */
  sweepAtStart?: boolean;
}

/** Instances one sweep query looks at. */
const SWEEP_BATCH = 500;

/** Deliveries to different instances in flight at once, per batch of records. */
export const DELIVERY_CONCURRENCY = 16;


/**
 * Drives instances forward from the engine's side: delivers children's ends
 * from `ats.workflows` (consumer group `ats-workflows`, keyed by instance, so
 * one instance's deliveries are handled in order by one process) and fires
 * due timers. Runs with the timers role; several may run.
 */
export class WorkflowDriver {
  private readonly loop = new BackgroundLoop((signal) => pollUntilAborted(signal, {
    clock: this.deps.clock, logger: this.deps.logger, failure: 'workflows: timer pass failed', pollMs: this.opts.pollMs,
    pass: async () => {
      const now = this.deps.clock.now();
      const sweepMs = this.opts.sweepMs ?? 60_000;
      if (now - this.lastSweep >= sweepMs && this.sweeping === null) {
        // Beside the timers, not before them: a sweep reads every active instance, and timers must not wait for it.
        this.lastSweep = now;
        // Each failure at its sweep's start, a minute from the last: told each, however long the last took to fail (a connect timeout).
        this.sweeping = this.sweep(now - sweepMs, this.stopping.signal)
          .then(() => this.sweepOutage.succeeded(), (err: unknown) => this.sweepOutage.failed(err, now))
          .finally(() => (this.sweeping = null));
      }
      // A stop tells the pass: it gives up at its next step, and the stop waits only for the step in flight.
      return (await this.deps.service.fireDueTimers(this.opts.batchSize, signal)) >= this.opts.batchSize;
    },
  }));
  private lastSweep = 0;
  /** Sweeps that fail (the database down; once a minute): each told with the failures so far, then the first that works. */
  private readonly sweepOutage: OutageLog;
  /** The sweep running beside the timer passes, if one is. */
  private sweeping: Promise<void> | null = null;
  /** Aborted by `stop`: a sweep running beside the timers ends between two instances, not at the end of all of them. */
  private stopping = new AbortController();
  private subscription: Subscription | null = null;

  constructor(
    private readonly deps: { log: EventLog; service: WorkflowService; clock: Clock; logger: Logger },
    private readonly opts: WorkflowDriverOptions = { pollMs: 250, batchSize: 100 },
  ) {
    this.sweepOutage = new OutageLog(deps.logger, 'workflows: sweep', { failedMessage: 'workflows: sweep failed, will run again' });
  }

  /**
   * Sweeps every active instance (not only the quiet ones: an instance that
   * keeps taking signals still waits for the end the log lost), SWEEP_BATCH
   * at a time in id order, delivering the ends of children that ended by
   * `endedBefore`; then the messages stored by then. Logs what it applied.
   * `signal` aborted, it ends at once (the next sweep goes over them all again).
   */
  private async sweep(endedBefore: number, signal?: AbortSignal): Promise<void> {
    let applied = 0;
    let after: string | undefined;
    for (;;) {
      const r = await this.deps.service.sweep(SWEEP_BATCH, after, endedBefore, signal);
      applied += r.applied;
      if (!r.last || signal?.aborted) break;
      after = r.last;
    }
    if (applied > 0) this.deps.logger.info('workflows: delivered children\'s ends the log had lost', { applied });
    if (signal?.aborted) return;
    const messages = await this.deps.service.sweepMessages(endedBefore, SWEEP_BATCH, signal);
    if (messages > 0) this.deps.logger.info('workflows: delivered messages between instances the log had lost', { applied: messages });
  }

  async start(): Promise<void> {
    const { log, service, logger } = this.deps;
    const stopping = new AbortController();
    this.stopping = stopping;
    if (this.opts.sweepAtStart) {
      this.lastSweep = this.deps.clock.now();
      // One instance's failure is set aside by the sweep; the database unreachable fails the start.
      await this.sweep(this.lastSweep, stopping.signal);
    }
    const subscription = await log.consume({
      topic: TOPICS.workflows, groupId: 'ats-workflows', fromBeginning: true,
      // A stop gives up a join still in progress (up to the log's ready timeout, 30 s on Kafka).
      signal: stopping.signal,
      handle: async (records) => {
        // One instance's ends and messages in order; different instances' at once (each is its own transaction).
        const byInstance = new Map<string, (ChildEndedMessage | null)[]>();
        for (const record of records) {
          const kind = record.headers[KIND_HEADER];
          if ((kind !== CHILD_ENDED_KIND && kind !== WORKFLOW_MESSAGE_KIND) || !readableSchema(record.headers)) continue;
          let msg: ChildEndedMessage | WorkflowMessageNotice;
          try {
            msg = JSON.parse(record.value) as ChildEndedMessage | WorkflowMessageNotice;
          } catch (err) {
            logger.error(`workflows: a ${kind} message is not JSON; skipped`, { ...errorFields(err), offset: record.offset });
            continue;
          }
          // null: messages wait for the instance (one `receive` takes every one waiting).
          const item = kind === CHILD_ENDED_KIND ? msg as ChildEndedMessage : null;
          const list = byInstance.get(msg.workflowId);
          if (!list) byInstance.set(msg.workflowId, [item]);
          else if (item !== null || list.at(-1) !== null) list.push(item);
        }
        await inParallel([...byInstance.entries()], this.opts.deliveryConcurrency ?? DELIVERY_CONCURRENCY, async ([workflowId, items]) => {
          try {
            for (const item of items) {
              if (item) await service.deliver(item);
              else await service.receive(workflowId);
            }
          } catch (err) {
            // The database or the log: the records come again. This instance's own step failing (a write
            // the store refuses every time): the others' go on, and the sweep delivers what still waits.
            if (passing(err)) throw err;
            logger.error('workflows: a delivery to an instance failed; the sweep tries it again, the other instances\' go on', { workflowId, ...errorFields(err) });
          }
        });
      },
    });
    // Stopped while it joined (the join ended anyway): the stop found no subscription to stop, so this one stops here.
    if (stopping.signal.aborted) {
      await subscription.stop();
      return;
    }
    this.subscription = subscription;
    this.loop.start();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop.stop();
    await this.sweeping;
    await this.subscription?.stop();
    this.subscription = null;
  }
}

