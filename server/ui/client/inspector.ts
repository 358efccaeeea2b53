/**
 * The job inspector: one job's facts (run and attempt, priority, timeout, due,
 * submitted and updated times), the advisor's prediction of its start and
 * finish while it is live, the latest progress its handler reported (a bar
 * for a number, the JSON for an object, with the attempt and the time: from
 * `GET /v1/jobs/:id`, then live from the stream's `progress` messages), its
 * last error with the handler's stack, its timeline (each event with time, run and attempt, error or result), a
 * time-travel slider that marks on the machine the state and the edge of each
 * step, and Cancel / Redrive buttons enabled only when the job's `allowed`
 * list (from the machine) says so.
 */
import { ApiError, errorText, waitingText, type Api, type EventView, type JobDetail } from './api.js';
import { byId, clockTime, dateTime, duration, h, jsonLine, jsonText, moveOn, stateBadge, timeEl } from './dom.js';
import { edgeKey } from './graph-layout.js';
import type { MachineView } from './graph-view.js';
import { etaShown, type EtaPoint } from './insights.js';
import { leaseEndText, outcomeText } from './outcome.js';
import { explain, UNKNOWN_PERMISSIONS, type Permissions } from './permissions.js';
import {
  newerProgress, progressAttemptText, progressFromMessage, progressOfJob, progressShown, type Progress, type StreamProgressMessage,
} from './progress.js';
import { currentRun, runsOf, type RunAttempt } from '../../../machines/runs.js';

export interface Inspector {
  open(id: string): Promise<void>;
  /** Reload the open job shortly, at most every 250 ms (it changed, or may have). */
  refreshSoon(): void;
  /** A stream `progress` message: shown if it is of the open job and newer than what is shown. */
  showProgress(message: StreamProgressMessage): void;
  readonly jobId: string | null;
}

export interface InspectorDeps {
  api: Api;
  view: MachineView;
  /** Told when the open job changes (or the inspector closes: null). */
  onOpen(id: string | null): void;
  /** Told when time travel starts (the slider leaves the last step) and ends (back at the last step, or closed). */
  onTimeTravel(active: boolean): void;
  /** The time now (ms), for "due in ..."; the page's clock. */
  now(): number;
  /** What the tab's key may do: Cancel and Redrive stay disabled, saying why, for a key without the operate scope. */
  permissions?: Permissions;
}

const SOON_MS = 250;
/** How often the ETA's and the due time's "in 12 s" move on between reloads. */
const TICK_MS = 1000;
/** States in which `runAt` is the time the job is waiting for. */
const WAITING = new Set(['pending', 'retrying']);

interface Elements {
  detail: HTMLElement;
  empty: HTMLElement;
  error: HTMLElement;
  title: HTMLElement;
  facts: HTMLElement;
  eta: HTMLElement;
  etaFacts: HTMLElement;
  progress: HTMLElement;
  progressMeta: HTMLElement;
  progressValue: HTMLElement;
  slider: HTMLInputElement;
  stepLabel: HTMLElement;
  timeline: HTMLOListElement;
  payload: HTMLElement;
  outcome: HTMLElement;
  jobError: HTMLElement;
  jobErrorText: HTMLElement;
  stack: HTMLElement;
  cancel: HTMLButtonElement;
  redrive: HTMLButtonElement;
  close: HTMLButtonElement;
}

const elements = (): Elements => ({
  detail: byId('job-detail'), empty: byId('inspector-empty'), error: byId('inspector-error'),
  title: byId('job-title'), facts: byId('job-facts'), eta: byId('job-eta'), etaFacts: byId('job-eta-facts'),
  progress: byId('job-progress'), progressMeta: byId('job-progress-meta'), progressValue: byId('job-progress-value'), slider: byId('time-travel'),
  stepLabel: byId('step-label'), timeline: byId('timeline'), payload: byId('job-payload'),
  outcome: byId('job-outcome'), jobError: byId('job-error'), jobErrorText: byId('job-error-text'), stack: byId('job-stack'),
  cancel: byId('cancel-btn'), redrive: byId('redrive-btn'), close: byId('close-job'),
});

interface ErrorData {
  message?: unknown;
  name?: unknown;
  stack?: unknown;
  retryable?: unknown;
}

const runText = (r: RunAttempt): string => (r.attempt === null ? `run ${r.run}` : `run ${r.run} · attempt ${r.attempt}`);

/** What one event says beyond its type: run and attempt, error, result, reason. */
function eventDetails(e: EventView, r: RunAttempt): string[] {
  const d = (e.data ?? {}) as Record<string, unknown>;
  const out: string[] = [];
  if (r.attempt !== null || r.run > 1) out.push(runText(r));
  if (e.type === 'SUBMITTED' && typeof d.maxAttempts === 'number') out.push(`up to ${d.maxAttempts} attempts a run`);
  if (e.type === 'SUBMITTED' && typeof d.runAt === 'number' && typeof d.at === 'number' && d.runAt > d.at) {
    out.push(`due ${dateTime(new Date(d.runAt).toISOString())}`);
  }
  if (typeof d.workerId === 'string') out.push(`worker ${d.workerId}`);
  const err = d.error as ErrorData | undefined;
  if (err && typeof err.message === 'string') {
    out.push(`error: ${typeof err.name === 'string' ? `${err.name}: ` : ''}${err.message}${err.retryable === false ? ' (not retryable)' : ''}`);
  }
  if (e.type === 'LEASE_EXPIRED') out.push(leaseEndText(e.data));
  if (e.type === 'SUCCEEDED' && 'result' in d) out.push(`result: ${jsonLine(d.result)}`);
  if (typeof d.reason === 'string') out.push(`reason: ${d.reason}`);
  return out;
}

function timelineItem(e: EventView, step: number, r: RunAttempt): HTMLLIElement {
  const stack = ((e.data ?? {}) as { error?: ErrorData }).error?.stack;
  return h('li', { 'data-step': step, 'data-seq': e.seq, 'data-run': r.run },
    h('span', { class: 'tl-seq' }, `#${e.seq}`),
    h('span', { class: 'tl-type' }, e.type),
    h('span', { class: 'tl-move' }, `${e.from ?? '∅'} → ${e.to}`),
    h('time', { datetime: e.at, title: dateTime(e.at) }, clockTime(e.at)),
    ...eventDetails(e, r).map((t) => h('span', { class: t.startsWith('error') ? 'tl-detail tl-error' : 'tl-detail' }, t)),
    typeof stack === 'string' && h('details', { class: 'tl-stack' }, h('summary', {}, 'stack'), h('pre', {}, stack)),
  );
}

/** Scroll the timeline (not the page) so the current step shows. */
function keepInView(box: HTMLElement, item: HTMLElement | undefined): void {
  if (!item) return;
  const top = item.offsetTop; // the timeline is the offsetParent (position: relative)
  if (top < box.scrollTop || top + item.offsetHeight > box.scrollTop + box.clientHeight) {
    box.scrollTop = top - (box.clientHeight - item.offsetHeight) / 2;
  }
}

function fact(name: string, value: Node | string, key = name): HTMLElement {
  return h('div', { 'data-fact': key }, h('dt', {}, name), h('dd', {}, value));
}

/** ` (in 12 s)` or ` (now)`: how long until `due`. */
const dueIn = (due: number, now: number): string => (due - now > 0 ? ` (in ${duration(due - now)})` : ' (now)');

function dueFact(job: JobDetail, now: number): HTMLElement | null {
  if (!WAITING.has(job.state)) return null;
  const due = Date.parse(job.runAt);
  // The wait is moved on every second (moveOn): the job is read again only when it changes.
  return fact('due', h('span', {}, timeEl(job.runAt), h('span', { 'data-due-at': due }, dueIn(due, now))));
}


/** A predicted time: relative ("in 12 s"), the local date and time in its tooltip. */
const etaTime = (p: EtaPoint): HTMLTimeElement =>
  h('time', { datetime: p.iso, title: Number.isFinite(p.at) ? dateTime(p.iso) : p.iso, 'data-eta-at': p.key }, p.text);

/** The advisor's ETA of a live job; hidden when the job has none (finished, advisor off, no history yet). */
function renderEta(el: Elements, job: JobDetail, now: number): void {
  const eta = etaShown(job.eta, job.state, now);
  el.eta.hidden = !eta;
  if (!eta) {
    el.etaFacts.replaceChildren();
    return;
  }
  el.etaFacts.replaceChildren(
    fact(eta.start.label, etaTime(eta.start), 'eta-start'),
    fact(eta.finish.label, etaTime(eta.finish), 'eta-finish'),
    fact('based on', eta.basis, 'eta-basis'),
  );
}

/** Move the ETA's relative times on, in place (a tooltip being read stays). */
function tickEta(el: Elements, job: JobDetail | null, now: number): void {
  if (!job || el.eta.hidden) return;
  const eta = etaShown(job.eta, job.state, now);
  if (!eta) return;
  for (const p of [eta.start, eta.finish]) {
    const t = el.etaFacts.querySelector(`[data-eta-at="${p.key}"]`);
    if (t && t.textContent !== p.text) t.textContent = p.text;
  }
}

/** The job's latest progress; hidden when it has none (or the server does not tell). */
function renderProgress(el: Elements, job: JobDetail, p: Progress | null): void {
  el.progress.hidden = !p;
  if (!p) {
    el.progressMeta.replaceChildren();
    el.progressValue.replaceChildren();
    return;
  }
  const shown = progressShown(p.value);
  el.progress.setAttribute('data-attempt', String(p.attempt));
  el.progressMeta.replaceChildren(
    `· ${progressAttemptText(p, job.events, job.attempt)} · `,
    h('time', { datetime: p.at, title: dateTime(p.at) }, clockTime(p.at)),
  );
  el.progressValue.replaceChildren(shown.kind === 'bar'
    ? h('div', { class: 'progress-bar', 'data-progress': 'bar' },
      h('progress', { max: 100, value: shown.percent, 'aria-label': `Progress: ${shown.text}` }, shown.text),
      h('span', {}, shown.text))
    : h('pre', { 'data-progress': 'json' }, shown.text));
}

function renderFacts(el: Elements, job: JobDetail, now: number, permissions: Permissions): void {
  el.title.replaceChildren(h('span', { class: 'job-type' }, job.type), ' ', stateBadge(job.state));
  const cur = currentRun(job.events, job.attempt);
  const attemptText = cur.run > 1
    ? `run ${cur.run}, attempt ${cur.attempt} of ${job.maxAttempts} (${job.attempt} in all)`
    : `${cur.attempt} of ${job.maxAttempts}`;
  el.facts.replaceChildren(
    fact('id', h('code', {}, job.id)),
    fact('queue', job.queue),
    fact('attempt', attemptText),
    fact('priority', String(job.priority)),
    fact('timeout', duration(job.timeoutMs)),
    dueFact(job, now) ?? '',
    // What it waits for, as the server read it with the job (a server older than the field sends none).
    job.waiting ? fact('waiting', waitingText(job, job.waiting)) : '',
    fact('submitted', timeEl(job.createdAt)),
    fact('updated', timeEl(job.updatedAt)),
    job.idempotencyKey ? fact('idempotency key', h('code', {}, job.idempotencyKey), 'idempotency-key') : '',
    fact('allowed', job.allowed.length ? job.allowed.join(', ') : 'none'),
  );
  el.payload.textContent = jsonText(job.payload);
  el.outcome.textContent = outcomeText(job);

  const err = job.lastError;
  el.jobError.hidden = !err;
  if (err) {
    const at = runsOf(job.events).findLast((r, i) => job.events[i]?.type.match(/^(FAILED|LEASE_EXPIRED)$/) && r.attempt !== null);
    el.jobErrorText.replaceChildren(
      h('strong', {}, err.name ?? 'Error'), `: ${err.message}`,
      h('span', { class: 'muted' }, ` — ${at ? runText(at) : `attempt ${err.attempt}`}${err.retryable ? '' : ', not retryable'}`),
    );
    el.stack.textContent = err.stack ?? '(no stack trace recorded)';
  }
  el.cancel.disabled = !job.allowed.includes('CANCEL') || permissions.denied('cancel') !== null;
  el.redrive.disabled = !job.allowed.includes('REDRIVE') || permissions.denied('redrive') !== null;
}

export function createInspector(deps: InspectorDeps): Inspector {
  const el = elements();
  const permissions = deps.permissions ?? UNKNOWN_PERMISSIONS;
  explain(el.cancel, permissions.denied('cancel'));
  explain(el.redrive, permissions.denied('redrive'));
  let job: JobDetail | null = null;
  let openId: string | null = null;
  /** Why the server refused the last Cancel or Redrive of the open job (its error), said until another press or job. */
  let refusal = '';
  /** The open job's progress shown (or received before the job loaded). */
  let progress: Progress | null = null;
  let soon: number | undefined;
  let travelling = false;

  const setTravelling = (on: boolean) => {
    if (on === travelling) return;
    travelling = on;
    deps.onTimeTravel(on);
  };

  const showStep = (step: number) => {
    if (!job) return;
    const e = job.events[step - 1];
    if (!e) return;
    deps.view.showStep({ state: e.to, edge: edgeKey(e.from, e.type, e.to) });
    el.stepLabel.textContent = `step ${step} of ${job.events.length}: ${e.type} → ${e.to}`;
    for (const li of Array.from(el.timeline.children)) {
      const n = Number(li.getAttribute('data-step'));
      li.classList.toggle('future', n > step);
      if (n === step) li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
    }
    keepInView(el.timeline, el.timeline.children[step - 1] as HTMLElement | undefined);
    setTravelling(step < job.events.length);
  };

  const render = (next: JobDetail) => {
    // A slider left at the last step follows the job as it moves on.
    const following = !job || job.id !== next.id || Number(el.slider.value) >= job.events.length;
    job = next;
    progress = newerProgress(progress, progressOfJob(next));
    renderFacts(el, next, deps.now(), permissions);
    renderEta(el, next, deps.now());
    renderProgress(el, next, progress);
    const runs = runsOf(next.events);
    el.timeline.replaceChildren(...next.events.map((e, i) => timelineItem(e, i + 1, runs[i]!)));
    el.slider.max = String(Math.max(1, next.events.length));
    if (following) el.slider.value = el.slider.max;
    el.slider.disabled = next.events.length < 2;
    el.empty.hidden = true;
    el.detail.hidden = false;
    showStep(Number(el.slider.value));
  };

  const load = async () => {
    const id = openId;
    if (!id) return;
    try {
      const next = await deps.api.job(id);
      if (openId !== id) return; // another job was opened meanwhile
      // A read again (the counts moved, the job changed) keeps the refusal of a press on it said.
      el.error.textContent = refusal;
      render(next);
    } catch (err) {
      if (openId !== id) return;
      el.error.textContent = errorText(err);
      // A 404 of a job shown: gone (deleted, or removed by retention), its picture and buttons with it.
      if (err instanceof ApiError && err.status === 404) job = null;
      if (!job) {
        // Nothing of this job to show (a mistyped id, say): hide the last job's picture too.
        el.detail.hidden = true;
        deps.view.showStep(null);
        setTravelling(false);
      }
    }
  };

  const close = () => {
    openId = null;
    refusal = '';
    job = null;
    progress = null;
    el.detail.hidden = true;
    el.empty.hidden = false;
    el.error.textContent = '';
    deps.view.showStep(null);
    setTravelling(false);
    deps.onOpen(null);
  };

  const act = async (action: 'cancel' | 'redrive') => {
    if (!openId) return;
    el.cancel.disabled = el.redrive.disabled = true;
    refusal = '';
    try {
      await deps.api[action](openId);
    } catch (err) {
      refusal = errorText(err); // e.g. a 409: the job moved on since the page showed it
    }
    await load();
    if (refusal) el.error.textContent = refusal;
  };

  el.slider.addEventListener('input', () => showStep(Number(el.slider.value)));
  el.timeline.addEventListener('click', (ev) => {
    const target = ev.target as Element;
    if (target.closest('details')) return; // opening a stack is not a step
    const step = target.closest('[data-step]')?.getAttribute('data-step');
    if (!step) return;
    el.slider.value = step;
    showStep(Number(step));
  });
  el.cancel.addEventListener('click', () => void act('cancel'));
  el.redrive.addEventListener('click', () => void act('redrive'));
  el.close.addEventListener('click', close);
  window.setInterval(() => {
    tickEta(el, job, deps.now());
    moveOn(el.facts, 'data-due-at', dueIn, deps.now());
  }, TICK_MS);

  return {
    get jobId() {
      return openId;
    },
    async open(id) {
      openId = id;
      refusal = '';
      job = null;
      progress = null;
      deps.onOpen(id);
      await load();
    },
    refreshSoon() {
      if (!openId || soon !== undefined) return;
      soon = window.setTimeout(() => {
        soon = undefined;
        void load();
      }, SOON_MS);
    },
    showProgress(m) {
      if (m.jobId !== openId) return;
      const next = newerProgress(progress, progressFromMessage(m));
      if (next === progress) return;
      progress = next;
      if (job) renderProgress(el, job, progress);
    },
  };
}
