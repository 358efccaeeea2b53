/**
 * The job list (`GET /v1/jobs`): filters by state, type, queue and submit
 * time, cursor paging (older / newer), full ids with dates and times, and
 * bulk actions on a selection (redrive, cancel) answered job by job.
 *
 * Test ids: `tr[data-job-id]` per job (its checkbox `input[data-select]`),
 * `#bulk-results li[data-job-id][data-outcome="ok"|"error"]` per job acted on.
 */
import { ApiError, errorText, type Api, type JobView, type ListQuery } from './api.js';
import { byId, h, stateBadge, timeEl } from './dom.js';
import { explain, UNKNOWN_PERMISSIONS, type Permissions } from './permissions.js';

export interface JobList {
  refresh(): Promise<void>;
  /** Refresh shortly, at most once per 400 ms: a burst of transitions costs one request. */
  refreshSoon(): void;
  /** Mark the job open in the inspector. */
  select(id: string | null): void;
  /** Offer these types and queues in the filter fields (from the stats). */
  suggest(types: readonly string[], queues: readonly string[]): void;
}

type BulkAction = 'redrive' | 'cancel';

const SOON_MS = 400;
/** A list that could not be read is read again after this long (a server or database back from an outage). */
const RETRY_MS = 5000;
/** Jobs acted on at once by a bulk action. */
const BULK_CONCURRENCY = 4;

/** A `datetime-local` field's value (local time) as an ISO instant, or undefined when empty or invalid. */
function isoOf(local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** Whether reading again may answer otherwise: not for a 4xx (a refused key, filters the server refuses), except a 408 or 429. */
const mayPass = (err: unknown): boolean =>
  !(err instanceof ApiError) || err.status < 400 || err.status >= 500 || err.status === 408 || err.status === 429;

/** Run `fn` over `items`, at most `n` at once, keeping the order of the results. */
async function mapLimit<T, R>(items: readonly T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, lane));
  return out;
}

export function createJobList(api: Api, onPick: (id: string) => void, permissions: Permissions = UNKNOWN_PERMISSIONS): JobList {
  const form = byId<HTMLFormElement>('job-filters');
  const state = byId<HTMLSelectElement>('filter-state');
  const type = byId<HTMLInputElement>('filter-type');
  const queue = byId<HTMLInputElement>('filter-queue');
  const after = byId<HTMLInputElement>('filter-after');
  const before = byId<HTMLInputElement>('filter-before');
  const limit = byId<HTMLSelectElement>('filter-limit');
  const body = byId<HTMLTableSectionElement>('job-rows');
  const status = byId('job-list-status');
  const pageLabel = byId('job-page');
  const newer = byId<HTMLButtonElement>('page-newer');
  const older = byId<HTMLButtonElement>('page-older');
  const all = byId<HTMLInputElement>('select-all');
  const bulkRedrive = byId<HTMLButtonElement>('bulk-redrive');
  const bulkCancel = byId<HTMLButtonElement>('bulk-cancel');
  const bulkCount = byId('bulk-count');
  const results = byId('bulk-results');
  explain(bulkRedrive, permissions.denied('redrive'));
  explain(bulkCancel, permissions.denied('cancel'));

  let query: ListQuery = {};
  /** Cursors of the pages shown so far: cursors[i] opens page i + 1 (undefined: the first). */
  let cursors: (string | undefined)[] = [undefined];
  let nextCursor: string | null = null;
  let jobs: JobView[] = [];
  let open: string | null = null;
  const selected = new Set<string>();
  let soon: number | undefined;
  let retry: number | undefined;
  let busy = false;
  /** The query and page of the rows shown (null: none read yet, or the last read failed for another). */
  let shownView: string | null = null;
  /** Why the rows of the query and page asked for could not be read, said in the table (empty: they were). */
  let failed = '';

  const readFilters = (): ListQuery => {
    const q: ListQuery = { limit: Number(limit.value) || 50 };
    if (state.value) q.state = state.value as NonNullable<ListQuery['state']>;
    if (type.value.trim()) q.type = type.value.trim();
    if (queue.value.trim()) q.queue = queue.value.trim();
    const a = isoOf(after.value);
    const b = isoOf(before.value);
    if (a) q.createdAfter = a;
    if (b) q.createdBefore = b;
    return q;
  };

  const updateBulk = () => {
    const n = selected.size;
    bulkCount.textContent = n ? `${n} selected` : 'none selected';
    const chosen = jobs.filter((j) => selected.has(j.id));
    // A button is enabled when some selected job (on this page) accepts the action; the others answer 409.
    // A key without the scope of an action has it disabled whatever is selected (permissions.ts).
    bulkRedrive.disabled = busy || !chosen.some((j) => j.allowed.includes('REDRIVE')) || permissions.denied('redrive') !== null;
    bulkCancel.disabled = busy || !chosen.some((j) => j.allowed.includes('CANCEL')) || permissions.denied('cancel') !== null;
    const onPage = jobs.filter((j) => selected.has(j.id)).length;
    all.checked = jobs.length > 0 && onPage === jobs.length;
    all.indeterminate = onPage > 0 && onPage < jobs.length;
  };

  const row = (job: JobView): HTMLTableRowElement =>
    h('tr', { 'data-job-id': job.id, 'aria-current': job.id === open ? 'true' : false },
      h('td', { class: 'sel' }, h('input', {
        type: 'checkbox', 'data-select': '', 'aria-label': `Select job ${job.id}`, checked: selected.has(job.id),
      })),
      h('td', {}, h('code', { class: 'job-id' }, job.id)),
      h('td', {}, stateBadge(job.state)),
      h('td', { class: 'job-type' }, job.type),
      h('td', { class: 'job-queue' }, job.queue),
      // Attempts started in all runs: a redriven job's attempt within its run needs its events (the inspector shows it).
      h('td', { class: 'num', title: `up to ${job.maxAttempts} a run` }, String(job.attempt)),
      h('td', {}, timeEl(job.createdAt)),
      h('td', {}, timeEl(job.updatedAt)),
    );

  const render = () => {
    body.replaceChildren(...(jobs.length
      ? jobs.map(row)
      : [h('tr', { class: 'empty-note' }, h('td', { colspan: 8 }, failed
        ? `This page could not be read: ${failed}`
        : nextCursor
          ? 'No job on this page matches these filters (the page stopped at its read bound): older ones may, on the next page.'
          : 'No job matches these filters.'))]));
    pageLabel.textContent = `page ${cursors.length}`;
    newer.disabled = cursors.length <= 1;
    older.disabled = nextCursor === null;
    updateBulk();
  };

  let loads = 0;
  const load = async () => {
    const cursor = cursors[cursors.length - 1];
    const view = JSON.stringify([query, cursors.length, cursor ?? null]);
    const mine = ++loads;
    window.clearTimeout(retry);
    retry = undefined;
    try {
      const page = await api.listJobs({ ...query, ...(cursor ? { cursor } : {}) });
      if (mine !== loads) return; // a later load (new filters, another page) is the one to show
      jobs = page.jobs;
      nextCursor = page.nextCursor;
      shownView = view;
      failed = '';
      status.textContent = '';
      render();
    } catch (err) {
      if (mine !== loads) return;
      status.textContent = `Could not list jobs: ${errorText(err)}`;
      if (view !== shownView) {
        // Other filters or another page: the rows shown are not theirs. Keep the pages already seen ("Newer").
        jobs = [];
        nextCursor = null;
        shownView = null;
        failed = errorText(err);
        render();
      }
      // An outage (a 5xx, 429, no answer) passes: read again, without waiting for the counts to move. A refused key
      // stops the page (key-gate.ts), and filters the server refuses (a 400) are refused again until they change.
      if (mayPass(err)) retry = window.setTimeout(() => void load(), RETRY_MS);
    }
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    query = readFilters();
    cursors = [undefined];
    selected.clear();
    void load();
  });
  form.addEventListener('reset', () => {
    // After the browser cleared the fields.
    window.setTimeout(() => form.requestSubmit(), 0);
  });
  older.addEventListener('click', () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    void load();
  });
  newer.addEventListener('click', () => {
    if (cursors.length <= 1) return;
    cursors.pop();
    void load();
  });
  all.addEventListener('change', () => {
    for (const j of jobs) {
      if (all.checked) selected.add(j.id);
      else selected.delete(j.id);
    }
    render();
  });
  body.addEventListener('change', (ev) => {
    const box = ev.target as HTMLInputElement;
    const id = box.closest('[data-job-id]')?.getAttribute('data-job-id');
    if (!id || !box.hasAttribute('data-select')) return;
    if (box.checked) selected.add(id);
    else selected.delete(id);
    updateBulk();
  });
  body.addEventListener('click', (ev) => {
    const target = ev.target as Element;
    if (target.closest('.sel')) return; // the checkbox cell selects, it does not open
    const id = target.closest('[data-job-id]')?.getAttribute('data-job-id');
    if (id) onPick(id);
  });

  const bulk = async (action: BulkAction) => {
    const ids = [...selected];
    if (!ids.length) return;
    busy = true;
    updateBulk();
    const verb = action === 'redrive' ? 'Redrive' : 'Cancel';
    results.replaceChildren(h('li', { class: 'muted' }, `${verb}: ${ids.length} job${ids.length === 1 ? '' : 's'}…`));
    const outcomes = await mapLimit(ids, BULK_CONCURRENCY, async (id) => {
      try {
        const job = await api[action](id);
        return h('li', { 'data-job-id': id, 'data-outcome': 'ok' }, h('code', {}, id), ' → ', stateBadge(job.state));
      } catch (err) {
        return h('li', { 'data-job-id': id, 'data-outcome': 'error' }, h('code', {}, id), ' ', h('span', { class: 'error-text' }, errorText(err)));
      }
    });
    const ok = outcomes.filter((li) => li.getAttribute('data-outcome') === 'ok').length;
    results.replaceChildren(
      h('li', { class: 'bulk-summary' }, `${verb}: ${ok} of ${ids.length} done${ok < ids.length ? `, ${ids.length - ok} refused` : ''}.`),
      ...outcomes,
    );
    selected.clear();
    busy = false;
    await load();
  };
  bulkRedrive.addEventListener('click', () => void bulk('redrive'));
  bulkCancel.addEventListener('click', () => void bulk('cancel'));

  query = readFilters();
  return {
    refresh: load,
    refreshSoon() {
      if (soon !== undefined || busy) return;
      soon = window.setTimeout(() => {
        soon = undefined;
        void load();
      }, SOON_MS);
    },
    select(id) {
      open = id;
      for (const tr of Array.from(body.querySelectorAll('[data-job-id]'))) {
        if (tr.getAttribute('data-job-id') === id) tr.setAttribute('aria-current', 'true');
        else tr.removeAttribute('aria-current');
      }
    },
    suggest(types, queues) {
      const fill = (list: HTMLElement, names: readonly string[]) => {
        const have = Array.from(list.children).map((o) => o.getAttribute('value')).join('\n');
        if (have === names.join('\n')) return;
        list.replaceChildren(...names.map((n) => h('option', { value: n })));
      };
      fill(byId('type-names'), types);
      fill(byId('queue-names'), queues);
    },
  };
}
